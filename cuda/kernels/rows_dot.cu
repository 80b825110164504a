// See rows_dot.cuh. Forward: one warp per logit (a d-long dot product, lanes
// stride the row so reads coalesce). Backward dh: one block per example,
// threads over d, ordered loop over the C rows (deterministic).
#include "kernels/common.cuh"
#include "kernels/rows_dot.cuh"

namespace bl::cuda {
namespace {
__global__ void rows_dot_fwd_k(float* __restrict__ logits, const float* __restrict__ h, const float* __restrict__ W,
                               const int32_t* __restrict__ rows, int Bn, int C, int d) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x >> 5);
  const int64_t total = int64_t(Bn) * C;
  for (int64_t o = blockIdx.x * int64_t(blockDim.x >> 5) + (threadIdx.x >> 5); o < total; o += warps) {
    const float* hr = h + (o / C) * d;
    const float* wr = W + int64_t(rows[o]) * d;
    float acc = 0.f;
    for (int k = lane; k < d; k += 32) acc += hr[k] * wr[k];
    acc = warp_sum(acc);
    if (lane == 0) logits[o] = acc;
  }
}

__global__ void rows_dot_bwd_dh_k(float* __restrict__ dh, const float* __restrict__ dlogits,
                                  const float* __restrict__ W, const int32_t* __restrict__ rows, int Bn, int C,
                                  int d) {
  for (int b = blockIdx.y; b < Bn; b += gridDim.y) {
    for (int k = blockIdx.x * blockDim.x + threadIdx.x; k < d; k += gridDim.x * blockDim.x) {
      float acc = 0.f;
      for (int c = 0; c < C; ++c) acc += dlogits[int64_t(b) * C + c] * W[int64_t(rows[int64_t(b) * C + c]) * d + k];
      dh[int64_t(b) * d + k] += acc;
    }
  }
}

__global__ void rows_dot_bwd_dw_k(float* dW, const float* __restrict__ dlogits, const float* __restrict__ h,
                                  const int32_t* __restrict__ rows, int Bn, int C, int d) {
  const int64_t total = int64_t(Bn) * C * d;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = e / d, k = e - o * d;
    atomicAdd(&dW[int64_t(rows[o]) * d + k], dlogits[o] * h[(o / C) * d + k]);
  }
}
}  // namespace

void rows_dot_fwd(cudaStream_t s, float* logits, const float* h, const float* W, const int32_t* rows, int Bn, int C,
                  int d) {
  if (Bn <= 0 || C <= 0) return;
  const int64_t total = int64_t(Bn) * C;
  rows_dot_fwd_k<<<grid_1d(total * 32, 256), 256, 0, s>>>(logits, h, W, rows, Bn, C, d);
  check_launch("rows_dot_fwd");
}

void rows_dot_bwd(cudaStream_t s, float* dh, float* dW, const float* dlogits, const float* h, const float* W,
                  const int32_t* rows, int Bn, int C, int d) {
  if (Bn <= 0 || C <= 0 || d <= 0) return;
  if (dh) {
    dim3 grid((d + 255) / 256, Bn < 65535 ? Bn : 65535);
    rows_dot_bwd_dh_k<<<grid, 256, 0, s>>>(dh, dlogits, W, rows, Bn, C, d);
    check_launch("rows_dot_bwd/dh");
  }
  if (dW) {
    rows_dot_bwd_dw_k<<<grid_1d(int64_t(Bn) * C * d, 256), 256, 0, s>>>(dW, dlogits, h, rows, Bn, C, d);
    check_launch("rows_dot_bwd/dW");
  }
}

}  // namespace bl::cuda
