// SwiGLU activation of the LLaMA MLP: out = silu(gate) * up.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace bl::cuda {

void swiglu_fwd(cudaStream_t stream, float* out, const float* gate, const float* up, int64_t n);
// dgate += dout * up * silu'(gate); dup += dout * silu(gate). Either may be null.
void swiglu_bwd(cudaStream_t stream, float* dgate, float* dup, const float* dout, const float* gate,
                const float* up, int64_t n);

}  // namespace bl::cuda
