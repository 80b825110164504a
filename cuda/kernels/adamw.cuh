// AdamW step (decoupled weight decay), elementwise over n parameters:
// g' = g * grad_scale; m = b1 m + (1-b1) g'; v = b2 v + (1-b2) g'^2;
// p -= lr * (m/(1-b1^step) / (sqrt(v/(1-b2^step)) + eps) + wd * p). step is 1-based.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace bl::cuda {

void adamw(cudaStream_t stream, float* p, const float* g, float* m, float* v, int64_t n, float lr, float b1,
           float b2, float eps, float wd, int step, float grad_scale);

}  // namespace bl::cuda
