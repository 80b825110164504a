// Tensor handles for JavaScript: a shape, a storage dtype (F32, F16 or BF16;
// compute is always f32), a device, and memory that is either a zero-copy
// view of the caller's Float32Array (CPU, F32) or a backend buffer. dispose()
// is idempotent; use after dispose is a DISPOSED error; native bytes are
// reported to V8.
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "core/dtype.h"
#include "napi/modules.h"
#include "napi/util.h"

namespace bl::napi {
namespace {

DType parse_dtype(const std::string& s) {
  if (s == "f32" || s == "F32") return DType::F32;
  if (s == "f16" || s == "F16") return DType::F16;
  if (s == "bf16" || s == "BF16") return DType::BF16;
  fail(code::kInvalidArgument, "dtype must be 'f32', 'f16' or 'bf16', got '", s, "'");
}

const char* dtype_js(DType t) {
  switch (t) {
    case DType::F16: return "f16";
    case DType::BF16: return "bf16";
    default: return "f32";
  }
}

class TensorWrap : public Napi::ObjectWrap<TensorWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Tensor",
                       {
                           InstanceMethod("toArray", &TensorWrap::ToArray),
                           InstanceMethod("view", &TensorWrap::View),
                           InstanceMethod("dispose", &TensorWrap::Dispose),
                           InstanceAccessor("shape", &TensorWrap::Shape, nullptr),
                           InstanceAccessor("dtype", &TensorWrap::Dtype, nullptr),
                           InstanceAccessor("device", &TensorWrap::Device, nullptr),
                           InstanceAccessor("byteLength", &TensorWrap::ByteLength, nullptr),
                           InstanceAccessor("zeroCopy", &TensorWrap::ZeroCopy, nullptr),
                           InstanceAccessor("disposed", &TensorWrap::Disposed, nullptr),
                       });
  }

  // new Tensor(data: Float32Array, shape: number[], {dtype, device})
  explicit TensorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorWrap>(info) {
    guarded(info, [this](const Napi::CallbackInfo& i) -> Napi::Value {
      init(i);
      return i.Env().Undefined();
    });
  }
  ~TensorWrap() override { release(nullptr); }

 private:
  void init(const Napi::CallbackInfo& i) {
    auto src = get_f32(i[0], "data");
    if (!i[1].IsArray()) fail(code::kInvalidArgument, "shape must be an array of non-negative integers");
    auto arr = i[1].As<Napi::Array>();
    if (arr.Length() > 8) fail(code::kInvalidArgument, "shape has more than 8 dimensions");
    int64_t n = 1;
    for (uint32_t k = 0; k < arr.Length(); ++k) {
      int64_t d = get_int(arr.Get(k), "shape[i]", 0, int64_t(1) << 40);
      shape_.push_back(d);
      if (d != 0 && n > (int64_t(1) << 40) / d) fail(code::kInvalidArgument, "shape is too large");
      n *= d;
    }
    if (int64_t(src.size) != n)
      fail(code::kShapeMismatch, "data has ", src.size, " elements but shape needs ", n);
    numel_ = n;
    Napi::Object o = i.Length() > 2 && i[2].IsObject() ? i[2].As<Napi::Object>() : Napi::Object::New(i.Env());
    dtype_ = parse_dtype(opt_string(o, "dtype", "f32"));
    device_ = opt_string(o, "device", "cpu");
    be_ = &get_backend(device_);
    if (be_->host_memory() && dtype_ == DType::F32) {
      // Zero copy: keep the caller's array alive and point at its memory.
      ref_ = Napi::Persistent(i[0].As<Napi::Object>());
      data_ = src.data;
      return;
    }
    const size_t bytes = size_t(n) * dtype_size(dtype_);
    buf_ = std::make_unique<Buffer>(*be_, bytes);
    if (dtype_ == DType::F32) {
      be_->to_device(buf_->data(), src.data, bytes);
    } else {
      std::vector<uint16_t> tmp(static_cast<size_t>(n));
      for (int64_t k = 0; k < n; ++k)
        tmp[size_t(k)] = dtype_ == DType::F16 ? f32_to_f16(src.data[k]) : f32_to_bf16(src.data[k]);
      be_->to_device(buf_->data(), tmp.data(), bytes);
    }
    data_ = buf_->data();
    reported_ = int64_t(bytes);
    adjust_external_memory(i.Env(), reported_);
  }

  void check() const {
    if (disposed_) fail(code::kDisposed, "tensor was disposed");
  }

  void release(Napi::Env* env) {
    if (disposed_) return;
    disposed_ = true;
    buf_.reset();
    if (!ref_.IsEmpty()) ref_.Reset();
    data_ = nullptr;
    if (env && reported_) adjust_external_memory(*env, -reported_);
    reported_ = 0;
  }

  Napi::Value ToArray(const Napi::CallbackInfo& info) {
    return guarded(info, [this](const Napi::CallbackInfo& i) -> Napi::Value {
      check();
      auto out = Napi::Float32Array::New(i.Env(), size_t(numel_));
      const size_t bytes = size_t(numel_) * dtype_size(dtype_);
      if (dtype_ == DType::F32) {
        be_->to_host(out.Data(), data_, bytes);
      } else {
        std::vector<uint16_t> tmp(static_cast<size_t>(numel_));
        be_->to_host(tmp.data(), data_, bytes);
        convert_to_f32(out.Data(), tmp.data(), dtype_, size_t(numel_));
      }
      return out;
    });
  }

  // The zero-copy Float32Array itself (CPU, F32), else null.
  Napi::Value View(const Napi::CallbackInfo& info) {
    return guarded(info, [this](const Napi::CallbackInfo& i) -> Napi::Value {
      check();
      return ref_.IsEmpty() ? i.Env().Null() : ref_.Value();
    });
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    release(&env);
    return env.Undefined();
  }

  Napi::Value Shape(const Napi::CallbackInfo& info) {
    auto a = Napi::Array::New(info.Env(), shape_.size());
    for (size_t k = 0; k < shape_.size(); ++k) a.Set(uint32_t(k), double(shape_[k]));
    return a;
  }
  Napi::Value Dtype(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), dtype_js(dtype_)); }
  Napi::Value Device(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), device_); }
  Napi::Value ByteLength(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), double(numel_) * double(dtype_size(dtype_)));
  }
  Napi::Value ZeroCopy(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !ref_.IsEmpty()); }
  Napi::Value Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), disposed_); }

  std::vector<int64_t> shape_;
  int64_t numel_ = 0;
  DType dtype_ = DType::F32;
  std::string device_ = "cpu";
  Backend* be_ = nullptr;
  std::unique_ptr<Buffer> buf_;
  Napi::Reference<Napi::Object> ref_;
  void* data_ = nullptr;
  int64_t reported_ = 0;
  bool disposed_ = false;
};

}  // namespace

void init_tensor(Napi::Env env, Napi::Object exports) {
  exports.Set("Tensor", TensorWrap::Define(env));
}

}  // namespace bl::napi
