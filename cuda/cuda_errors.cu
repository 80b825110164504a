// See cuda_errors.h. The sticky-error record is process-wide because a sticky
// error poisons the whole CUDA context of the process, not one stream.
#include <mutex>
#include <sstream>

#include "core/error.h"
#include "cuda_errors.h"

namespace bl::cuda {
namespace {
std::mutex g_mu;
std::string g_sticky;  // first sticky error, with what was running
}  // namespace

bool is_sticky(cudaError_t err) {
  switch (err) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorAssert:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorECCUncorrectable:
    case cudaErrorLaunchTimeout:
    case cudaErrorContextIsDestroyed:
    case cudaErrorUnknown:
      return true;
    default:
      return false;
  }
}

std::string sticky_error() {
  std::lock_guard<std::mutex> lk(g_mu);
  return g_sticky;
}

void throw_if_broken() {
  std::string s = sticky_error();
  if (!s.empty())
    fail(code::kCuda, "CUDA context unusable after an earlier error (", s,
         "); restart the process to use the GPU again");
}

void throw_cuda(cudaError_t err, const char* what) {
  std::ostringstream os;
  os << what << ": " << cudaGetErrorName(err) << " (" << cudaGetErrorString(err) << ")";
  if (is_sticky(err)) {
    std::lock_guard<std::mutex> lk(g_mu);
    if (g_sticky.empty()) g_sticky = os.str();
  } else {
    // Clear the non-sticky error so that it does not resurface at the next
    // unrelated check.
    (void)cudaGetLastError();
  }
  if (err == cudaErrorMemoryAllocation) throw Error(code::kCudaOom, os.str());
  if (is_sticky(err))
    throw Error(code::kCuda, os.str() + "; the CUDA context is now unusable, restart the process");
  throw Error(code::kCuda, os.str());
}

void check_launch(const char* kernel) {
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) {
    std::string what = std::string("kernel launch ") + kernel;
    throw_cuda(err, what.c_str());
  }
}

}  // namespace bl::cuda
