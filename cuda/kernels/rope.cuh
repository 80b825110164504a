// Rotary position embedding, rotate-half convention of HF LLaMA, in place on
// x [N x H x hd]: pairs (x[j], x[j + hd/2]) of row i rotate by pos[i]*inv_freq[j].
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace bl::cuda {

void rope_fwd(cudaStream_t stream, float* x, const int32_t* pos, const float* inv_freq, int N, int H, int hd);
// In place: the inverse rotation (R^T), i.e. the gradient through rope_fwd.
void rope_bwd(cudaStream_t stream, float* dx, const int32_t* pos, const float* inv_freq, int N, int H, int hd);

}  // namespace bl::cuda
