// K-FAC factor building blocks behind the backend seam (Backend::token_reduce,
// kfac_accumulate, gram64; CPU reference cpp/backend/cpu/kfac_ops.cc):
// per-example token reduction with float64 sums, adding a float32 batch Gram
// into a float64 running factor, and mirroring a Gram's upper triangle so it
// is exactly symmetric. The GEMMs themselves go through cuBLAS.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace bl::cuda {

// out[i, :] = sum (or mean) over real tokens of example ex[i] (float64 sums).
void token_reduce(cudaStream_t s, float* out, const float* X, const uint8_t* mask, const int32_t* ex, int n, int T,
                  int d, bool mean);
// S[i] += scale * double(G[i]), i < n.
void add_scaled_f64(cudaStream_t s, double* S, const float* G, int64_t n, double scale);
// G[i, j] = G[j, i] for j < i (n x n, row-major).
void mirror_upper_f64(cudaStream_t s, double* G, int n);

}  // namespace bl::cuda
