// CUDA error handling for the CUDA backend: converts cudaError_t / launch
// failures into bl::Error, and remembers "sticky" errors (illegal address,
// device-side assert, ...) that leave the CUDA context unusable for the rest of
// the process, so every later call fails fast with the original cause instead
// of a confusing secondary error.
#pragma once
#include <cuda_runtime_api.h>

#include <string>

namespace bl::cuda {

// True for errors after which the context cannot be used again (CUDA keeps
// returning them until the process exits).
bool is_sticky(cudaError_t err);

// Throws bl::Error: CUDA_OOM for allocation failures, CUDA_ERROR otherwise.
// A sticky error is recorded first (see sticky_error()).
[[noreturn]] void throw_cuda(cudaError_t err, const char* what);

// Throws when err != cudaSuccess.
inline void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw_cuda(err, what);
}

// After every kernel launch: picks up launch-configuration errors (and sticky
// errors from earlier asynchronous work) with cudaGetLastError.
void check_launch(const char* kernel);

// Non-empty once a sticky error has been seen in this process.
std::string sticky_error();

// Throws CUDA_ERROR "context unusable ..." when a sticky error was recorded.
void throw_if_broken();

}  // namespace bl::cuda
