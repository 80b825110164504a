// Bias add (Qwen2 q/k/v projections) and its gradient (deterministic column sums).
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

namespace bl::cuda {

void add_bias(cudaStream_t stream, float* x, const float* bias, int N, int d);  // x[i] += bias
// dbias += sum_i dout[i]; scratch: bias_bwd_scratch_floats(N, d) floats.
void bias_bwd(cudaStream_t stream, float* dbias, const float* dout, int N, int d, float* scratch);
size_t bias_bwd_scratch_floats(int N, int d);

}  // namespace bl::cuda
