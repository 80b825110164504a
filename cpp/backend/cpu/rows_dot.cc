// LM head restricted to a few vocabulary rows per example (the candidate
// answer tokens): logits[b, c] = h[b] . W[rows[b, c]], and its backward.
// Row ids are validated by the caller (0 <= row < V).
#include <algorithm>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/reduce.h"
#include "core/threads.h"

namespace bl::cpu {

void rows_dot_fwd(float* logits, const float* h, const float* W, const int32_t* rows, int Bn, int C,
                  int d) {
  const size_t n = size_t(Bn) * size_t(C);
  parallel_for(n, row_grain(d), [&](size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; ++i)
      logits[i] = dot(h + (i / size_t(C)) * size_t(d), W + size_t(rows[i]) * size_t(d), d);
  });
}

void rows_dot_bwd(float* dh, float* dW, const float* dlogits, const float* h, const float* W,
                  const int32_t* rows, int Bn, int C, int d) {
  // dh: each example owns its row.
  if (dh)
    parallel_for(size_t(Bn), std::max<size_t>(1, row_grain(d) / std::max<size_t>(1, size_t(C))),
                 [&](size_t b0, size_t b1) {
                   for (size_t b = b0; b < b1; ++b) {
                     float* dhb = dh + b * size_t(d);
                     for (int c = 0; c < C; ++c) {
                       const float g = dlogits[b * size_t(C) + c];
                       const float* w = W + size_t(rows[b * size_t(C) + c]) * size_t(d);
                       for (int k = 0; k < d; ++k) dhb[k] += g * w[k];
                     }
                   }
                 });
  // dW: the same vocabulary row may appear for several (b, c), so threads own
  // column slices instead of rows (race-free, serial summation order).
  if (dW && Bn > 0 && C > 0) {
    const size_t n = size_t(Bn) * size_t(C);
    const size_t grain = std::max<size_t>(64, (size_t(1) << 14) / n);
    parallel_for(size_t(d), grain, [&](size_t c0, size_t c1) {
      for (size_t i = 0; i < n; ++i) {
        const float g = dlogits[i];
        const float* hb = h + (i / size_t(C)) * size_t(d);
        float* w = dW + size_t(rows[i]) * size_t(d);
        for (size_t k = c0; k < c1; ++k) w[k] += g * hb[k];
      }
    });
  }
}

}  // namespace bl::cpu
