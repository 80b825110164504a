// Rotary position embedding, HF LLaMA "rotate half" convention: for j < hd/2
// the pair (x_j, x_{j+hd/2}) is rotated by angle pos * inv_freq[j]. The
// backward is the inverse rotation (rotation matrices are orthogonal).
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/reduce.h"
#include "core/threads.h"

namespace bl::cpu {
namespace {

// sign = +1: forward rotation, -1: inverse rotation.
void rope_apply(float* x, const int32_t* pos, const float* inv_freq, int N, int H, int hd,
                float sign) {
  const int half = hd / 2;
  const size_t row = size_t(H) * size_t(hd), hf = size_t(half);
  if (N <= 0 || half <= 0) return;
  // The angle is formed and reduced in float64: at positions in the
  // thousands a float32 product already loses ~1e-4 rad. Positions repeat
  // in every example of a batch, so the cos/sin table is made once per
  // distinct position (pos < N for the model's positions; anything else
  // falls back to one table per token row) and serves all H heads.
  // A training step rotates q and k and their gradients in every layer (4L
  // calls with the same positions): the table is kept per thread and reused
  // while the frequencies are unchanged and it has enough rows (the float64
  // sin/cos were ~0.5% of a 20m step).
  int32_t lo = pos[0], hi = pos[0];
  for (int i = 1; i < N; ++i) lo = std::min(lo, pos[i]), hi = std::max(hi, pos[i]);
  const bool shared = lo >= 0 && hi < N;
  const size_t P = shared ? size_t(hi) + 1 : 0;
  // Row p of the table depends only on p and the frequencies, so a kept
  // table with at least P rows for the same frequencies serves this call.
  struct Table {
    std::vector<float> freq;
    std::vector<float> cs;  // rows of [cos(half) | sin(half)] for positions 0, 1, ...
  };
  thread_local Table cache;
  std::vector<float> local;  // a table too large to keep (over 4 MiB)
  auto fill = [&](float* cs, int32_t p) {
    float* sn = cs + hf;
    for (int j = 0; j < half; ++j) {
      double a = double(p) * double(inv_freq[j]);
      cs[j] = float(std::cos(a));
      sn[j] = float(std::sin(a));
    }
  };
  const float* tab = nullptr;
  if (shared) {
    const bool keep = P * 2 * hf <= (size_t(1) << 20);
    const bool hit = keep && cache.cs.size() >= P * 2 * hf && cache.freq.size() == hf &&
                     std::equal(inv_freq, inv_freq + half, cache.freq.begin());
    if (!hit) {
      float* t = nullptr;
      if (keep) {
        cache.freq.assign(inv_freq, inv_freq + half);
        cache.cs.resize(P * 2 * hf);
        t = cache.cs.data();
      } else {
        local.resize(P * 2 * hf);
        t = local.data();
      }
      parallel_for(P, std::max<size_t>(1, 4096 / hf), [&](size_t b, size_t e) {
        for (size_t p = b; p < e; ++p) fill(t + p * 2 * hf, int32_t(p));
      });
    }
    tab = keep ? cache.cs.data() : local.data();
  }
  parallel_for(size_t(N), row_grain(int64_t(row)), [&](size_t b, size_t e) {
    std::vector<float> own(shared ? 0 : 2 * hf);
    for (size_t i = b; i < e; ++i) {
      const float* cs = nullptr;
      if (shared) {
        cs = tab + size_t(pos[i]) * 2 * hf;
      } else {
        fill(own.data(), pos[i]);
        cs = own.data();
      }
      const float* sn = cs + hf;
      // sign * sin(a) with sign = +-1 is exact, as when the table held it.
      for (int h = 0; h < H; ++h) {
        float* x1 = x + i * row + size_t(h) * size_t(hd);
        float* x2 = x1 + half;
        for (int j = 0; j < half; ++j) {
          const float a = x1[j], c = x2[j], sj = sign * sn[j];
          x1[j] = a * cs[j] - c * sj;
          x2[j] = c * cs[j] + a * sj;
        }
      }
    }
  });
}

}  // namespace

void rope_fwd(float* x, const int32_t* pos, const float* inv_freq, int N, int H, int hd) {
  rope_apply(x, pos, inv_freq, N, H, hd, 1.0f);
}

void rope_bwd(float* dx, const int32_t* pos, const float* inv_freq, int N, int H, int hd) {
  rope_apply(dx, pos, inv_freq, N, H, hd, -1.0f);
}

}  // namespace bl::cpu
