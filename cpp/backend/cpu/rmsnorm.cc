// RMSNorm (LLaMA): out = x * rstd * w with rstd = 1/sqrt(mean(x^2) + eps),
// computed in float32 like the HF reference, and its backward.
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/reduce.h"
#include "core/threads.h"

namespace bl::cpu {

void rmsnorm_fwd(float* out, float* rstd, const float* x, const float* w, int N, int d, float eps) {
  parallel_for(size_t(N), row_grain(d), [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) {
      const float* xi = x + i * size_t(d);
      float* oi = out + i * size_t(d);
      float r = 1.0f / std::sqrt(sum_sq(xi, d) / float(d) + eps);
      rstd[i] = r;
      for (int k = 0; k < d; ++k) oi[k] = xi[k] * r * w[k];
    }
  });
}

// With y_k = x_k r w_k and r = (mean(x^2) + eps)^(-1/2):
//   dr/dx_k = -r^3 x_k / d, so
//   dx_k = r w_k g_k - x_k r^3 / d * sum_j g_j w_j x_j
//   dw_k = sum_i g_ik x_ik r_i
void rmsnorm_bwd(float* dx, float* dw, const float* dout, const float* x, const float* w,
                 const float* rstd, int N, int d) {
  parallel_for(size_t(N), row_grain(d), [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) {
      const float* xi = x + i * size_t(d);
      const float* gi = dout + i * size_t(d);
      float* dxi = dx + i * size_t(d);
      float r = rstd[i];
      float c = dot3(gi, w, xi, d) * r * r * r / float(d);
      for (int k = 0; k < d; ++k) dxi[k] += r * w[k] * gi[k] - xi[k] * c;
    }
  });
  if (!dw || N <= 0) return;
  // dw sums over all N token rows: split columns between threads (no races)
  // and accumulate each column in float64, since N can be many thousands.
  size_t grain = std::max<size_t>(64, (size_t(1) << 14) / size_t(N));
  parallel_for(size_t(d), grain, [&](size_t c0, size_t c1) {
    std::vector<double> acc(c1 - c0, 0.0);
    for (int i = 0; i < N; ++i) {
      const float* xi = x + size_t(i) * size_t(d);
      const float* gi = dout + size_t(i) * size_t(d);
      double r = rstd[i];
      for (size_t c = c0; c < c1; ++c) acc[c - c0] += double(gi[c] * xi[c]) * r;
    }
    for (size_t c = c0; c < c1; ++c) dw[c] += float(acc[c - c0]);
  });
}

}  // namespace bl::cpu
