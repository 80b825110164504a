// See adamw.cuh. The bias corrections are computed once on the host in float64.
#include <cmath>

#include "kernels/adamw.cuh"
#include "kernels/common.cuh"

namespace bl::cuda {
namespace {
__global__ void adamw_k(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m,
                        float* __restrict__ v, int64_t n, float lr, float b1, float b2, float eps, float wd,
                        float c1, float c2, float grad_scale) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float gi = g[i] * grad_scale;
    const float mi = b1 * m[i] + (1.f - b1) * gi;
    const float vi = b2 * v[i] + (1.f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const float mhat = mi * c1, vhat = vi * c2;
    p[i] -= lr * (mhat / (sqrtf(vhat) + eps) + wd * p[i]);
  }
}
}  // namespace

void adamw(cudaStream_t s, float* p, const float* g, float* m, float* v, int64_t n, float lr, float b1, float b2,
           float eps, float wd, int step, float grad_scale) {
  if (n <= 0) return;
  // Inverse bias corrections in float64 (1 - b2^t is ~1e-3 at t = 1), then
  // multiplied in, exactly like the CPU reference.
  const float c1 = float(1.0 / (1.0 - std::pow(double(b1), double(step))));
  const float c2 = float(1.0 / (1.0 - std::pow(double(b2), double(step))));
  adamw_k<<<grid_1d(n, 256), 256, 0, s>>>(p, g, m, v, n, lr, b1, b2, eps, wd, c1, c2, grad_scale);
  check_launch("adamw");
}

}  // namespace bl::cuda
