// `info()`: what this build and machine offer (backend, BLAS, threads, SIMD, CUDA).
#include "backend/backend.h"
#include "backend/cpu/gemm.h"
#include "core/threads.h"
#include "napi/modules.h"
#include "napi/util.h"

namespace bl::napi {

std::string cuda_status(bool* usable);  // napi/cuda_status.cc

static Napi::Value info(const Napi::CallbackInfo& i) {
  Napi::Env env = i.Env();
  auto g = cpu::gemm_info();
  Napi::Object o = Napi::Object::New(env);
  o.Set("version", "0.1.0");
  o.Set("blas", g.blas);
  o.Set("simd", g.simd);
  o.Set("openblasCoretype", g.coretype);
  o.Set("threads", num_threads());
#ifdef BAYESLORA_WITH_CUDA
  o.Set("cudaCompiled", true);
#else
  o.Set("cudaCompiled", false);
#endif
  bool usable = false;
  o.Set("cuda", cuda_status(&usable));
  o.Set("cudaUsable", usable);
  o.Set("backends", usable ? "cpu,cuda" : "cpu");
  return o;
}

static Napi::Value set_threads(const Napi::CallbackInfo& i) {
  set_num_threads(int(get_int(i[0], "threads", 1, 1024)));
  return i.Env().Undefined();
}

static Napi::Value set_gemm(const Napi::CallbackInfo& i) {
  cpu::set_gemm_impl(get_string(i[0], "impl"));
  return i.Env().Undefined();
}

void init_info(Napi::Env env, Napi::Object exports) {
  exports.Set("info", Napi::Function::New(env, BL_NAPI(info)));
  exports.Set("setThreads", Napi::Function::New(env, BL_NAPI(set_threads)));
  exports.Set("setGemmImpl", Napi::Function::New(env, BL_NAPI(set_gemm)));
}

}  // namespace bl::napi
