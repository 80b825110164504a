// See dropout.cuh. The mask comes from uniform01_hd (common.cuh), bit-identical
// to the CPU's uniform01, so CPU and CUDA runs drop the same elements.
#include "kernels/common.cuh"
#include "kernels/dropout.cuh"

namespace bl::cuda {
namespace {
// inv = 1/(1-p) computed once on the host, like the CPU reference.
__global__ void dropout_fwd_k(float* out, const float* x, int64_t n, float p, float inv, uint64_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = uniform01_hd(seed, uint64_t(i)) >= p ? x[i] * inv : 0.f;
}
__global__ void dropout_bwd_k(float* dx, const float* __restrict__ dout, int64_t n, float p, float inv,
                              uint64_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    if (uniform01_hd(seed, uint64_t(i)) >= p) dx[i] += dout[i] * inv;
}
}  // namespace

void dropout_fwd(cudaStream_t s, float* out, const float* x, int64_t n, float p, uint64_t seed) {
  if (n <= 0) return;
  const float inv = p < 1.f ? 1.f / (1.f - p) : 0.f;
  dropout_fwd_k<<<grid_1d(n, 256), 256, 0, s>>>(out, x, n, p, inv, seed);
  check_launch("dropout_fwd");
}

void dropout_bwd(cudaStream_t s, float* dx, const float* dout, int64_t n, float p, uint64_t seed) {
  if (n <= 0) return;
  const float inv = p < 1.f ? 1.f / (1.f - p) : 0.f;
  dropout_bwd_k<<<grid_1d(n, 256), 256, 0, s>>>(dx, dout, n, p, inv, seed);
  check_launch("dropout_bwd");
}

}  // namespace bl::cuda
