// Implementation of the shared N-API glue (see util.h).
#include "napi/util.h"

#include <cmath>
#include <limits>

namespace bl::napi {

Napi::Error make_error(Napi::Env env, const std::string& code, const std::string& message) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, code));
  e.Set("name", Napi::String::New(env, "BayesLoraError"));
  return e;
}

Napi::Value guarded(const Napi::CallbackInfo& info, const Body& body) {
  Napi::Env env = info.Env();
  try {
    return body(info);
  } catch (const Napi::Error&) {
    throw;
  } catch (const bl::Error& e) {
    throw make_error(env, e.code(), e.what());
  } catch (const std::bad_alloc&) {
    throw make_error(env, code::kOutOfMemory, "out of host memory");
  } catch (const std::exception& e) {
    throw make_error(env, code::kInternal, e.what());
  }
}

double get_number(const Napi::Value& v, const char* what) {
  if (!v.IsNumber()) fail(code::kInvalidArgument, what, " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

int64_t get_int(const Napi::Value& v, const char* what, int64_t lo, int64_t hi) {
  double d = get_number(v, what);
  if (!std::isfinite(d) || d != std::floor(d)) fail(code::kInvalidArgument, what, " must be an integer");
  if (d < double(lo) || d > double(hi))
    fail(code::kInvalidArgument, what, " must be in [", lo, ", ", hi, "], got ", d);
  return int64_t(d);
}

bool get_bool(const Napi::Value& v, const char* what) {
  if (!v.IsBoolean()) fail(code::kInvalidArgument, what, " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

std::string get_string(const Napi::Value& v, const char* what) {
  if (!v.IsString()) fail(code::kInvalidArgument, what, " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

Napi::Object get_object(const Napi::Value& v, const char* what) {
  if (!v.IsObject()) fail(code::kInvalidArgument, what, " must be an object");
  return v.As<Napi::Object>();
}

static bool present(const Napi::Object& o, const char* key) {
  if (!o.Has(key)) return false;
  Napi::Value v = o.Get(key);
  return !v.IsUndefined() && !v.IsNull();
}

double opt_number(const Napi::Object& o, const char* key, double fallback) {
  return present(o, key) ? get_number(o.Get(key), key) : fallback;
}
int64_t opt_int(const Napi::Object& o, const char* key, int64_t fallback, int64_t lo, int64_t hi) {
  return present(o, key) ? get_int(o.Get(key), key, lo, hi) : fallback;
}
bool opt_bool(const Napi::Object& o, const char* key, bool fallback) {
  return present(o, key) ? get_bool(o.Get(key), key) : fallback;
}
std::string opt_string(const Napi::Object& o, const char* key, const std::string& fallback) {
  return present(o, key) ? get_string(o.Get(key), key) : fallback;
}

template <class T, napi_typedarray_type kType>
static Span<T> get_typed(const Napi::Value& v, const char* what, const char* tname, int64_t expect) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != kType)
    fail(code::kInvalidArgument, what, " must be a ", tname);
  auto a = v.As<Napi::TypedArrayOf<T>>();
  Span<T> s{a.Data(), a.ElementLength()};
  if (expect >= 0 && int64_t(s.size) != expect)
    fail(code::kShapeMismatch, what, " has ", s.size, " elements, expected ", expect);
  return s;
}

Span<float> get_f32(const Napi::Value& v, const char* what, int64_t expect) {
  return get_typed<float, napi_float32_array>(v, what, "Float32Array", expect);
}
Span<double> get_f64(const Napi::Value& v, const char* what, int64_t expect) {
  return get_typed<double, napi_float64_array>(v, what, "Float64Array", expect);
}
Span<int32_t> get_i32(const Napi::Value& v, const char* what, int64_t expect) {
  return get_typed<int32_t, napi_int32_array>(v, what, "Int32Array", expect);
}
Span<uint8_t> get_u8(const Napi::Value& v, const char* what, int64_t expect) {
  return get_typed<uint8_t, napi_uint8_array>(v, what, "Uint8Array", expect);
}
Span<uint16_t> get_u16(const Napi::Value& v, const char* what, int64_t expect) {
  return get_typed<uint16_t, napi_uint16_array>(v, what, "Uint16Array", expect);
}
std::vector<float> copy_f32(const Napi::Value& v, const char* what, int64_t expect) {
  auto s = get_f32(v, what, expect);
  return std::vector<float>(s.data, s.data + s.size);
}
std::vector<int32_t> copy_i32(const Napi::Value& v, const char* what, int64_t expect) {
  auto s = get_i32(v, what, expect);
  return std::vector<int32_t>(s.data, s.data + s.size);
}
std::vector<uint8_t> copy_u8(const Napi::Value& v, const char* what, int64_t expect) {
  auto s = get_u8(v, what, expect);
  return std::vector<uint8_t>(s.data, s.data + s.size);
}

Napi::Float32Array to_f32(Napi::Env env, const float* data, size_t n) {
  auto a = Napi::Float32Array::New(env, n);
  if (n) std::memcpy(a.Data(), data, n * sizeof(float));
  return a;
}
Napi::Float64Array to_f64(Napi::Env env, const double* data, size_t n) {
  auto a = Napi::Float64Array::New(env, n);
  if (n) std::memcpy(a.Data(), data, n * sizeof(double));
  return a;
}
Napi::Int32Array to_i32(Napi::Env env, const int32_t* data, size_t n) {
  auto a = Napi::Int32Array::New(env, n);
  if (n) std::memcpy(a.Data(), data, n * sizeof(int32_t));
  return a;
}

namespace {

class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, const char* name, Work work, Done done, std::vector<Napi::Value> keep)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)), done_(std::move(done)) {
    for (auto& v : keep) refs_.push_back(Napi::Persistent(v));
  }
  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      work_();
    } catch (const bl::Error& e) {
      code_ = e.code();
      msg_ = e.what();
    } catch (const std::bad_alloc&) {
      code_ = code::kOutOfMemory;
      msg_ = "out of host memory";
    } catch (const std::exception& e) {
      code_ = code::kInternal;
      msg_ = e.what();
    }
  }
  // When the environment is being torn down (worker.terminate() while this
  // ran), the promise can no longer be settled: N-API calls fail and throw
  // Napi::Error. Nobody is left to tell, and an exception escaping the
  // completion callback would abort the process, so the result is dropped.
  void OnOK() override {
    try {
      settle();
    } catch (const Napi::Error&) {
    }
  }
  void OnError(const Napi::Error& e) override {
    try {
      deferred_.Reject(e.Value());
    } catch (const Napi::Error&) {
    }
  }

 private:
  void settle() {
    Napi::Env env = Env();
    if (!code_.empty()) {
      deferred_.Reject(make_error(env, code_, msg_).Value());
      return;
    }
    try {
      deferred_.Resolve(done_ ? done_(env) : env.Undefined());
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (const bl::Error& e) {
      deferred_.Reject(make_error(env, e.code(), e.what()).Value());
    } catch (const std::exception& e) {
      deferred_.Reject(make_error(env, code::kInternal, e.what()).Value());
    }
  }

  Napi::Promise::Deferred deferred_;
  Work work_;
  Done done_;
  std::vector<Napi::Reference<Napi::Value>> refs_;
  std::string code_, msg_;
};

}  // namespace

Napi::Promise run_async(Napi::Env env, const char* name, Work work, Done done,
                        std::vector<Napi::Value> keep) {
  auto* w = new PromiseWorker(env, name, std::move(work), std::move(done), std::move(keep));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

void adjust_external_memory(Napi::Env env, int64_t delta) {
  int64_t out = 0;
  napi_adjust_external_memory(env, delta, &out);
}

}  // namespace bl::napi
