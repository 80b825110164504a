// See lora.cuh. Kernels are templated on a rank bound R (8, 16, 32) so the
// per-thread accumulators stay in registers; the runtime r <= R masks the rest.
#include "kernels/common.cuh"
#include "kernels/lora.cuh"

namespace bl::cuda {
namespace {

constexpr int kOuterCols = 64;   // columns per block in lora_outer
constexpr int kOuterRows = 4;    // row groups per block (256 threads)
constexpr int kTargetBlocks = 1024;

template <int R>
__global__ void down_k(float* __restrict__ out, const float* __restrict__ X, const float* __restrict__ W, int64_t sj,
                       int64_t sk, int N, int K, int r, float alpha) {
  const int lane = threadIdx.x & 31, warps = blockDim.x >> 5;
  for (int64_t n = int64_t(blockIdx.x) * warps + (threadIdx.x >> 5); n < N; n += int64_t(gridDim.x) * warps) {
    float acc[R];
#pragma unroll
    for (int j = 0; j < R; ++j) acc[j] = 0.f;
    const float* xr = X + n * K;
    for (int k = lane; k < K; k += 32) {
      const float xv = xr[k];
#pragma unroll
      for (int j = 0; j < R; ++j)
        if (j < r) acc[j] = fmaf(xv, W[j * sj + k * sk], acc[j]);
    }
#pragma unroll
    for (int j = 0; j < R; ++j) {
      const float v = warp_sum(acc[j]);
      if (lane == 0 && j < r) out[n * r + j] = alpha * v;
    }
  }
}

template <int R>
__global__ void up_k(float* __restrict__ Y, const float* __restrict__ U, const float* __restrict__ W, int64_t sc,
                     int64_t sj, int N, int C, int r, float alpha, float p, float inv, uint64_t seed) {
  const int64_t total = int64_t(N) * C;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = e / C, c = e - n * C;
    const float* ur = U + n * r;
    float acc = 0.f;
#pragma unroll
    for (int j = 0; j < R; ++j)
      if (j < r) acc = fmaf(ur[j], W[c * sc + j * sj], acc);
    const float v = alpha * acc;
    if (p > 0.f) {
      if (uniform01_hd(seed, uint64_t(e)) >= p) Y[e] += v * inv;
    } else {
      Y[e] += v;
    }
  }
}

// Block (x: column tile, y: row chunk); thread (tx: column, ty: row group).
template <int R>
__global__ void outer_partial_k(float* __restrict__ part, const float* __restrict__ Y, const float* __restrict__ Z,
                                int N, int dc, int r, int rows_per_chunk) {
  __shared__ float sh[kOuterRows][R][kOuterCols];
  const int tx = threadIdx.x % kOuterCols, ty = threadIdx.x / kOuterCols;
  const int c = blockIdx.x * kOuterCols + tx;
  const int64_t n0 = int64_t(blockIdx.y) * rows_per_chunk;
  const int64_t n1 = min(int64_t(N), n0 + rows_per_chunk);
  float acc[R];
#pragma unroll
  for (int j = 0; j < R; ++j) acc[j] = 0.f;
  if (c < dc) {
    for (int64_t n = n0 + ty; n < n1; n += kOuterRows) {
      const float y = Y[n * dc + c];
      const float* zr = Z + n * r;
#pragma unroll
      for (int j = 0; j < R; ++j)
        if (j < r) acc[j] = fmaf(y, zr[j], acc[j]);
    }
  }
#pragma unroll
  for (int j = 0; j < R; ++j) sh[ty][j][tx] = acc[j];
  __syncthreads();
  if (c >= dc) return;
  // Row group ty finishes ranks j = ty, ty + 4, ... in a fixed order.
  for (int j = ty; j < r; j += kOuterRows) {
    float s = 0.f;
#pragma unroll
    for (int g = 0; g < kOuterRows; ++g) s += sh[g][j][tx];
    part[(int64_t(blockIdx.y) * dc + c) * r + j] = s;
  }
}

__global__ void outer_finish_k(float* __restrict__ D, int64_t oc, int64_t oj, const float* __restrict__ part,
                               int chunks, int dc, int r, float alpha) {
  const int64_t total = int64_t(dc) * r;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = e / r, j = e - c * r;
    float s = 0.f;
    for (int k = 0; k < chunks; ++k) s += part[int64_t(k) * total + e];
    D[c * oc + j * oj] += alpha * s;
  }
}

void outer_shape(int N, int dc, int* chunks, int* rows_per_chunk) {
  const int gx = (dc + kOuterCols - 1) / kOuterCols;
  int c = kTargetBlocks / (gx > 0 ? gx : 1);
  const int max_chunks = (N + 63) / 64;  // at least 64 rows per chunk
  if (c > max_chunks) c = max_chunks;
  if (c > 65535) c = 65535;
  if (c < 1) c = 1;
  *rows_per_chunk = (N + c - 1) / c;
  *chunks = (N + *rows_per_chunk - 1) / *rows_per_chunk;
  if (*chunks < 1) *chunks = 1;
}

}  // namespace

#define BL_LORA_DISPATCH(r, KERNEL, ...)       \
  do {                                          \
    if ((r) <= 8) KERNEL<8>__VA_ARGS__;         \
    else if ((r) <= 16) KERNEL<16>__VA_ARGS__;  \
    else KERNEL<32>__VA_ARGS__;                 \
  } while (0)

void lora_down(cudaStream_t s, float* out, const float* X, const float* W, int64_t sj, int64_t sk, int N, int K,
               int r, float alpha) {
  if (N <= 0 || r <= 0) return;
  const int threads = 256, warps = threads / 32;
  const unsigned blocks = grid_1d((int64_t(N) + warps - 1) / warps, 1);
  BL_LORA_DISPATCH(r, down_k, <<<blocks, threads, 0, s>>>(out, X, W, sj, sk, N, K, r, alpha));
  check_launch("lora_down");
}

void lora_up(cudaStream_t s, float* Y, const float* U, const float* W, int64_t sc, int64_t sj, int N, int C, int r,
             float alpha, float p, uint64_t seed) {
  if (N <= 0 || C <= 0 || r <= 0) return;
  const float inv = p > 0.f && p < 1.f ? 1.f / (1.f - p) : 1.f;
  const unsigned blocks = grid_1d(int64_t(N) * C, 256);
  BL_LORA_DISPATCH(r, up_k, <<<blocks, 256, 0, s>>>(Y, U, W, sc, sj, N, C, r, alpha, p, inv, seed));
  check_launch("lora_up");
}

size_t lora_outer_scratch_floats(int N, int dc, int r) {
  int chunks = 1, rows = 1;
  outer_shape(N, dc, &chunks, &rows);
  return size_t(chunks) * size_t(dc) * size_t(r > 0 ? r : 1);
}

size_t lora_bwd_scratch_floats(int N, int d_in, int d_out, int r) {
  const size_t a = lora_outer_scratch_floats(N, d_in, r), b = lora_outer_scratch_floats(N, d_out, r);
  return a > b ? a : b;
}

void lora_outer(cudaStream_t s, float* D, int64_t oc, int64_t oj, const float* Y, const float* Z, int N, int dc,
                int r, float alpha, float* scratch) {
  if (N <= 0 || dc <= 0 || r <= 0) return;
  int chunks = 1, rows = 1;
  outer_shape(N, dc, &chunks, &rows);
  dim3 grid(unsigned((dc + kOuterCols - 1) / kOuterCols), unsigned(chunks));
  BL_LORA_DISPATCH(r, outer_partial_k, <<<grid, kOuterCols * kOuterRows, 0, s>>>(scratch, Y, Z, N, dc, r, rows));
  check_launch("lora_outer partial");
  outer_finish_k<<<grid_1d(int64_t(dc) * r, 256), 256, 0, s>>>(D, oc, oj, scratch, chunks, dc, r, alpha);
  check_launch("lora_outer finish");
}

#undef BL_LORA_DISPATCH

}  // namespace bl::cuda
