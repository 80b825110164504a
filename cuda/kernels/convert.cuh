// Storage conversions on device: f32 <-> bf16 (round to nearest even, NaN
// kept), used by the bf16 frozen-weight GEMM path, and f32 -> f64.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace bl::cuda {

// dst[r*cols + c] = bf16(src[r*ld + c]) for r < rows, c < cols (packs a strided matrix).
void f32_to_bf16(cudaStream_t stream, uint16_t* dst, const float* src, int64_t rows, int64_t cols, int64_t ld);
void bf16_to_f32(cudaStream_t stream, float* dst, const uint16_t* src, int64_t n);
void f32_to_f64(cudaStream_t stream, double* dst, const float* src, int64_t n);

}  // namespace bl::cuda
