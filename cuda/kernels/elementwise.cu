// See elementwise.cuh. Grid-stride loops with 64-bit indices (tensors can
// exceed 2^31 elements, e.g. logits over a large vocabulary).
#include "kernels/common.cuh"
#include "kernels/elementwise.cuh"

namespace bl::cuda {
namespace {
constexpr int kThreads = 256;

__global__ void fill_k(float* x, float v, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) x[i] = v;
}
__global__ void axpy_k(int64_t n, float a, const float* __restrict__ x, float* __restrict__ y) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) y[i] += a * x[i];
}
__global__ void scale_k(int64_t n, float a, float* x) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) x[i] *= a;
}
// No __restrict__: out may alias a or b.
__global__ void add_k(int64_t n, const float* a, const float* b, float* out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) out[i] = a[i] + b[i];
}
template <class T>
__global__ void scale_strided_k(T* C, int rows, int cols, int ld, T beta) {
  const int64_t total = int64_t(rows) * cols;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = e / cols, c = e - r * cols;
    T* p = C + r * ld + c;
    *p = beta == T(0) ? T(0) : beta * *p;
  }
}
}  // namespace

void scale_strided(cudaStream_t s, float* C, int rows, int cols, int ld, float beta) {
  if (rows <= 0 || cols <= 0) return;
  scale_strided_k<float><<<grid_1d(int64_t(rows) * cols, kThreads), kThreads, 0, s>>>(C, rows, cols, ld, beta);
  check_launch("scale_strided");
}
void scale_strided(cudaStream_t s, double* C, int rows, int cols, int ld, double beta) {
  if (rows <= 0 || cols <= 0) return;
  scale_strided_k<double><<<grid_1d(int64_t(rows) * cols, kThreads), kThreads, 0, s>>>(C, rows, cols, ld, beta);
  check_launch("scale_strided");
}

void fill(cudaStream_t s, float* x, float v, int64_t n) {
  if (n <= 0) return;
  fill_k<<<grid_1d(n, kThreads), kThreads, 0, s>>>(x, v, n);
  check_launch("fill");
}
void axpy(cudaStream_t s, int64_t n, float a, const float* x, float* y) {
  if (n <= 0) return;
  axpy_k<<<grid_1d(n, kThreads), kThreads, 0, s>>>(n, a, x, y);
  check_launch("axpy");
}
void scale(cudaStream_t s, int64_t n, float a, float* x) {
  if (n <= 0) return;
  scale_k<<<grid_1d(n, kThreads), kThreads, 0, s>>>(n, a, x);
  check_launch("scale");
}
void add(cudaStream_t s, int64_t n, const float* a, const float* b, float* out) {
  if (n <= 0) return;
  add_k<<<grid_1d(n, kThreads), kThreads, 0, s>>>(n, a, b, out);
  check_launch("add");
}

}  // namespace bl::cuda
