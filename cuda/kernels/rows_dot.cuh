// LM head restricted to given rows (answer tokens): logits[b, c] =
// dot(h[b], W[rows[b*C + c]]), W: [V x d]; and its backward.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace bl::cuda {

void rows_dot_fwd(cudaStream_t stream, float* logits, const float* h, const float* W, const int32_t* rows, int Bn,
                  int C, int d);
// dh[b] += sum_c dlogits[b,c] W[rows[b,c]] (dh nullable);
// dW[rows[b,c]] += dlogits[b,c] h[b] (dW nullable; atomicAdd, rows may repeat).
void rows_dot_bwd(cudaStream_t stream, float* dh, float* dW, const float* dlogits, const float* h, const float* W,
                  const int32_t* rows, int Bn, int C, int d);

}  // namespace bl::cuda
