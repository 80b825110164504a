// RMSNorm forward/backward (LLaMA): rstd[i] = 1/sqrt(mean(x[i]^2) + eps),
// out[i] = x[i] * rstd[i] * w. One block per row with block reductions.
// The weight gradient is deterministic: per-chunk partial column sums in
// scratch, then an ordered second pass (reduce.cuh column_sums).
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

namespace bl::cuda {

void rmsnorm_fwd(cudaStream_t stream, float* out, float* rstd, const float* x, const float* w, int N, int d,
                 float eps);
// dx += ..., dw += ... (dw nullable). scratch: rmsnorm_bwd_scratch_floats(N, d) floats.
void rmsnorm_bwd(cudaStream_t stream, float* dx, float* dw, const float* dout, const float* x, const float* w,
                 const float* rstd, int N, int d, float* scratch);
size_t rmsnorm_bwd_scratch_floats(int N, int d);

}  // namespace bl::cuda
