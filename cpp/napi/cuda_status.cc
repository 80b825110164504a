// Why CUDA is or is not usable, in words, for `bayeslora info`; and the CUDA
// backend's device memory for `cudaMemory()`.
#include <string>

#include "napi/cuda_status.h"
#ifdef BAYESLORA_WITH_CUDA
#include "cuda_backend.h"
#endif

namespace bl {
#ifdef BAYESLORA_WITH_CUDA
std::string cuda_probe(bool* usable);  // cuda/cuda_backend.cu
#endif
}

namespace bl::napi {

std::string cuda_status(bool* usable) {
#ifdef BAYESLORA_WITH_CUDA
  return cuda_probe(usable);
#else
  *usable = false;
  return "not compiled in (no nvcc at build time, or BAYESLORA_CUDA=OFF)";
#endif
}

bool cuda_device_memory(DeviceMemory* m, bool reset_peak) {
#ifdef BAYESLORA_WITH_CUDA
  return cuda_memory(m, reset_peak);
#else
  (void)m, (void)reset_peak;
  return false;
#endif
}

}  // namespace bl::napi
