// Token embedding lookup and its gradient (atomicAdd: a token id may repeat).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace bl::cuda {

// out[i, :] = table[ids[i], :]
void embedding_fwd(cudaStream_t stream, float* out, const int32_t* ids, const float* table, int N, int d);
// dtable[ids[i], :] += dout[i, :]
void embedding_bwd(cudaStream_t stream, float* dtable, const int32_t* ids, const float* dout, int N, int d);

}  // namespace bl::cuda
