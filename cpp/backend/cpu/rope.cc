// Rotary position embedding, HF LLaMA "rotate half" convention: for j < hd/2
// the pair (x_j, x_{j+hd/2}) is rotated by angle pos * inv_freq[j]. The
// backward is the inverse rotation (rotation matrices are orthogonal).
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
  const size_t row = size_t(H) * size_t(hd);
  parallel_for(size_t(N), row_grain(int64_t(row)), [&](size_t b, size_t e) {
    std::vector<float> cs(static_cast<size_t>(half)), sn(static_cast<size_t>(half));
    for (size_t i = b; i < e; ++i) {
      // The angle is formed and reduced in float64: at positions in the
      // thousands a float32 product already loses ~1e-4 rad. One table per
      // token row serves all H heads.
      for (int j = 0; j < half; ++j) {
        double a = double(pos[i]) * double(inv_freq[j]);
        cs[j] = float(std::cos(a));
        sn[j] = sign * float(std::sin(a));
      }
      for (int h = 0; h < H; ++h) {
        float* x1 = x + i * row + size_t(h) * size_t(hd);
        float* x2 = x1 + half;
        for (int j = 0; j < half; ++j) {
          float a = x1[j], c = x2[j];
          x1[j] = a * cs[j] - c * sn[j];
          x2[j] = c * cs[j] + a * sn[j];
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
