// See kfac_factor.cuh.
#include "kernels/common.cuh"
#include "kernels/kfac_factor.cuh"

namespace bl::cuda {
namespace {

// grid.y walks examples, grid.x * threads walk features; each element sums
// its tokens in t order in float64, like the CPU reference.
__global__ void token_reduce_k(float* __restrict__ out, const float* __restrict__ X, const uint8_t* __restrict__ mask,
                               const int32_t* __restrict__ ex, int n, int T, int d, bool mean) {
  for (int i = blockIdx.y; i < n; i += gridDim.y) {
    const int64_t e = ex[i];
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < d; c += gridDim.x * blockDim.x) {
      double acc = 0;
      int nt = 0;
      for (int t = 0; t < T; ++t) {
        const int64_t row = e * T + t;
        if (mask && !mask[row]) continue;
        ++nt;
        acc += double(X[row * d + c]);
      }
      const double f = (mean && nt > 0) ? 1.0 / nt : 1.0;
      out[int64_t(i) * d + c] = float(acc * f);
    }
  }
}

__global__ void add_scaled_f64_k(double* __restrict__ S, const float* __restrict__ G, int64_t n, double scale) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    S[i] += scale * double(G[i]);
}

__global__ void mirror_upper_k(double* G, int n) {
  const int64_t total = int64_t(n) * n;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = e / n, j = e - i * n;
    if (j < i) G[e] = G[j * n + i];
  }
}

}  // namespace

void token_reduce(cudaStream_t s, float* out, const float* X, const uint8_t* mask, const int32_t* ex, int n, int T,
                  int d, bool mean) {
  if (n <= 0 || d <= 0) return;
  dim3 grid(unsigned((d + 255) / 256), unsigned(n < 65535 ? n : 65535));
  token_reduce_k<<<grid, 256, 0, s>>>(out, X, mask, ex, n, T, d, mean);
  check_launch("token_reduce");
}

void add_scaled_f64(cudaStream_t s, double* S, const float* G, int64_t n, double scale) {
  if (n <= 0) return;
  add_scaled_f64_k<<<grid_1d(n, 256), 256, 0, s>>>(S, G, n, scale);
  check_launch("add_scaled_f64");
}

void mirror_upper_f64(cudaStream_t s, double* G, int n) {
  if (n <= 1) return;
  mirror_upper_k<<<grid_1d(int64_t(n) * n, 256), 256, 0, s>>>(G, n);
  check_launch("mirror_upper_f64");
}

}  // namespace bl::cuda
