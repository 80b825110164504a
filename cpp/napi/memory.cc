// `externalMemory()`: the total of native memory this process has reported to
// V8 (napi_adjust_external_memory, which every handle-owning binding calls as
// its allocations grow and on dispose). Node 20's process.memoryUsage().external
// counts only ArrayBuffer backing stores, so this is the way to observe the
// accounting (tests, diagnostics).
// `mallocInfo()` / `mallocTrim()`: glibc heap statistics and returning free
// heap pages to the OS. Why: peak RSS (the memory bench) counts pages that
// glibc keeps after a free; these tell freed-but-held from live memory.
#include <malloc.h>

#include "napi/modules.h"
#include "napi/util.h"

namespace bl::napi {

namespace {

Napi::Value ExternalMemory(const Napi::CallbackInfo& info) {
  int64_t total = 0;
  napi_adjust_external_memory(info.Env(), 0, &total);  // a zero change returns the current total
  return Napi::Number::New(info.Env(), double(total));
}

Napi::Value MallocInfo(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  const struct mallinfo2 m = mallinfo2();
  o.Set("arenaBytes", double(m.arena));       // sbrk/arena heap held
  o.Set("mmapBytes", double(m.hblkhd));       // large blocks served by mmap
  o.Set("inUseBytes", double(m.uordblks));    // allocated from the arenas
  o.Set("freeBytes", double(m.fordblks));     // free but held in the arenas
  o.Set("topPadBytes", double(m.keepcost));   // releasable top of the main heap
#endif
  return o;
}

Napi::Value MallocTrim(const Napi::CallbackInfo& info) {
#if defined(__GLIBC__)
  return Napi::Boolean::New(info.Env(), malloc_trim(0) != 0);
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

}  // namespace

void init_memory(Napi::Env env, Napi::Object exports) {
  exports.Set("externalMemory", Napi::Function::New(env, BL_NAPI(ExternalMemory)));
  exports.Set("mallocInfo", Napi::Function::New(env, BL_NAPI(MallocInfo)));
  exports.Set("mallocTrim", Napi::Function::New(env, BL_NAPI(MallocTrim)));
}

}  // namespace bl::napi
