// See reduce.cuh.
#include <cmath>

#include "kernels/common.cuh"
#include "kernels/reduce.cuh"

namespace bl::cuda {
namespace {
constexpr int kThreads = 256;
constexpr int kMaxBlocks = 1024;

__global__ void sumsq_partial_k(double* partial, const float* __restrict__ x, int64_t n) {
  __shared__ double sh[32];
  double acc = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    double v = x[i];
    acc += v * v;
  }
  acc = block_sum(acc, sh);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

__global__ void sum_partials_k(double* out, const double* __restrict__ partial, int nparts) {
  __shared__ double sh[32];
  double acc = 0;
  for (int i = threadIdx.x; i < nparts; i += blockDim.x) acc += partial[i];
  acc = block_sum(acc, sh);
  if (threadIdx.x == 0) *out = acc;
}

__global__ void all_finite_k(int* flag, const float* __restrict__ x, int64_t n) {
  bool bad = false;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    bad |= !isfinite(x[i]);
  // Any block that saw a non-finite value raises the flag; the result does not
  // depend on which block wins.
  if (__syncthreads_or(bad) && threadIdx.x == 0) atomicExch(flag, 1);
}

// Column partial sums: block = 32 columns x 8 row lanes; grid.x column tiles,
// grid.y row chunks. partial[chunk * d + c].
constexpr int kColTile = 32, kRowLanes = 8;
__global__ void colsum_partial_k(float* partial, const float* __restrict__ a, const float* __restrict__ b,
                                 const float* __restrict__ rowscale, int N, int d, int rows_per_chunk) {
  __shared__ float sh[kRowLanes][kColTile + 1];
  const int c = blockIdx.x * kColTile + threadIdx.x;
  const int r0 = blockIdx.y * rows_per_chunk;
  const int r1 = min(N, r0 + rows_per_chunk);
  float acc = 0.f;
  if (c < d) {
    for (int r = r0 + threadIdx.y; r < r1; r += kRowLanes) {
      int64_t off = int64_t(r) * d + c;
      float v = a[off];
      if (b) v *= b[off];
      if (rowscale) v *= rowscale[r];
      acc += v;
    }
  }
  sh[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < d) {
    float s = 0.f;
#pragma unroll
    for (int k = 0; k < kRowLanes; ++k) s += sh[k][threadIdx.x];
    partial[int64_t(blockIdx.y) * d + c] = s;
  }
}

__global__ void colsum_final_k(float* dst, const float* __restrict__ partial, int nchunks, int d) {
  for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < d; c += gridDim.x * blockDim.x) {
    double s = 0;
    for (int k = 0; k < nchunks; ++k) s += partial[int64_t(k) * d + c];
    dst[c] += float(s);
  }
}

int colsum_chunks(int N) {
  // ~64 rows per chunk, at most 256 chunks: enough blocks for a large N, few
  // partials for the second pass.
  int ch = (N + 63) / 64;
  return ch < 1 ? 1 : (ch > 256 ? 256 : ch);
}
}  // namespace

size_t reduce_scratch_bytes(int64_t) { return kMaxBlocks * sizeof(double); }

void sum_squares(cudaStream_t s, double* out, const float* x, int64_t n, void* scratch) {
  auto* partial = static_cast<double*>(scratch);
  unsigned g = grid_1d(n, kThreads, kMaxBlocks);
  sumsq_partial_k<<<g, kThreads, 0, s>>>(partial, x, n);
  check_launch("sum_squares");
  sum_partials_k<<<1, kThreads, 0, s>>>(out, partial, int(g));
  check_launch("sum_squares/final");
}

void any_nonfinite(cudaStream_t s, int* out, const float* x, int64_t n) {
  check(cudaMemsetAsync(out, 0, sizeof(int), s), "all_finite: clear flag");
  if (n <= 0) return;
  all_finite_k<<<grid_1d(n, kThreads, kMaxBlocks), kThreads, 0, s>>>(out, x, n);
  check_launch("all_finite");
}

size_t column_sums_scratch_floats(int N, int d) { return size_t(colsum_chunks(N)) * size_t(d); }

void column_sums(cudaStream_t s, float* dst, const float* a, const float* b, const float* rowscale,
                 int N, int d, float* scratch) {
  if (N <= 0 || d <= 0) return;
  int chunks = colsum_chunks(N);
  int rows_per_chunk = (N + chunks - 1) / chunks;
  dim3 grid((d + kColTile - 1) / kColTile, chunks);
  dim3 block(kColTile, kRowLanes);
  colsum_partial_k<<<grid, block, 0, s>>>(scratch, a, b, rowscale, N, d, rows_per_chunk);
  check_launch("column_sums/partial");
  colsum_final_k<<<grid_1d(d, kThreads), kThreads, 0, s>>>(dst, scratch, chunks, d);
  check_launch("column_sums/final");
}

}  // namespace bl::cuda
