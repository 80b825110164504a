// CancelToken (see cancel.h).
#include "napi/cancel.h"

#include "napi/util.h"

namespace bl::napi {

namespace {

const napi_type_tag kCancelTag = {0x5be2a4c19d7f3e08ull, 0xc41d9a7e26f0b835ull};

class CancelTokenWrap : public Napi::ObjectWrap<CancelTokenWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "CancelToken",
                       {InstanceMethod("cancel", &CancelTokenWrap::Cancel),
                        InstanceMethod("isCancelled", &CancelTokenWrap::IsCancelled)});
  }
  explicit CancelTokenWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CancelTokenWrap>(info) {
    napi_type_tag_object(info.Env(), info.This(), &kCancelTag);
  }
  std::shared_ptr<CancelFlag> flag() const { return flag_; }

 private:
  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    flag_->store(true);
    return info.Env().Undefined();
  }
  Napi::Value IsCancelled(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), flag_->load()); }
  std::shared_ptr<CancelFlag> flag_ = std::make_shared<CancelFlag>(false);
};

}  // namespace

std::shared_ptr<CancelFlag> cancel_arg(const Napi::Object& opts) {
  if (!opts.Has("cancel")) return nullptr;
  Napi::Value v = opts.Get("cancel");
  if (v.IsUndefined() || v.IsNull()) return nullptr;
  bool ok = false;
  if (v.IsObject()) napi_check_object_type_tag(v.Env(), v, &kCancelTag, &ok);
  BL_CHECK(ok, code::kInvalidArgument, "options.cancel must be a CancelToken");
  return CancelTokenWrap::Unwrap(v.As<Napi::Object>())->flag();
}

void init_cancel(Napi::Env env, Napi::Object exports) { exports.Set("CancelToken", CancelTokenWrap::Define(env)); }

}  // namespace bl::napi
