// Reductions: sum of squares (float64), all-finite test, and deterministic
// column sums (the building block of bias_bwd and the RMSNorm weight gradient).
// Determinism: every reduction has a fixed order for a given shape (per-block
// partials, then one pass over the partials), never atomics.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace bl::cuda {

// *out_dev (one double, device memory) = sum_i x[i]^2. scratch: reduce_scratch_bytes(n).
void sum_squares(cudaStream_t stream, double* out_dev, const float* x, int64_t n, void* scratch);
// *out_dev (one int, device memory) = 1 if some x[i] is NaN or +-Inf, else 0.
void any_nonfinite(cudaStream_t stream, int* out_dev, const float* x, int64_t n);
size_t reduce_scratch_bytes(int64_t n);

// dst[c] += sum_{i<N} a[i*d+c] * (b ? b[i*d+c] : 1) * (rowscale ? rowscale[i] : 1)
// Two passes: per-chunk partial column sums into scratch, then an ordered sum.
void column_sums(cudaStream_t stream, float* dst, const float* a, const float* b,
                 const float* rowscale, int N, int d, float* scratch);
size_t column_sums_scratch_floats(int N, int d);

}  // namespace bl::cuda
