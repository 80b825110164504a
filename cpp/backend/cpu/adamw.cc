// AdamW step with decoupled weight decay (Loshchilov & Hutter):
//   g <- g * grad_scale;  m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2
//   p <- p - lr * (mhat / (sqrt(vhat) + eps) + wd * p),  hat = bias-corrected
// with a 1-based step. The decay uses p before this step's update.
#include <cmath>

#include "backend/cpu/cpu_ops.h"
#include "core/threads.h"

namespace bl::cpu {

void adamw(float* p, const float* g, float* m, float* v, int64_t n, float lr, float b1, float b2,
           float eps, float wd, int step, float grad_scale) {
  // Bias corrections in float64: 1 - b2^t is ~1e-3 at t = 1 and loses digits in float.
  const float c1 = float(1.0 / (1.0 - std::pow(double(b1), double(step))));
  const float c2 = float(1.0 / (1.0 - std::pow(double(b2), double(step))));
  const float a1 = 1.0f - b1, a2 = 1.0f - b2;
  parallel_for(size_t(n), size_t(1) << 13, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) {
      const float gi = g[i] * grad_scale;
      const float mi = b1 * m[i] + a1 * gi;
      const float vi = b2 * v[i] + a2 * gi * gi;
      m[i] = mi;
      v[i] = vi;
      const float mhat = mi * c1, vhat = vi * c2;
      p[i] -= lr * (mhat / (std::sqrt(vhat) + eps) + wd * p[i]);
    }
  });
}

}  // namespace bl::cpu
