// Elementwise vector ops of the backend: fill, axpy, scale, add.
// Launchers enqueue on `stream` and check the launch; n may be 0.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace bl::cuda {

void fill(cudaStream_t stream, float* x, float v, int64_t n);
void axpy(cudaStream_t stream, int64_t n, float a, const float* x, float* y);   // y += a x
void scale(cudaStream_t stream, int64_t n, float a, float* x);                  // x *= a
void add(cudaStream_t stream, int64_t n, const float* a, const float* b, float* out);  // may alias

}  // namespace bl::cuda

namespace bl::cuda {
// C[r*ld + c] = beta * C[...] for r < rows, c < cols; beta == 0 writes zeros
// without reading C (BLAS convention: NaNs in C do not survive beta = 0).
void scale_strided(cudaStream_t stream, float* C, int rows, int cols, int ld, float beta);
void scale_strided(cudaStream_t stream, double* C, int rows, int cols, int ld, double beta);
}  // namespace bl::cuda
