// Row-wise softmax cross-entropy over logits [N x C]:
// loss[i] = logsumexp(row) - row[label]; probs = softmax(row) (nullable);
// dlogits = (probs - onehot(label)) * dscale (nullable, written, not added).
// label < 0 (or >= C) means ignore: loss 0 and dlogits 0 for that row.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace bl::cuda {

void softmax_xent(cudaStream_t stream, float* loss, float* probs, float* dlogits, const float* logits,
                  const int32_t* labels, int N, int C, float dscale);

}  // namespace bl::cuda
