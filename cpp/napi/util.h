// N-API glue shared by all bindings: bl::Error -> typed JS error, argument
// readers that validate before touching data, and a promise-returning async
// worker so that long native work never blocks the event loop.
#pragma once
#include <napi.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"

namespace bl::napi {

// A JS Error with name "BayesLoraError" and the given code.
Napi::Error make_error(Napi::Env env, const std::string& code, const std::string& message);

// Wrap a binding body: converts bl::Error / std::exception to typed JS errors.
// Usage: exports["f"] = Napi::Function::New(env, wrap(fn));
using Body = std::function<Napi::Value(const Napi::CallbackInfo&)>;
Napi::Value guarded(const Napi::CallbackInfo& info, const Body& body);

#define BL_NAPI(fn) \
  [](const Napi::CallbackInfo& bl_cb_) -> Napi::Value { return ::bl::napi::guarded(bl_cb_, fn); }

// ---- argument readers (throw bl::Error INVALID_ARGUMENT) -------------------------
double get_number(const Napi::Value& v, const char* what);
int64_t get_int(const Napi::Value& v, const char* what, int64_t lo, int64_t hi);
bool get_bool(const Napi::Value& v, const char* what);
std::string get_string(const Napi::Value& v, const char* what);
Napi::Object get_object(const Napi::Value& v, const char* what);
// Optional property readers: return fallback when absent/undefined.
double opt_number(const Napi::Object& o, const char* key, double fallback);
int64_t opt_int(const Napi::Object& o, const char* key, int64_t fallback, int64_t lo, int64_t hi);
bool opt_bool(const Napi::Object& o, const char* key, bool fallback);
std::string opt_string(const Napi::Object& o, const char* key, const std::string& fallback);

// Typed arrays. `expect` < 0 means any length. The returned span stays valid
// only while the JS value is alive: copy before handing to an async worker.
template <class T>
struct Span {
  T* data = nullptr;
  size_t size = 0;
};
Span<float> get_f32(const Napi::Value& v, const char* what, int64_t expect = -1);
Span<double> get_f64(const Napi::Value& v, const char* what, int64_t expect = -1);
Span<int32_t> get_i32(const Napi::Value& v, const char* what, int64_t expect = -1);
Span<uint8_t> get_u8(const Napi::Value& v, const char* what, int64_t expect = -1);
Span<uint16_t> get_u16(const Napi::Value& v, const char* what, int64_t expect = -1);
std::vector<float> copy_f32(const Napi::Value& v, const char* what, int64_t expect = -1);
std::vector<int32_t> copy_i32(const Napi::Value& v, const char* what, int64_t expect = -1);
std::vector<uint8_t> copy_u8(const Napi::Value& v, const char* what, int64_t expect = -1);

Napi::Float32Array to_f32(Napi::Env env, const float* data, size_t n);
Napi::Float64Array to_f64(Napi::Env env, const double* data, size_t n);
Napi::Int32Array to_i32(Napi::Env env, const int32_t* data, size_t n);

// ---- async work ------------------------------------------------------------------
// Runs `work` on the libuv thread pool, then `done` on the JS thread to build
// the resolved value. Exceptions in either reject the promise with a typed error.
// Keep JS values alive across the call with `keep` (e.g. the wrapping object).
using Work = std::function<void()>;
using Done = std::function<Napi::Value(Napi::Env)>;
Napi::Promise run_async(Napi::Env env, const char* name, Work work, Done done,
                        std::vector<Napi::Value> keep = {});

// Report native memory held by JS-owned objects to V8 (positive or negative).
void adjust_external_memory(Napi::Env env, int64_t delta);

}  // namespace bl::napi
