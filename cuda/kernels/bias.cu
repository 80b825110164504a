// See bias.cuh.
#include "kernels/bias.cuh"
#include "kernels/common.cuh"
#include "kernels/reduce.cuh"

namespace bl::cuda {
namespace {
__global__ void add_bias_k(float* __restrict__ x, const float* __restrict__ bias, int N, int d) {
  const int64_t total = int64_t(N) * d;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x)
    x[e] += bias[e % d];
}
}  // namespace

void add_bias(cudaStream_t s, float* x, const float* bias, int N, int d) {
  if (N <= 0 || d <= 0) return;
  add_bias_k<<<grid_1d(int64_t(N) * d, 256), 256, 0, s>>>(x, bias, N, d);
  check_launch("add_bias");
}

size_t bias_bwd_scratch_floats(int N, int d) { return column_sums_scratch_floats(N, d); }

void bias_bwd(cudaStream_t s, float* dbias, const float* dout, int N, int d, float* scratch) {
  column_sums(s, dbias, dout, nullptr, nullptr, N, d, scratch);
}

}  // namespace bl::cuda
