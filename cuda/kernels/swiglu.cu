// See swiglu.cuh. silu(g) = g * sigmoid(g); silu'(g) = s * (1 + g * (1 - s)).
#include "kernels/common.cuh"
#include "kernels/swiglu.cuh"

namespace bl::cuda {
namespace {
__device__ __forceinline__ float sigmoidf_(float g) { return 1.f / (1.f + expf(-g)); }

__global__ void swiglu_fwd_k(float* out, const float* __restrict__ gate, const float* __restrict__ up, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float g = gate[i];
    out[i] = g * sigmoidf_(g) * up[i];
  }
}

__global__ void swiglu_bwd_k(float* dgate, float* dup, const float* __restrict__ dout, const float* __restrict__ gate,
                             const float* __restrict__ up, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float g = gate[i], s = sigmoidf_(g), d = dout[i];
    if (dgate) dgate[i] += d * up[i] * s * (1.f + g * (1.f - s));
    if (dup) dup[i] += d * g * s;
  }
}
}  // namespace

void swiglu_fwd(cudaStream_t s, float* out, const float* gate, const float* up, int64_t n) {
  if (n <= 0) return;
  swiglu_fwd_k<<<grid_1d(n, 256), 256, 0, s>>>(out, gate, up, n);
  check_launch("swiglu_fwd");
}

void swiglu_bwd(cudaStream_t s, float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                int64_t n) {
  if (n <= 0 || (!dgate && !dup)) return;
  swiglu_bwd_k<<<grid_1d(n, 256), 256, 0, s>>>(dgate, dup, dout, gate, up, n);
  check_launch("swiglu_bwd");
}

}  // namespace bl::cuda
