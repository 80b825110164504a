// The CUDA backend's status and device memory as plain values for the
// bindings (napi/info.cc), so binding code needs no CUDA header.
#pragma once
#include <cstddef>
#include <string>

namespace bl::napi {

// Why CUDA is or is not usable, in words (never throws).
std::string cuda_status(bool* usable);

struct CudaMemory {
  size_t live = 0, peak = 0;  // bytes in the backend's buffers now / at most since start or the last reset
  size_t internal = 0;        // cuBLAS workspace and scratch
  size_t device_free = 0, device_total = 0;
};
// False when CUDA is not compiled in or its backend was never created.
bool cuda_memory(CudaMemory* m, bool reset_peak);

}  // namespace bl::napi
