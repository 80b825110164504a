// Row gather / scatter-add over [rows x d] matrices (indices in device memory,
// validated by the caller). scatter_add uses atomicAdd because indices may
// repeat; the result is exact up to float summation order.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace bl::cuda {

// out[i, :] = x[idx[i], :]
void gather_rows(cudaStream_t stream, float* out, const float* x, const int32_t* idx, int n, int d);
// dx[idx[i], :] += dout[i, :]
void scatter_add_rows(cudaStream_t stream, float* dx, const float* dout, const int32_t* idx, int n, int d);

}  // namespace bl::cuda
