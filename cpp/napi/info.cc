// `info()`: what this build and machine offer (backend, BLAS, threads, SIMD, CUDA).
#include "backend/backend.h"
#include "backend/cpu/gemm.h"
#include "core/threads.h"
#include "napi/cuda_status.h"
#include "napi/modules.h"
#include "napi/util.h"

namespace bl::napi {

static Napi::Value info(const Napi::CallbackInfo& i) {
  Napi::Env env = i.Env();
  auto g = cpu::gemm_info();
  Napi::Object o = Napi::Object::New(env);
  o.Set("version", "0.1.0");
  o.Set("blas", g.blas);
  o.Set("simd", g.simd);
  o.Set("openblasCoretype", g.coretype);
  o.Set("gemm", g.gemm);
  o.Set("gemmReason", g.gemm_why);
  o.Set("threads", num_threads());
  o.Set("threadSpinUs", thread_spin_us());
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

// cudaMemory(resetPeak = false): the CUDA backend's memory, or null before
// (or without) it. Bytes as numbers; resetPeak sets peak to live afterwards.
static Napi::Value cuda_memory_js(const Napi::CallbackInfo& i) {
  const bool reset = i.Length() > 0 && !i[0].IsUndefined() && get_bool(i[0], "resetPeak");
  DeviceMemory m;
  if (!cuda_device_memory(&m, reset)) return i.Env().Null();
  Napi::Object o = Napi::Object::New(i.Env());
  o.Set("liveBytes", double(m.live));
  o.Set("peakBytes", double(m.peak));
  o.Set("internalBytes", double(m.internal));
  o.Set("deviceFreeBytes", double(m.device_free));
  o.Set("deviceTotalBytes", double(m.device_total));
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
  exports.Set("cudaMemory", Napi::Function::New(env, BL_NAPI(cuda_memory_js)));
  exports.Set("setThreads", Napi::Function::New(env, BL_NAPI(set_threads)));
  exports.Set("setGemmImpl", Napi::Function::New(env, BL_NAPI(set_gemm)));
}

}  // namespace bl::napi
