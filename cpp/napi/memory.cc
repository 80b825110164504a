// `externalMemory()`: the total of native memory this process has reported to
// V8 (napi_adjust_external_memory, which every handle-owning binding calls as
// its allocations grow and on dispose). Node 20's process.memoryUsage().external
// counts only ArrayBuffer backing stores, so this is the way to observe the
// accounting (tests, diagnostics).
#include "napi/modules.h"
#include "napi/util.h"

namespace bl::napi {

namespace {

Napi::Value ExternalMemory(const Napi::CallbackInfo& info) {
  int64_t total = 0;
  napi_adjust_external_memory(info.Env(), 0, &total);  // a zero change returns the current total
  return Napi::Number::New(info.Env(), double(total));
}

}  // namespace

void init_memory(Napi::Env env, Napi::Object exports) {
  exports.Set("externalMemory", Napi::Function::New(env, BL_NAPI(ExternalMemory)));
}

}  // namespace bl::napi
