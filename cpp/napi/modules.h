// Each binding file registers its functions/classes on the addon's exports.
#pragma once
#include <napi.h>

namespace bl::napi {
void init_info(Napi::Env env, Napi::Object exports);     // napi/info.cc
void init_ops(Napi::Env env, Napi::Object exports);      // napi/ops.cc (kernel-level surface)
void init_io(Napi::Env env, Napi::Object exports);       // napi/io.cc (safetensors, config)
void init_model(Napi::Env env, Napi::Object exports);    // napi/model.cc
void init_laplace(Napi::Env env, Napi::Object exports);  // napi/laplace.cc
void init_tensor(Napi::Env env, Napi::Object exports);   // napi/tensor.cc (tensor handles)
void init_gemm(Napi::Env env, Napi::Object exports);     // napi/gemm.cc (GEMM test and bench surface)
void init_cancel(Napi::Env env, Napi::Object exports);   // napi/cancel.cc (CancelToken for AbortSignal)
void init_memory(Napi::Env env, Napi::Object exports);   // napi/memory.cc (native memory reported to V8)
}  // namespace bl::napi
