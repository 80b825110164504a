// dlopen-based cuBLAS loader; see cublas_loader.h for why it exists.
#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <sstream>
#include <vector>

#include "core/error.h"
#include "cublas_loader.h"
#include "cuda_errors.h"

namespace bl::cuda::blas {
namespace {

template <class F>
bool bind(void* lib, const char* name, F& fn, std::string* missing) {
  fn = reinterpret_cast<F>(dlsym(lib, name));
  if (!fn && missing) {
    if (!missing->empty()) *missing += ", ";
    *missing += name;
  }
  return fn != nullptr;
}

// Returns true when every required symbol resolved; otherwise lists the missing ones.
bool bind_all(void* lib, Api& a, std::string* missing) {
  bool ok = true;
  ok &= bind(lib, "cublasCreate_v2", a.create, missing);
  ok &= bind(lib, "cublasDestroy_v2", a.destroy, missing);
  ok &= bind(lib, "cublasSetStream_v2", a.set_stream, missing);
  ok &= bind(lib, "cublasSgemm_v2", a.sgemm, missing);
  ok &= bind(lib, "cublasSgemmStridedBatched", a.sgemm_strided_batched, missing);
  ok &= bind(lib, "cublasDgemm_v2", a.dgemm, missing);
  ok &= bind(lib, "cublasGemmEx", a.gemm_ex, missing);
  ok &= bind(lib, "cublasGemmStridedBatchedEx", a.gemm_strided_batched_ex, missing);
  // Optional: older cuBLAS lacks them, the backend copes.
  bind(lib, "cublasSetWorkspace_v2", a.set_workspace, nullptr);
  bind(lib, "cublasGetProperty", a.get_property, nullptr);
  bind(lib, "cublasGetStatusString", a.status_string, nullptr);
  return ok;
}

const Api* g_api = nullptr;
std::string g_why;
std::once_flag g_once;

void do_load() {
  std::vector<std::string> candidates;
  const char* env = std::getenv("BAYESLORA_CUBLAS");
  if (env && *env) {
    candidates.push_back(env);
  } else {
    candidates = {"libcublas.so.13", "libcublas.so.12", "libcublas.so"};
  }
  std::ostringstream why;
  for (const std::string& c : candidates) {
    void* lib = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char* e = dlerror();
      why << "  " << c << ": " << (e ? e : "not found") << "\n";
      continue;
    }
    auto* api = new Api();
    std::string missing;
    if (!bind_all(lib, *api, &missing)) {
      why << "  " << c << ": loaded but lacks " << missing << "\n";
      delete api;
      dlclose(lib);
      continue;
    }
    api->path = c;
    // Resolve the real file for messages (dlinfo-free: the address of a symbol).
    Dl_info info;
    if (dladdr(reinterpret_cast<void*>(api->create), &info) && info.dli_fname) api->path = info.dli_fname;
    if (api->get_property) {
      int ma = 0, mi = 0, pa = 0;
      // libraryPropertyType: MAJOR_VERSION = 0, MINOR_VERSION = 1, PATCH_LEVEL = 2
      if (api->get_property(0, &ma) == kSuccess && api->get_property(1, &mi) == kSuccess &&
          api->get_property(2, &pa) == kSuccess)
        api->version = ma * 10000 + mi * 100 + pa;
    }
    g_api = api;  // the library stays loaded for the life of the process
    return;
  }
  g_why = "no usable cuBLAS (set BAYESLORA_CUBLAS=/path/to/libcublas.so.N); tried:\n" + why.str();
}

}  // namespace

const Api* load(std::string* why) {
  std::call_once(g_once, do_load);
  if (!g_api && why) *why = g_why;
  return g_api;
}

std::string status_name(Status s) {
  const Api* a = g_api;
  if (a && a->status_string) {
    const char* n = a->status_string(s);
    if (n) return n;
  }
  switch (s) {
    case 0: return "CUBLAS_STATUS_SUCCESS";
    case 1: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case 3: return "CUBLAS_STATUS_ALLOC_FAILED";
    case 7: return "CUBLAS_STATUS_INVALID_VALUE";
    case 8: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case 11: return "CUBLAS_STATUS_MAPPING_ERROR";
    case 13: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case 14: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case 15: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case 16: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "CUBLAS_STATUS_" + std::to_string(s);
  }
}

void check(Status s, const char* what) {
  if (s == kSuccess) return;
  // A failed cuBLAS call may hide a CUDA error (e.g. an illegal address from an
  // earlier kernel); surface that one first, it is the real cause.
  cudaError_t ce = cudaGetLastError();
  if (ce != cudaSuccess) cuda::throw_cuda(ce, what);
  std::string msg = std::string(what) + ": " + status_name(s);
  if (s == kAllocFailed) throw Error(code::kCudaOom, msg);
  throw Error(code::kCuda, msg);
}

}  // namespace bl::cuda::blas
