// LoRA dropout with the counter-based mask shared by every backend:
// keep_i = uniform01(seed, i) >= p (backend.h), kept values scaled by 1/(1-p).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace bl::cuda {

// out = x * keep / (1-p); out may alias x.
void dropout_fwd(cudaStream_t stream, float* out, const float* x, int64_t n, float p, uint64_t seed);
// dx += dout * keep / (1-p)
void dropout_bwd(cudaStream_t stream, float* dx, const float* dout, int64_t n, float p, uint64_t seed);

}  // namespace bl::cuda
