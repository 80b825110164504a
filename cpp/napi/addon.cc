// Addon entry point: registers every binding module.
#include <napi.h>

#include "napi/modules.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  bl::napi::init_info(env, exports);
  bl::napi::init_ops(env, exports);
  bl::napi::init_io(env, exports);
  bl::napi::init_model(env, exports);
  bl::napi::init_laplace(env, exports);
  bl::napi::init_gemm(env, exports);
  bl::napi::init_tensor(env, exports);
  bl::napi::init_cancel(env, exports);
  bl::napi::init_memory(env, exports);
  return exports;
}

NODE_API_MODULE(bayeslora, Init)
