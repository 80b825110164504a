// Backend lookup by name. CUDA is compiled in only with BAYESLORA_WITH_CUDA;
// otherwise asking for it is a typed UNSUPPORTED error, never a crash.
#include "backend/backend.h"
#include "core/error.h"

namespace bl {

#ifdef BAYESLORA_WITH_CUDA
Backend& cuda_backend();  // cuda/cuda_backend.cu; throws when no device is usable
#endif

Backend& get_backend(const std::string& name) {
  if (name == "cpu") return cpu_backend();
  if (name == "cuda") {
#ifdef BAYESLORA_WITH_CUDA
    return cuda_backend();
#else
    fail(code::kUnsupported, "this build of bayeslora has no CUDA support (rebuild with nvcc present)");
#endif
  }
  fail(code::kInvalidArgument, "unknown backend '", name, "' (expected 'cpu' or 'cuda')");
}

}  // namespace bl
