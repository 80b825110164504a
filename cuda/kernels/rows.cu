// See rows.cuh. One thread per element, consecutive threads on consecutive
// columns of one row, so both the indexed and the dense side are coalesced.
#include "kernels/common.cuh"
#include "kernels/rows.cuh"

namespace bl::cuda {
namespace {
constexpr int kThreads = 256;

__global__ void gather_k(float* __restrict__ out, const float* __restrict__ x, const int32_t* __restrict__ idx,
                         int n, int d) {
  const int64_t total = int64_t(n) * d;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    int64_t i = e / d, c = e - i * d;
    out[e] = x[int64_t(idx[i]) * d + c];
  }
}

__global__ void scatter_add_k(float* dx, const float* __restrict__ dout, const int32_t* __restrict__ idx, int n,
                              int d) {
  const int64_t total = int64_t(n) * d;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    int64_t i = e / d, c = e - i * d;
    atomicAdd(&dx[int64_t(idx[i]) * d + c], dout[e]);
  }
}
}  // namespace

void gather_rows(cudaStream_t s, float* out, const float* x, const int32_t* idx, int n, int d) {
  if (n <= 0 || d <= 0) return;
  gather_k<<<grid_1d(int64_t(n) * d, kThreads), kThreads, 0, s>>>(out, x, idx, n, d);
  check_launch("gather_rows");
}

void scatter_add_rows(cudaStream_t s, float* dx, const float* dout, const int32_t* idx, int n, int d) {
  if (n <= 0 || d <= 0) return;
  scatter_add_k<<<grid_1d(int64_t(n) * d, kThreads), kThreads, 0, s>>>(dx, dout, idx, n, d);
  check_launch("scatter_add_rows");
}

}  // namespace bl::cuda
