// Internal to attention_fwd.cu / attention_bwd.cu: tile sizes and the shared
// tile loaders. Tiles live in shared memory with a row stride of D+1 floats so
// that a warp reading one column across 32 rows hits 32 different banks.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "core/error.h"
#include "cuda_errors.h"
#include "kernels/attention.cuh"

namespace bl::cuda::attn {

constexpr int BR = 32;   // query rows per tile
constexpr int BC = 32;   // key rows per tile (== warp size: the softmax pass maps lanes to keys)
constexpr int NT = 256;  // threads per block (8 warps)
constexpr int NW = NT / 32;

// Load rows [t0, t0+R) of head `head` of x [B,T,heads,hd] into tile[R][D+1],
// zero outside T and beyond hd (padding contributes 0 to every dot product).
template <int D, int R>
__device__ __forceinline__ void load_tile(float* tile, const float* __restrict__ x, int b, int t0, int T, int heads,
                                          int head, int hd) {
  for (int e = threadIdx.x; e < R * D; e += NT) {
    const int r = e / D, d = e % D, t = t0 + r;
    float v = 0.f;
    if (t < T && d < hd) v = x[((int64_t(b) * T + t) * heads + head) * hd + d];
    tile[r * (D + 1) + d] = v;
  }
}

template <int D>
__device__ __forceinline__ float dot_row(const float* a, const float* b) {
  float s = 0.f;
#pragma unroll 16
  for (int d = 0; d < D; ++d) s += a[d] * b[d];
  return s;
}

// Per-row flags: key j of the tile is a real token.
__device__ __forceinline__ int key_ok(const uint8_t* mask, int b, int s, int T) {
  return s < T && (!mask || mask[int64_t(b) * T + s]);
}

// Opt in to more than 48 KiB of dynamic shared memory once per kernel.
template <class K>
inline void allow_smem(K kernel, size_t bytes, const char* name) {
  if (bytes <= 48 * 1024) return;
  cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes));
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    fail(code::kUnsupported, name, ": needs ", bytes, " bytes of shared memory per block, which this GPU does not allow (",
         cudaGetErrorString(e), "); head dim too large for this device");
  }
}

inline int padded_head_dim(int hd) { return hd <= 32 ? 32 : hd <= 64 ? 64 : hd <= 128 ? 128 : 256; }

}  // namespace bl::cuda::attn
