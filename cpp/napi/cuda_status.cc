// Why CUDA is or is not usable, in words, for `bayeslora info`.
#include <string>

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

}  // namespace bl::napi
