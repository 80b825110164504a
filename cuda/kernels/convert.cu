// See convert.cuh. Uses the CUDA bf16 intrinsics, whose rounding (RNE, NaN
// stays NaN) matches bl::f32_to_bf16 in core/dtype.h.
#include <cuda_bf16.h>

#include "kernels/common.cuh"
#include "kernels/convert.cuh"

namespace bl::cuda {
namespace {
__global__ void f32_to_bf16_k(__nv_bfloat16* dst, const float* __restrict__ src, int64_t rows, int64_t cols,
                              int64_t ld) {
  const int64_t total = rows * cols;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = e / cols, c = e - r * cols;
    dst[e] = __float2bfloat16_rn(src[r * ld + c]);
  }
}
__global__ void bf16_to_f32_k(float* dst, const __nv_bfloat16* __restrict__ src, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = __bfloat162float(src[i]);
}
__global__ void f32_to_f64_k(double* dst, const float* __restrict__ src, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = src[i];
}
}  // namespace

void f32_to_bf16(cudaStream_t s, uint16_t* dst, const float* src, int64_t rows, int64_t cols, int64_t ld) {
  if (rows <= 0 || cols <= 0) return;
  f32_to_bf16_k<<<grid_1d(rows * cols, 256), 256, 0, s>>>(reinterpret_cast<__nv_bfloat16*>(dst), src, rows, cols,
                                                         ld);
  check_launch("f32_to_bf16");
}

void bf16_to_f32(cudaStream_t s, float* dst, const uint16_t* src, int64_t n) {
  if (n <= 0) return;
  bf16_to_f32_k<<<grid_1d(n, 256), 256, 0, s>>>(dst, reinterpret_cast<const __nv_bfloat16*>(src), n);
  check_launch("bf16_to_f32");
}

void f32_to_f64(cudaStream_t s, double* dst, const float* src, int64_t n) {
  if (n <= 0) return;
  f32_to_f64_k<<<grid_1d(n, 256), 256, 0, s>>>(dst, src, n);
  check_launch("f32_to_f64");
}

}  // namespace bl::cuda
