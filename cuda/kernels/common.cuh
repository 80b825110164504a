// Shared device helpers for the kernels under cuda/kernels: launch sizing,
// warp/block reductions, and the device twin of bl::uniform01 (backend.h) so
// that dropout draws bit-identical masks on CPU and GPU.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda_errors.h"

namespace bl::cuda {

constexpr int kWarp = 32;
constexpr unsigned kFull = 0xffffffffu;

// Blocks for a grid-stride loop over n items: enough to fill the GPU, never
// more than the x-dimension limit. Kernels loop, so any cap is correct.
inline unsigned grid_1d(int64_t n, int threads, int64_t cap = 65536) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > cap) b = cap;
  return unsigned(b);
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}
__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(kFull, v, o));
  return v;
}

// Sum over the whole block (blockDim.x a multiple of 32, <= 1024); every
// thread gets the result. `sh` is >= 32 slots of shared memory; the function
// synchronises before returning so `sh` can be reused immediately.
template <class T>
__device__ __forceinline__ T block_sum(T v, T* sh) {
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_sum(v);
  if (lane == 0) sh[w] = v;
  __syncthreads();
  T r = lane < nw ? sh[lane] : T(0);
  r = warp_sum(r);
  __syncthreads();
  return r;
}

__device__ __forceinline__ float block_max(float v, float* sh) {
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_max(v);
  if (lane == 0) sh[w] = v;
  __syncthreads();
  float r = lane < nw ? sh[lane] : -INFINITY;
  r = warp_max(r);
  __syncthreads();
  return r;
}

// Same arithmetic as bl::mix64 / bl::uniform01 in backend/backend.h (integer
// mixing, then an exact 24-bit -> float conversion), so results are bit-equal.
__host__ __device__ __forceinline__ uint64_t mix64_hd(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
__host__ __device__ __forceinline__ float uniform01_hd(uint64_t seed, uint64_t i) {
  return float(mix64_hd(seed * 0x632be59bd9b4e019ull + i) >> 40) * (1.0f / 16777216.0f);
}

}  // namespace bl::cuda
