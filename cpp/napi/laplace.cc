// Bindings of the Laplace layer, the low-level API other Node ML stacks use:
//   KfacAccumulator  per-layer K-FAC sums fed with (x, g) rows; merge; posterior()
//   LaplacePosterior eigen form: logDet, quadForm, logMarglik (+ gradient),
//                    optimizePrior, logit covariance from Jacobians
//   predictiveProbs  mc / probit / bridge / map from (mu, Lambda)
//   laplaceInternal  float64 linear algebra hooks for tests
// Every argument is validated on the JS thread and typed-array data is copied
// before heavy work runs on the libuv pool. Each object holds a busy flag:
// a second call while an async one is in flight fails with BUSY; after
// dispose() (idempotent) calls fail with DISPOSED.
#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>

#include "laplace/fit.h"
#include "laplace/jacobian_projector.h"
#include "laplace/kfac.h"
#include "laplace/linalg64.h"
#include "laplace/marglik.h"
#include "laplace/persist.h"
#include "laplace/posterior.h"
#include "laplace/predictive.h"
#include "napi/cancel.h"
#include "napi/model.h"
#include "napi/modules.h"
#include "napi/util.h"

namespace bl::napi {

namespace {

using namespace bl::laplace;

const napi_type_tag kKfacTag = {0x3c51a0b7e29d4f61ull, 0x8d2e6b1f0a7c5e93ull};
const napi_type_tag kPosteriorTag = {0x71f4c2d98e0b3a56ull, 0x2a9d5e7c1b3f6e08ull};

bool has(const Napi::Object& o, const char* key) {
  if (!o.Has(key)) return false;
  Napi::Value v = o.Get(key);
  return !v.IsUndefined() && !v.IsNull();
}

Napi::Object options_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return Napi::Object::New(info.Env());
  return get_object(info[i], what);
}

// A multiple-choice batch (ts/data/batch.ts McBatch), copied and validated.
struct McData {
  int B = 0, T = 0, C = 0;
  std::vector<int32_t> ids, last, rows, labels;
  std::vector<uint8_t> mask;
  McBatchView view() const { return {B, T, C, ids.data(), mask.data(), last.data(), rows.data(), labels.data()}; }
};

std::shared_ptr<McData> read_mc_batch(const Napi::Value& v, int vocab) {
  Napi::Object o = get_object(v, "batch");
  auto d = std::make_shared<McData>();
  d->B = int(get_int(o.Get("B"), "batch.B", 1, kMaxBatchTokens));
  d->T = int(get_int(o.Get("T"), "batch.T", 1, kMaxBatchTokens));
  d->C = int(get_int(o.Get("C"), "batch.C", 1, 4096));
  const int64_t n = int64_t(d->B) * d->T;
  BL_CHECK(n <= kMaxBatchTokens, code::kInvalidArgument, "batch: B*T exceeds ", kMaxBatchTokens);
  d->ids = copy_i32(o.Get("ids"), "batch.ids", n);
  d->mask = copy_u8(o.Get("mask"), "batch.mask", n);
  d->last = copy_i32(o.Get("last"), "batch.last", d->B);
  d->rows = copy_i32(o.Get("rows"), "batch.rows", int64_t(d->B) * d->C);
  if (has(o, "labels"))
    d->labels = copy_i32(o.Get("labels"), "batch.labels", d->B);
  else
    d->labels.assign(size_t(d->B), -1);
  validate_mc_batch(d->view(), vocab);
  return d;
}

bool is_tagged(Napi::Env env, const Napi::Value& v, const napi_type_tag* tag) {
  if (!v.IsObject()) return false;
  bool ok = false;
  napi_check_object_type_tag(env, v, tag, &ok);
  return ok;
}

// Exclusive use of one object for the duration of a (possibly async) call.
class Lock {
 public:
  Lock(std::shared_ptr<std::atomic<bool>> f, const char* what) : f_(std::move(f)) {
    bool expected = false;
    if (!f_->compare_exchange_strong(expected, true))
      fail(code::kBusy, what, " is in use by another call; await it first");
  }
  ~Lock() { release(); }
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;
  // Release when an async call's promise settles (its done callback, on the JS
  // thread): until then the call is in flight and others get BUSY. Without a
  // done callback (the work failed) the lock goes with the worker. Only the
  // first release clears the flag, which another call may hold afterwards.
  void release() {
    if (held_.exchange(false)) f_->store(false);
  }

 private:
  std::shared_ptr<std::atomic<bool>> f_;
  std::atomic<bool> held_{true};
};



std::vector<double> read_f64_list(const Napi::Value& v, const char* what) {
  std::vector<double> out;
  if (v.IsArray()) {
    Napi::Array a = v.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(get_number(a.Get(i), what));
  } else if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_float64_array) {
    auto s = get_f64(v, what);
    out.assign(s.data, s.data + s.size);
  } else {
    fail(code::kInvalidArgument, what, " must be an array of numbers or a Float64Array");
  }
  for (double d : out) BL_CHECK(std::isfinite(d), code::kInvalidArgument, what, " entries must be finite");
  return out;
}

// mu as Float64Array or Float32Array.
std::vector<double> read_real_array(const Napi::Value& v, const char* what, int64_t expect) {
  if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_float32_array) {
    auto s = get_f32(v, what, expect);
    return std::vector<double>(s.data, s.data + s.size);
  }
  auto s = get_f64(v, what, expect);
  return std::vector<double>(s.data, s.data + s.size);
}

// ---- handles ------------------------------------------------------------------------------

struct KfacHandle {
  std::shared_ptr<KfacAccumulator> acc;
  std::shared_ptr<std::atomic<bool>> busy = std::make_shared<std::atomic<bool>>(false);
  int64_t reported = 0;  // bytes reported to V8 (JS thread only)
};

struct PosteriorHandle {
  std::shared_ptr<Posterior> post;
  std::shared_ptr<std::atomic<bool>> busy = std::make_shared<std::atomic<bool>>(false);
  int64_t reported = 0;
};

int64_t posterior_bytes(const Posterior& p) {
  int64_t n = 0;
  for (int l = 0; l < p.num_layers(); ++l) {
    const auto& e = p.layer(l);
    n += int64_t(e.Ua.size() + e.la.size() + e.Ug.size() + e.lg.size()) * 8;
  }
  return n;
}

template <class H>
void report(Napi::Env env, H& h, int64_t now) {
  if (now != h.reported) adjust_external_memory(env, now - h.reported);
  h.reported = now;
}

int layer_arg(const Napi::Value& v, int n, const std::function<int(const std::string&)>& by_name) {
  if (v.IsString()) {
    const std::string name = v.As<Napi::String>().Utf8Value();
    int l = by_name(name);
    BL_CHECK(l >= 0, code::kInvalidArgument, "unknown layer '", name, "'");
    return l;
  }
  return int(get_int(v, "layer", 0, n - 1));
}

Napi::Object prior_fit_object(Napi::Env env, const PriorFit& f) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("deltas", to_f64(env, f.deltas.data(), f.deltas.size()));
  o.Set("logMarglik", f.log_marglik);
  o.Set("iterations", f.iterations);
  return o;
}

// ---- LaplacePosterior ------------------------------------------------------------------------

class PosteriorWrap : public Napi::ObjectWrap<PosteriorWrap> {
 public:
  static Napi::FunctionReference* Define(Napi::Env env, Napi::Object exports);
  explicit PosteriorWrap(const Napi::CallbackInfo& info);
  ~PosteriorWrap() override;
  // Create a JS LaplacePosterior around `p` (JS thread).
  static Napi::Object Wrap(Napi::Env env, Napi::FunctionReference* ctor, std::shared_ptr<Posterior> p);
  std::shared_ptr<Posterior> posterior_or_throw() const { return post(); }

 private:
  using Method = Napi::Value (PosteriorWrap::*)(const Napi::CallbackInfo&);
  template <Method M>
  Napi::Value call(const Napi::CallbackInfo& info) {
    return guarded(info, [this](const Napi::CallbackInfo& i) { return (this->*M)(i); });
  }
  std::shared_ptr<Posterior> post() const {
    BL_CHECK(h_.post != nullptr, code::kDisposed, "the posterior has been disposed");
    return h_.post;
  }
  int layer_of(const Napi::Value& v) const {
    auto p = post();
    return layer_arg(v, p->num_layers(), [&](const std::string& n) {
      for (int l = 0; l < p->num_layers(); ++l)
        if (p->layer(l).name == n) return l;
      return -1;
    });
  }
  std::vector<double> theta_arg(const Napi::Object& o) const {
    BL_CHECK(has(o, "thetaNormSq"), code::kInvalidArgument, "thetaNormSq is required");
    return read_f64_list(o.Get("thetaNormSq"), "thetaNormSq");
  }

  Napi::Value Layers(const Napi::CallbackInfo& info);
  Napi::Value NumParams(const Napi::CallbackInfo& info);
  Napi::Value Prior(const Napi::CallbackInfo& info);
  Napi::Value SetPrior(const Napi::CallbackInfo& info);
  Napi::Value LogDet(const Napi::CallbackInfo& info);
  Napi::Value LogDetLayers(const Napi::CallbackInfo& info);
  Napi::Value QuadForm(const Napi::CallbackInfo& info);
  Napi::Value Eigen(const Napi::CallbackInfo& info);
  Napi::Value LogMarglik(const Napi::CallbackInfo& info);
  Napi::Value LogMarglikGrad(const Napi::CallbackInfo& info);
  Napi::Value OptimizePrior(const Napi::CallbackInfo& info);
  Napi::Value Lambda(const Napi::CallbackInfo& info);
  Napi::Value PredictBatch(const Napi::CallbackInfo& info);
  Napi::Value SetFisher(const Napi::CallbackInfo& info);
  Napi::Value MemoryBytes(const Napi::CallbackInfo& info);
  Napi::Value Fisher(const Napi::CallbackInfo& info);
  Napi::Value Warnings(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value Disposed(const Napi::CallbackInfo& info);

  PosteriorHandle h_;
};

Napi::FunctionReference* PosteriorWrap::Define(Napi::Env env, Napi::Object exports) {
  auto* ctor = new Napi::FunctionReference();
  Napi::Function cls = DefineClass(
      env, "LaplacePosterior",
      {
          InstanceMethod("layers", &PosteriorWrap::call<&PosteriorWrap::Layers>),
          InstanceMethod("numParams", &PosteriorWrap::call<&PosteriorWrap::NumParams>),
          InstanceMethod("prior", &PosteriorWrap::call<&PosteriorWrap::Prior>),
          InstanceMethod("setPrior", &PosteriorWrap::call<&PosteriorWrap::SetPrior>),
          InstanceMethod("logDet", &PosteriorWrap::call<&PosteriorWrap::LogDet>),
          InstanceMethod("logDetLayers", &PosteriorWrap::call<&PosteriorWrap::LogDetLayers>),
          InstanceMethod("quadForm", &PosteriorWrap::call<&PosteriorWrap::QuadForm>),
          InstanceMethod("eigen", &PosteriorWrap::call<&PosteriorWrap::Eigen>),
          InstanceMethod("logMarglik", &PosteriorWrap::call<&PosteriorWrap::LogMarglik>),
          InstanceMethod("logMarglikGrad", &PosteriorWrap::call<&PosteriorWrap::LogMarglikGrad>),
          InstanceMethod("optimizePrior", &PosteriorWrap::call<&PosteriorWrap::OptimizePrior>),
          InstanceMethod("lambda", &PosteriorWrap::call<&PosteriorWrap::Lambda>),
          InstanceMethod("predictBatch", &PosteriorWrap::call<&PosteriorWrap::PredictBatch>),
          InstanceMethod("setFisher", &PosteriorWrap::call<&PosteriorWrap::SetFisher>),
          InstanceMethod("memoryBytes", &PosteriorWrap::call<&PosteriorWrap::MemoryBytes>),
          InstanceMethod("fisher", &PosteriorWrap::call<&PosteriorWrap::Fisher>),
          InstanceMethod("warnings", &PosteriorWrap::call<&PosteriorWrap::Warnings>),
          InstanceMethod("dispose", &PosteriorWrap::call<&PosteriorWrap::Dispose>),
          InstanceMethod("isDisposed", &PosteriorWrap::call<&PosteriorWrap::Disposed>),
      });
  *ctor = Napi::Persistent(cls);
  env.AddCleanupHook([ctor] { delete ctor; });
  exports.Set("LaplacePosterior", cls);
  return ctor;
}

PosteriorWrap::PosteriorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PosteriorWrap>(info) {
  if (info.Length() < 1 || !info[0].IsExternal())
    throw make_error(info.Env(), code::kInvalidArgument,
                     "a LaplacePosterior is created by KfacAccumulator.posterior()");
  h_.post = *info[0].As<Napi::External<std::shared_ptr<Posterior>>>().Data();
  napi_type_tag_object(info.Env(), info.This(), &kPosteriorTag);
}

PosteriorWrap::~PosteriorWrap() {
  if (h_.reported) adjust_external_memory(Env(), -h_.reported);
}

Napi::Object PosteriorWrap::Wrap(Napi::Env env, Napi::FunctionReference* ctor, std::shared_ptr<Posterior> p) {
  auto ext = Napi::External<std::shared_ptr<Posterior>>::New(env, &p);
  Napi::Object obj = ctor->New({ext});
  PosteriorWrap* w = Unwrap(obj);
  report(env, w->h_, posterior_bytes(*p));
  return obj;
}

Napi::Value PosteriorWrap::Layers(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto p = post();
  Napi::Array a = Napi::Array::New(env, size_t(p->num_layers()));
  for (int l = 0; l < p->num_layers(); ++l) {
    const auto& e = p->layer(l);
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", e.name);
    o.Set("dIn", e.d_in);
    o.Set("dOut", e.d_out);
    o.Set("id", e.id);
    o.Set("count", e.Z);
    o.Set("ka", e.ka);
    o.Set("kg", e.kg);
    a.Set(uint32_t(l), o);
  }
  return a;
}

Napi::Value PosteriorWrap::NumParams(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(post()->num_params()));
}

Napi::Value PosteriorWrap::Prior(const Napi::CallbackInfo& info) {
  auto p = post();
  Lock lk(h_.busy, "the posterior");
  return to_f64(info.Env(), p->prior().data(), p->prior().size());
}

Napi::Value PosteriorWrap::SetPrior(const Napi::CallbackInfo& info) {
  auto p = post();
  Lock lk(h_.busy, "the posterior");
  Napi::Object o = get_object(info[0], "prior");
  if (has(o, "deltas"))
    p->set_prior(read_f64_list(o.Get("deltas"), "deltas"));
  else
    p->set_prior(get_number(o.Get("delta"), "delta"));
  return info.Env().Undefined();
}

Napi::Value PosteriorWrap::LogDet(const Napi::CallbackInfo& info) {
  auto p = post();
  Lock lk(h_.busy, "the posterior");
  return Napi::Number::New(info.Env(), p->log_det());
}

Napi::Value PosteriorWrap::LogDetLayers(const Napi::CallbackInfo& info) {
  auto p = post();
  Lock lk(h_.busy, "the posterior");
  std::vector<double> v(size_t(p->num_layers()));
  for (int l = 0; l < p->num_layers(); ++l) v[size_t(l)] = p->log_det_layer(l);
  return to_f64(info.Env(), v.data(), v.size());
}

Napi::Value PosteriorWrap::QuadForm(const Napi::CallbackInfo& info) {
  auto p = post();
  const int l = layer_of(info[0]);
  Lock lk(h_.busy, "the posterior");
  const int64_t D = p->layer(l).D();
  auto J = read_real_array(info[1], "J", D);
  std::vector<double> J2;
  if (info.Length() > 2 && !info[2].IsUndefined() && !info[2].IsNull()) J2 = read_real_array(info[2], "J2", D);
  for (double v : J) BL_CHECK(std::isfinite(v), code::kInvalidArgument, "J must be finite");
  for (double v : J2) BL_CHECK(std::isfinite(v), code::kInvalidArgument, "J2 must be finite");
  return Napi::Number::New(info.Env(), p->quad_form(l, J.data(), J2.empty() ? nullptr : J2.data()));
}

Napi::Value PosteriorWrap::Eigen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto p = post();
  const int l = layer_of(info[0]);
  const auto& e = p->layer(l);
  Napi::Object o = Napi::Object::New(env);
  o.Set("ua", to_f64(env, e.Ua.data(), e.Ua.size()));
  o.Set("la", to_f64(env, e.la.data(), e.la.size()));
  o.Set("ug", to_f64(env, e.Ug.data(), e.Ug.size()));
  o.Set("lg", to_f64(env, e.lg.data(), e.lg.size()));
  o.Set("ka", e.ka);
  o.Set("kg", e.kg);
  o.Set("count", e.Z);
  return o;
}

Napi::Value PosteriorWrap::LogMarglik(const Napi::CallbackInfo& info) {
  auto p = post();
  Lock lk(h_.busy, "the posterior");
  Napi::Object o = get_object(info[0], "options");
  const double ll = get_number(o.Get("logLik"), "logLik");
  return Napi::Number::New(info.Env(), log_marglik(*p, ll, theta_arg(o)));
}

Napi::Value PosteriorWrap::LogMarglikGrad(const Napi::CallbackInfo& info) {
  auto p = post();
  Lock lk(h_.busy, "the posterior");
  Napi::Object o = get_object(info[0], "options");
  auto g = log_marglik_grad(*p, theta_arg(o), opt_bool(o, "perLayer", false));
  return to_f64(info.Env(), g.data(), g.size());
}

Napi::Value PosteriorWrap::OptimizePrior(const Napi::CallbackInfo& info) {
  auto p = post();
  auto lk = std::make_shared<Lock>(h_.busy, "the posterior");
  Napi::Object o = get_object(info[0], "options");
  const double ll = get_number(o.Get("logLik"), "logLik");
  auto theta = theta_arg(o);
  const bool per_layer = opt_bool(o, "perLayer", false);
  const double lo = opt_number(o, "min", 1e-8), hi = opt_number(o, "max", 1e8);
  auto cancel = cancel_arg(o);
  BL_CHECK(std::isfinite(ll), code::kInvalidArgument, "logLik must be finite");
  BL_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo > 0 && hi >= lo, code::kInvalidArgument,
           "prior bounds must satisfy 0 < min <= max < inf");
  BL_CHECK(theta.size() == size_t(p->num_layers()), code::kShapeMismatch, "thetaNormSq has ", theta.size(),
           " entries for ", p->num_layers(), " layers");
  auto fit = std::make_shared<PriorFit>();
  return run_async(
      info.Env(), "bayeslora.laplace.optimizePrior",
      [p, lk, ll, theta, per_layer, lo, hi, fit, cancel] {
        CancelScope cs(cancel);
        check_cancel("optimizePrior");
        *fit = optimize_prior(*p, ll, theta, per_layer, lo, hi);
      },
      [fit, lk](Napi::Env env) -> Napi::Value {
        lk->release();
        return prior_fit_object(env, *fit);
      },
      {info.This()});
}

// lambda(jacobians, {B, C}): jacobians[l] is a Float32Array [B*C*dOut*dIn]
// (example-major, then class) or null for a layer without Jacobians.
Napi::Value PosteriorWrap::Lambda(const Napi::CallbackInfo& info) {
  auto p = post();
  auto lk = std::make_shared<Lock>(h_.busy, "the posterior");
  BL_CHECK(info[0].IsArray(), code::kInvalidArgument, "jacobians must be an array (one entry per layer)");
  Napi::Array arr = info[0].As<Napi::Array>();
  BL_CHECK(arr.Length() == uint32_t(p->num_layers()), code::kShapeMismatch, "jacobians has ", arr.Length(),
           " entries for ", p->num_layers(), " layers");
  Napi::Object o = options_arg(info, 1, "options");
  const int C = int(get_int(o.Get("C"), "C", 1, 4096));
  const int B = int(opt_int(o, "B", 1, 1, 1 << 20));
  auto jac = std::make_shared<std::vector<std::vector<float>>>(arr.Length());
  for (uint32_t l = 0; l < arr.Length(); ++l) {
    Napi::Value v = arr.Get(l);
    if (v.IsUndefined() || v.IsNull()) continue;
    (*jac)[l] = copy_f32(v, "jacobians[l]", int64_t(B) * C * p->layer(int(l)).D());
    for (float f : (*jac)[l]) BL_CHECK(std::isfinite(f), code::kInvalidArgument, "jacobians must be finite");
  }
  auto out = std::make_shared<std::vector<double>>();
  return run_async(
      info.Env(), "bayeslora.laplace.lambda",
      [p, lk, jac, out, B, C] {
        JacobianProjector jp(p);
        jp.begin_batch(B, C);
        for (int l = 0; l < p->num_layers(); ++l) {
          const auto& J = (*jac)[size_t(l)];
          if (J.empty()) continue;
          const size_t D = size_t(p->layer(l).D());
          for (int b = 0; b < B; ++b)
            for (int c = 0; c < C; ++c) jp.add_jacobian(l, b, c, &J[(size_t(b) * size_t(C) + size_t(c)) * D]);
        }
        *out = jp.lambda();
      },
      [out, lk](Napi::Env env) -> Napi::Value {
        lk->release();
        return to_f64(env, out->data(), out->size());
      },
      {info.This()});
}

// predictBatch(model, batch, {cancel?, priorScales?}) -> {logits [B*C], lambda [B*C*C], logLik, nLabelled,
//   lambdaGrid [S*B*C*C] with priorScales (S values): Lambda at the prior times each scale, same passes}
Napi::Value PosteriorWrap::PredictBatch(const Napi::CallbackInfo& info) {
  auto p = post();
  auto lease = std::make_shared<ModelLease>(model_handle(info[0]));
  auto batch = read_mc_batch(info[1], lease->model().config().vocab_size);
  for (int l = 0; l < p->num_layers(); ++l) {
    const auto& e = p->layer(l);
    BL_CHECK(e.id < lease->model().num_lora_matrices(), code::kShapeMismatch, "posterior layer '", e.name,
             "' has no LoRA matrix in the model");
    const LoraMatrixInfo mi = lease->model().lora_matrix(e.id);
    BL_CHECK(mi.d_in == e.d_in && mi.d_out == e.d_out, code::kShapeMismatch, "posterior layer '", e.name,
             "' is ", e.d_out, "x", e.d_in, ", the model's LoRA matrix ", e.id, " is ", mi.d_out, "x", mi.d_in);
  }
  const Napi::Object opts = options_arg(info, 2, "options");
  auto cancel = cancel_arg(opts);
  std::vector<double> scales;
  const bool grid = has(opts, "priorScales");
  if (grid) {
    scales = read_f64_list(opts.Get("priorScales"), "priorScales");
    BL_CHECK(!scales.empty(), code::kInvalidArgument, "priorScales must not be empty");
    // Validated now as predict_batch will use them (after the posterior's own
    // prior): a typed error before any pass runs.
    std::vector<double> all{1.0};
    all.insert(all.end(), scales.begin(), scales.end());
    JacobianProjector::check_prior_scales(*p, all);
  }
  auto lk = std::make_shared<Lock>(h_.busy, "the posterior");
  auto out = std::make_shared<PredictBatchOut>();
  return run_async(
      info.Env(), "bayeslora.laplace.predictBatch",
      [p, lease, batch, lk, out, cancel, scales] {
        CancelScope cs(cancel);
        *out = predict_batch(lease->model(), batch->view(), p, scales);
      },
      [lease, lk, out, grid](Napi::Env env) -> Napi::Value {
        lk->release();
        lease->report_memory(env);
        Napi::Object r = Napi::Object::New(env);
        r.Set("logits", to_f32(env, out->logits.data(), out->logits.size()));
        r.Set("lambda", to_f64(env, out->lambda.data(), out->lambda.size()));
        if (grid) r.Set("lambdaGrid", to_f64(env, out->lambda_grid.data(), out->lambda_grid.size()));
        r.Set("logLik", out->log_lik);
        r.Set("nLabelled", out->n_labelled);
        return r;
      },
      {info.This(), info[0]});
}

Napi::Value PosteriorWrap::SetFisher(const Napi::CallbackInfo& info) {
  auto p = post();
  Lock lk(h_.busy, "the posterior");
  p->fisher = get_string(info[0], "fisher");
  return info.Env().Undefined();
}

Napi::Value PosteriorWrap::MemoryBytes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(posterior_bytes(*post())));
}

Napi::Value PosteriorWrap::Fisher(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), post()->fisher);
}

// Numerical adjustments (non-PSD factors clamped, priors clamped), in words.
Napi::Value PosteriorWrap::Warnings(const Napi::CallbackInfo& info) {
  auto p = post();
  Lock lk(h_.busy, "the posterior");
  Napi::Array a = Napi::Array::New(info.Env(), p->warnings.size());
  for (size_t i = 0; i < p->warnings.size(); ++i) a.Set(uint32_t(i), p->warnings[i]);
  return a;
}

Napi::Value PosteriorWrap::Dispose(const Napi::CallbackInfo& info) {
  if (!h_.post) return info.Env().Undefined();
  Lock lk(h_.busy, "the posterior");  // BUSY while an async call is in flight
  h_.post.reset();
  report(info.Env(), h_, 0);
  return info.Env().Undefined();
}

Napi::Value PosteriorWrap::Disposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), h_.post == nullptr);
}

// ---- KfacAccumulator -------------------------------------------------------------------------

class KfacWrap : public Napi::ObjectWrap<KfacWrap> {
 public:
  static Napi::FunctionReference* Define(Napi::Env env, Napi::Object exports, Napi::FunctionReference* post_ctor);
  explicit KfacWrap(const Napi::CallbackInfo& info);
  ~KfacWrap() override;
  KfacHandle& handle() { return h_; }
  // Create a JS KfacAccumulator around `a` (JS thread).
  static Napi::Object Wrap(Napi::Env env, Napi::FunctionReference* ctor, std::shared_ptr<KfacAccumulator> a);

 private:
  using Method = Napi::Value (KfacWrap::*)(const Napi::CallbackInfo&);
  template <Method M>
  Napi::Value call(const Napi::CallbackInfo& info) {
    return guarded(info, [this](const Napi::CallbackInfo& i) { return (this->*M)(i); });
  }
  std::shared_ptr<KfacAccumulator> acc() const {
    BL_CHECK(h_.acc != nullptr, code::kDisposed, "the K-FAC accumulator has been disposed");
    return h_.acc;
  }
  int layer_of(const Napi::Value& v) const {
    auto a = acc();
    return layer_arg(v, a->num_layers(), [&](const std::string& n) { return a->find_layer(n); });
  }
  void sync_memory(Napi::Env env) {
    if (h_.acc) report(env, h_, h_.acc->memory().current.load());
  }

  Napi::Value Add(const Napi::CallbackInfo& info);
  Napi::Value Merge(const Napi::CallbackInfo& info);
  Napi::Value MakePosterior(const Napi::CallbackInfo& info);
  Napi::Value Factor(const Napi::CallbackInfo& info);
  Napi::Value FitBatch(const Napi::CallbackInfo& info);
  Napi::Value Counts(const Napi::CallbackInfo& info);
  Napi::Value Layers(const Napi::CallbackInfo& info);
  Napi::Value Memory(const Napi::CallbackInfo& info);
  Napi::Value ResetPeak(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value Disposed(const Napi::CallbackInfo& info);

  KfacHandle h_;
};

Napi::FunctionReference* KfacWrap::Define(Napi::Env env, Napi::Object exports, Napi::FunctionReference* post_ctor) {
  auto* ctor = new Napi::FunctionReference();
  Napi::Function cls = DefineClass(
      env, "KfacAccumulator",
      {
          InstanceMethod("add", &KfacWrap::call<&KfacWrap::Add>),
          InstanceMethod("merge", &KfacWrap::call<&KfacWrap::Merge>),
          InstanceMethod("posterior", &KfacWrap::call<&KfacWrap::MakePosterior>, napi_default, post_ctor),
          InstanceMethod("factor", &KfacWrap::call<&KfacWrap::Factor>),
          InstanceMethod("fitBatch", &KfacWrap::call<&KfacWrap::FitBatch>),
          InstanceMethod("counts", &KfacWrap::call<&KfacWrap::Counts>),
          InstanceMethod("layers", &KfacWrap::call<&KfacWrap::Layers>),
          InstanceMethod("memory", &KfacWrap::call<&KfacWrap::Memory>),
          InstanceMethod("resetPeak", &KfacWrap::call<&KfacWrap::ResetPeak>),
          InstanceMethod("dispose", &KfacWrap::call<&KfacWrap::Dispose>),
          InstanceMethod("isDisposed", &KfacWrap::call<&KfacWrap::Disposed>),
      });
  *ctor = Napi::Persistent(cls);
  env.AddCleanupHook([ctor] { delete ctor; });
  exports.Set("KfacAccumulator", cls);
  return ctor;
}

Napi::Object KfacWrap::Wrap(Napi::Env env, Napi::FunctionReference* ctor, std::shared_ptr<KfacAccumulator> a) {
  auto ext = Napi::External<std::shared_ptr<KfacAccumulator>>::New(env, &a);
  Napi::Object obj = ctor->New({ext});
  return obj;
}

KfacWrap::KfacWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<KfacWrap>(info) {
  guarded(info, [this](const Napi::CallbackInfo& i) -> Napi::Value {
    if (i.Length() >= 1 && i[0].IsExternal()) {  // from loadLaplace
      h_.acc = *i[0].As<Napi::External<std::shared_ptr<KfacAccumulator>>>().Data();
      napi_type_tag_object(i.Env(), i.This(), &kKfacTag);
      sync_memory(i.Env());
      return i.Env().Undefined();
    }
    Napi::Object o = get_object(i[0], "options");
    BL_CHECK(o.Get("layers").IsArray(), code::kInvalidArgument, "options.layers must be an array");
    Napi::Array la = o.Get("layers").As<Napi::Array>();
    BL_CHECK(la.Length() >= 1 && la.Length() <= 100000, code::kInvalidArgument,
             "options.layers must hold 1..100000 layers");
    std::vector<KfacLayerSpec> specs;
    for (uint32_t l = 0; l < la.Length(); ++l) {
      Napi::Object s = get_object(la.Get(l), "layer");
      KfacLayerSpec k;
      k.name = has(s, "name") ? get_string(s.Get("name"), "layer.name") : "layer" + std::to_string(l);
      k.d_in = int(get_int(s.Get("dIn"), "layer.dIn", 1, 1 << 20));
      k.d_out = int(get_int(s.Get("dOut"), "layer.dOut", 1, 1 << 20));
      k.id = int(opt_int(s, "id", -1, -1, (1 << 24) - 1));
      specs.push_back(k);
    }
    KfacOptions opt;
    opt.tokens = parse_token_mode(opt_string(o, "tokens", "reduce"));
    opt.threshold = int(opt_int(o, "threshold", opt.threshold, 1, 1 << 20));
    opt.n_kfac = int(opt_int(o, "nKfac", opt.n_kfac, 1, 4096));
    opt.chunk = int(opt_int(o, "chunk", 0, 0, 65536));
    h_.acc = std::make_shared<KfacAccumulator>(std::move(specs), opt);
    napi_type_tag_object(i.Env(), i.This(), &kKfacTag);
    sync_memory(i.Env());
    return i.Env().Undefined();
  });
}

KfacWrap::~KfacWrap() {
  if (h_.reported) adjust_external_memory(Env(), -h_.reported);
}

// add(layer, x | null, g | null, {B, T = 1, mask?, weight = 1, accumulateInputs = true})
Napi::Value KfacWrap::Add(const Napi::CallbackInfo& info) {
  auto a = acc();
  const int l = layer_of(info[0]);
  auto lk = std::make_shared<Lock>(h_.busy, "the K-FAC accumulator");
  Napi::Object o = get_object(info[3], "options");
  const int B = int(get_int(o.Get("B"), "B", 0, 1 << 24));
  const int T = int(opt_int(o, "T", 1, 1, 1 << 24));
  const int64_t rows = int64_t(B) * T;
  BL_CHECK(rows <= (int64_t(1) << 28), code::kInvalidArgument, "B*T too large");
  const double weight = opt_number(o, "weight", 1.0);
  BL_CHECK(std::isfinite(weight) && weight >= 0, code::kInvalidArgument, "weight must be finite and >= 0");
  const bool inputs = opt_bool(o, "accumulateInputs", true);
  const auto& spec = a->layer(l).spec;
  auto x = std::make_shared<std::vector<float>>();
  auto g = std::make_shared<std::vector<float>>();
  auto mask = std::make_shared<std::vector<uint8_t>>();
  const bool has_x = !(info[1].IsNull() || info[1].IsUndefined());
  const bool has_g = !(info[2].IsNull() || info[2].IsUndefined());
  BL_CHECK(!inputs || has_x, code::kInvalidArgument, "x is required when accumulateInputs is true");
  if (has_x) *x = copy_f32(info[1], "x", rows * spec.d_in);
  if (has_g) *g = copy_f32(info[2], "g", rows * spec.d_out);
  for (float v : *x) BL_CHECK(std::isfinite(v), code::kInvalidArgument, "x must be finite");
  for (float v : *g) BL_CHECK(std::isfinite(v), code::kInvalidArgument, "g must be finite");
  if (has(o, "mask")) *mask = copy_u8(o.Get("mask"), "mask", rows);
  return run_async(
      info.Env(), "bayeslora.kfac.add",
      [a, lk, l, x, g, mask, B, T, inputs, weight, has_x, has_g] {
        a->add(l, has_x ? x->data() : nullptr, has_g ? g->data() : nullptr, B, T,
               mask->empty() ? nullptr : mask->data(), inputs && has_x, weight);
      },
      [this, lk](Napi::Env env) -> Napi::Value {
        lk->release();
        sync_memory(env);
        return env.Undefined();
      },
      {info.This()});
}

Napi::Value KfacWrap::Merge(const Napi::CallbackInfo& info) {
  auto a = acc();
  BL_CHECK(is_tagged(info.Env(), info[0], &kKfacTag), code::kInvalidArgument, "merge expects a KfacAccumulator");
  KfacWrap* other = Unwrap(info[0].As<Napi::Object>());
  BL_CHECK(other->h_.acc != nullptr, code::kDisposed, "the other K-FAC accumulator has been disposed");
  auto b = other->h_.acc;
  auto lk = std::make_shared<Lock>(h_.busy, "the K-FAC accumulator");
  std::shared_ptr<Lock> lk2;
  if (other != this) lk2 = std::make_shared<Lock>(other->h_.busy, "the other K-FAC accumulator");
  return run_async(
      info.Env(), "bayeslora.kfac.merge", [a, b, lk, lk2] {
        a->merge(*b);
      },
      [this, other, lk, lk2](Napi::Env env) -> Napi::Value {
        lk->release();
        if (lk2) lk2->release();
        sync_memory(env);
        other->sync_memory(env);
        return env.Undefined();
      },
      {info.This(), info[0]});
}

// posterior({delta = 1} | {deltas}) -> Promise<LaplacePosterior>
Napi::Value KfacWrap::MakePosterior(const Napi::CallbackInfo& info) {
  auto* ctor = static_cast<Napi::FunctionReference*>(info.Data());
  auto a = acc();
  auto lk = std::make_shared<Lock>(h_.busy, "the K-FAC accumulator");
  Napi::Object o = options_arg(info, 0, "options");
  std::vector<double> deltas;
  if (has(o, "deltas")) {
    deltas = read_f64_list(o.Get("deltas"), "deltas");
    BL_CHECK(deltas.size() == size_t(a->num_layers()), code::kShapeMismatch, "deltas has ", deltas.size(),
             " entries for ", a->num_layers(), " layers");
  }
  const double delta = opt_number(o, "delta", 1.0);
  BL_CHECK(std::isfinite(delta) && delta > 0, code::kInvalidArgument, "delta must be finite and > 0");
  for (double d : deltas) BL_CHECK(d > 0, code::kInvalidArgument, "deltas must be > 0");
  auto cancel = cancel_arg(o);
  auto out = std::make_shared<std::shared_ptr<Posterior>>();
  return run_async(
      info.Env(), "bayeslora.kfac.posterior",
      [a, lk, out, delta, deltas, cancel] {
        CancelScope cs(cancel);
        *out = Posterior::from_kfac(*a, delta);
        if (!deltas.empty()) (*out)->set_prior(deltas);
      },
      [this, ctor, out, lk](Napi::Env env) -> Napi::Value {
        lk->release();
        sync_memory(env);
        return PosteriorWrap::Wrap(env, ctor, *out);
      },
      {info.This()});
}

// factor(layer, 'A' | 'G') -> {kind: 'dense' | 'lowrank', d, k, data}: dense
// S (d x d) or L (d x k) with L L^T ~= S, float64 row-major (a copy).
Napi::Value KfacWrap::Factor(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto a = acc();
  const int l = layer_of(info[0]);
  const std::string side = get_string(info[1], "side");
  BL_CHECK(side == "A" || side == "G", code::kInvalidArgument, "side must be 'A' or 'G'");
  Lock lk(h_.busy, "the K-FAC accumulator");
  KfacLayer& L = a->layer_mut(l);
  KfacFactor& F = side == "A" ? L.A : L.G;
  Napi::Object o = Napi::Object::New(env);
  o.Set("d", F.d());
  if (F.lowrank()) {
    F.flush();
    const int k = F.lr().rank();
    std::vector<double> data(size_t(F.d()) * size_t(k));
    F.lr().copy_L(data.data());
    o.Set("kind", "lowrank");
    o.Set("k", k);
    o.Set("data", to_f64(env, data.data(), data.size()));
  } else {
    std::vector<double> S;  // a side held as rows (kfac.h) is summed here
    F.dense_copy(S);
    o.Set("kind", "dense");
    o.Set("k", F.d());
    o.Set("data", to_f64(env, S.data(), S.size()));
  }
  return o;
}

// fitBatch(model, batch, {fisher = 'exact', samples = 1, seed = 0, batchIndex = 0})
//   -> {logLik, nLabelled, nExamples}: one forward, the Fisher's backward passes.
Napi::Value KfacWrap::FitBatch(const Napi::CallbackInfo& info) {
  auto a = acc();
  auto lease = std::make_shared<ModelLease>(model_handle(info[0]));
  auto batch = read_mc_batch(info[1], lease->model().config().vocab_size);
  Napi::Object o = options_arg(info, 2, "options");
  FisherOptions fo;
  fo.type = parse_fisher(opt_string(o, "fisher", "exact"));
  fo.samples = int(opt_int(o, "samples", 1, 1, 4096));
  fo.seed = uint64_t(opt_int(o, "seed", 0, 0, int64_t(1) << 53));
  const uint64_t index = uint64_t(opt_int(o, "batchIndex", 0, 0, int64_t(1) << 53));
  auto cancel = cancel_arg(o);
  auto lk = std::make_shared<Lock>(h_.busy, "the K-FAC accumulator");
  auto st = std::make_shared<FisherBatchStats>();
  return run_async(
      info.Env(), "bayeslora.kfac.fitBatch",
      [a, lease, batch, fo, index, lk, st, cancel] {
        CancelScope cs(cancel);
        *st = fisher_batch(lease->model(), batch->view(), *a, fo, index);
      },
      [this, lease, lk, st](Napi::Env env) -> Napi::Value {
        lk->release();
        lease->report_memory(env);
        sync_memory(env);
        Napi::Object r = Napi::Object::New(env);
        r.Set("logLik", st->log_lik);
        r.Set("nLabelled", st->n_labelled);
        r.Set("nExamples", st->n_examples);
        return r;
      },
      {info.This(), info[0]});
}

Napi::Value KfacWrap::Counts(const Napi::CallbackInfo& info) {
  auto a = acc();
  Lock lk(h_.busy, "the K-FAC accumulator");
  std::vector<double> z(size_t(a->num_layers()));
  for (int l = 0; l < a->num_layers(); ++l) z[size_t(l)] = a->layer(l).Z;
  return to_f64(info.Env(), z.data(), z.size());
}

Napi::Value KfacWrap::Layers(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto a = acc();
  Napi::Array arr = Napi::Array::New(env, size_t(a->num_layers()));
  for (int l = 0; l < a->num_layers(); ++l) {
    const auto& L = a->layer(l);
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", L.spec.name);
    o.Set("dIn", L.spec.d_in);
    o.Set("dOut", L.spec.d_out);
    o.Set("id", L.spec.id);
    o.Set("lowRankA", L.A.lowrank());
    o.Set("lowRankG", L.G.lowrank());
    arr.Set(uint32_t(l), o);
  }
  return arr;
}

Napi::Value KfacWrap::Memory(const Napi::CallbackInfo& info) {
  auto a = acc();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("currentBytes", double(a->memory().current.load()));
  o.Set("peakBytes", double(a->memory().peak.load()));
  return o;
}

Napi::Value KfacWrap::ResetPeak(const Napi::CallbackInfo& info) {
  acc()->memory().reset_peak();
  return info.Env().Undefined();
}

Napi::Value KfacWrap::Dispose(const Napi::CallbackInfo& info) {
  if (!h_.acc) return info.Env().Undefined();
  Lock lk(h_.busy, "the K-FAC accumulator");
  h_.acc.reset();
  report(info.Env(), h_, 0);
  return info.Env().Undefined();
}

Napi::Value KfacWrap::Disposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), h_.acc == nullptr);
}

// ---- free functions ------------------------------------------------------------------------

// predictiveProbs(mu [B*C], Lambda [B*C*C] | null, {C?, method = 'mc', samples = 1000, seed = 0, eps = 0})
// C may be omitted when Lambda is given (C = |Lambda| / |mu|).
Napi::Value PredictiveProbs(const Napi::CallbackInfo& info) {
  Napi::Object o = options_arg(info, 2, "options");
  PredictiveOptions po;
  po.method = parse_link(opt_string(o, "method", "mc"));
  po.samples = int(opt_int(o, "samples", 1000, 1, 10000000));
  po.seed = uint64_t(opt_int(o, "seed", 0, 0, int64_t(1) << 53));
  po.eps = opt_number(o, "eps", 0.0);
  auto cancel = cancel_arg(o);
  const bool want_report = opt_bool(o, "report", false);
  BL_CHECK(std::isfinite(po.eps) && po.eps >= 0, code::kInvalidArgument, "eps must be finite and >= 0");
  auto mu = std::make_shared<std::vector<double>>(read_real_array(info[0], "mu", -1));
  auto lam = std::make_shared<std::vector<double>>();
  const bool has_lam = !(info[1].IsNull() || info[1].IsUndefined());
  if (has_lam) *lam = read_real_array(info[1], "Lambda", -1);
  int C = 0;
  if (has(o, "C")) {
    C = int(get_int(o.Get("C"), "C", 1, 4096));
  } else {
    BL_CHECK(has_lam && !mu->empty(), code::kInvalidArgument, "options.C is required without Lambda");
    C = int(lam->size() / mu->size());
    BL_CHECK(C >= 1 && size_t(C) * mu->size() == lam->size(), code::kShapeMismatch, "Lambda has ", lam->size(),
             " entries, not |mu| * C for mu of ", mu->size());
  }
  BL_CHECK(mu->size() % size_t(C) == 0, code::kShapeMismatch, "mu has ", mu->size(),
           " entries, not a multiple of C = ", C);
  const int B = int(mu->size() / size_t(C));
  if (has_lam)
    BL_CHECK(lam->size() == size_t(B) * size_t(C) * size_t(C), code::kShapeMismatch, "Lambda has ", lam->size(),
             " elements, expected ", size_t(B) * size_t(C) * size_t(C));
  BL_CHECK(po.method == LinkApprox::kMap || has_lam || B == 0, code::kInvalidArgument,
           "Lambda is required unless method is 'map'");
  auto out = std::make_shared<std::vector<double>>(size_t(B) * size_t(C));
  auto rep = std::make_shared<PredictiveReport>();
  return run_async(
      info.Env(), "bayeslora.laplace.predictive",
      [mu, lam, out, B, C, po, cancel, rep] {
        CancelScope cs(cancel);
        predictive_probs(B, C, mu->data(), lam->empty() ? nullptr : lam->data(), po, out->data(), rep.get());
      },
      [out, rep, want_report](Napi::Env env) -> Napi::Value {
        Napi::Float64Array probs = to_f64(env, out->data(), out->size());
        if (!want_report) return probs;
        // {probs, jitteredRows, maxJitter}: rows whose Lambda needed diagonal jitter for the Cholesky.
        Napi::Object r = Napi::Object::New(env);
        r.Set("probs", probs);
        r.Set("jitteredRows", rep->jittered_rows);
        r.Set("maxJitter", rep->max_jitter);
        return r;
      });
}

Napi::Value SymEig(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int n = int(get_int(info[1], "n", 0, 4096));
  auto A = get_f64(info[0], "A", int64_t(n) * n);
  std::vector<double> w(static_cast<size_t>(n)), V(static_cast<size_t>(n) * static_cast<size_t>(n));
  la::sym_eig(n, A.data, w.data(), V.data());
  Napi::Object o = Napi::Object::New(env);
  o.Set("w", to_f64(env, w.data(), w.size()));
  o.Set("V", to_f64(env, V.data(), V.size()));
  return o;
}

Napi::Value CholeskyJitter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int n = int(get_int(info[1], "n", 0, 4096));
  auto A = get_f64(info[0], "A", int64_t(n) * n);
  std::vector<double> L(size_t(n) * size_t(n));
  const double j = la::cholesky_jitter(n, A.data, L.data());
  Napi::Object o = Napi::Object::New(env);
  o.Set("L", to_f64(env, L.data(), L.size()));
  o.Set("jitter", j);
  return o;
}

Napi::Value CounterNormal(const Napi::CallbackInfo& info) {
  const uint64_t seed = uint64_t(get_int(info[0], "seed", 0, int64_t(1) << 53));
  const int64_t n = get_int(info[1], "n", 0, 1 << 24);
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = counter_normal(seed, uint64_t(i));
  return to_f64(info.Env(), v.data(), v.size());
}

// saveLaplace(path, accumulator, posterior | null, {fisher = 'unknown', adapterId = ''})
// writes the factors, counts and the posterior's priors (1 without one).
Napi::Value SaveLaplace(const Napi::CallbackInfo& info) {
  const std::string path = get_string(info[0], "path");
  BL_CHECK(is_tagged(info.Env(), info[1], &kKfacTag), code::kInvalidArgument, "saveLaplace expects a KfacAccumulator");
  KfacWrap* kw = KfacWrap::Unwrap(info[1].As<Napi::Object>());
  BL_CHECK(kw->handle().acc != nullptr, code::kDisposed, "the K-FAC accumulator has been disposed");
  auto acc = kw->handle().acc;
  std::vector<double> priors(size_t(acc->num_layers()), 1.0);
  std::string fisher = "unknown";
  if (!(info[2].IsNull() || info[2].IsUndefined())) {
    BL_CHECK(is_tagged(info.Env(), info[2], &kPosteriorTag), code::kInvalidArgument,
             "saveLaplace expects a LaplacePosterior or null");
    auto* pw = PosteriorWrap::Unwrap(info[2].As<Napi::Object>());
    auto p = pw->posterior_or_throw();
    BL_CHECK(p->num_layers() == acc->num_layers(), code::kShapeMismatch,
             "the posterior and the accumulator have different layers");
    for (int l = 0; l < p->num_layers(); ++l)
      BL_CHECK(p->layer(l).name == acc->layer(l).spec.name && p->layer(l).D() == int64_t(acc->layer(l).spec.d_in) * acc->layer(l).spec.d_out,
               code::kShapeMismatch, "the posterior and the accumulator have different layers");
    priors = p->prior();
    fisher = p->fisher;
  }
  Napi::Object o = options_arg(info, 3, "options");
  fisher = opt_string(o, "fisher", fisher);
  const std::string adapter = opt_string(o, "adapterId", "");
  auto lk = std::make_shared<Lock>(kw->handle().busy, "the K-FAC accumulator");
  return run_async(
      info.Env(), "bayeslora.laplace.save", [acc, lk, path, priors, fisher, adapter] {
        save_laplace(path, *acc, priors, fisher, adapter);
      },
      [lk](Napi::Env env) -> Napi::Value {
        lk->release();
        return env.Undefined();
      },
      {info[1]});
}

// loadLaplace(path, {adapterId?}) -> {accumulator, posterior, fisher, adapterId}
Napi::Value LoadLaplace(const Napi::CallbackInfo& info) {
  auto* ctors = static_cast<std::pair<Napi::FunctionReference*, Napi::FunctionReference*>*>(info.Data());
  const std::string path = get_string(info[0], "path");
  Napi::Object o = options_arg(info, 1, "options");
  const std::string expected = opt_string(o, "adapterId", "");
  auto out = std::make_shared<LoadedLaplace>();
  return run_async(
      info.Env(), "bayeslora.laplace.load", [out, path, expected] { *out = load_laplace(path, expected); },
      [out, ctors](Napi::Env env) -> Napi::Value {
        Napi::Object r = Napi::Object::New(env);
        r.Set("accumulator", KfacWrap::Wrap(env, ctors->first, out->acc));
        r.Set("posterior", PosteriorWrap::Wrap(env, ctors->second, out->post));
        r.Set("fisher", out->fisher);
        r.Set("adapterId", out->adapter_id);
        return r;
      });
}

// laplaceModelLayers(model, {lastLayer = false}) -> [{name, dIn, dOut, id}]
Napi::Value ModelLayers(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ModelLease lease(model_handle(info[0]));
  Napi::Object o = options_arg(info, 1, "options");
  auto specs = model_lora_layers(lease.model(), opt_bool(o, "lastLayer", false));
  Napi::Array a = Napi::Array::New(env, specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    Napi::Object e = Napi::Object::New(env);
    e.Set("name", specs[i].name);
    e.Set("dIn", specs[i].d_in);
    e.Set("dOut", specs[i].d_out);
    e.Set("id", specs[i].id);
    a.Set(uint32_t(i), e);
  }
  return a;
}

// laplaceAdapterState(model) -> {names, thetaNormSq (per LoRA matrix id), adapterId}
Napi::Value AdapterState_(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ModelLease lease(model_handle(info[0]));
  AdapterState s = adapter_state(lease.model());
  Napi::Object o = Napi::Object::New(env);
  Napi::Array names = Napi::Array::New(env, s.names.size());
  for (size_t i = 0; i < s.names.size(); ++i) names.Set(uint32_t(i), s.names[i]);
  o.Set("names", names);
  o.Set("thetaNormSq", to_f64(env, s.theta_sq.data(), s.theta_sq.size()));
  o.Set("adapterId", s.identity);
  return o;
}

Napi::Value AdapterIdentity(const Napi::CallbackInfo& info) {
  BL_CHECK(info[0].IsArray(), code::kInvalidArgument, "tensors must be an array of {name, shape, data}");
  Napi::Array a = info[0].As<Napi::Array>();
  std::vector<AdapterTensorRef> refs;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Object t = get_object(a.Get(i), "tensor");
    AdapterTensorRef r;
    r.name = get_string(t.Get("name"), "tensor.name");
    BL_CHECK(t.Get("shape").IsArray(), code::kInvalidArgument, "tensor.shape must be an array");
    Napi::Array sh = t.Get("shape").As<Napi::Array>();
    int64_t n = 1;
    for (uint32_t j = 0; j < sh.Length(); ++j) {
      r.shape.push_back(get_int(sh.Get(j), "tensor.shape[i]", 0, int64_t(1) << 40));
      n *= r.shape.back();
      BL_CHECK(n <= (int64_t(1) << 40), code::kInvalidArgument, "tensor too large");
    }
    r.data = get_f32(t.Get("data"), "tensor.data", n).data;
    refs.push_back(r);
  }
  return Napi::String::New(info.Env(), adapter_identity(refs));
}

}  // namespace

void init_laplace(Napi::Env env, Napi::Object exports) {
  Napi::FunctionReference* post_ctor = PosteriorWrap::Define(env, exports);
  Napi::FunctionReference* kfac_ctor = KfacWrap::Define(env, exports, post_ctor);
  auto* ctors = new std::pair<Napi::FunctionReference*, Napi::FunctionReference*>(kfac_ctor, post_ctor);
  env.AddCleanupHook([ctors] { delete ctors; });
  exports.Set("saveLaplace", Napi::Function::New(env, BL_NAPI(SaveLaplace)));
  exports.Set("loadLaplace", Napi::Function::New(env, BL_NAPI(LoadLaplace), "loadLaplace", ctors));
  exports.Set("adapterIdentity", Napi::Function::New(env, BL_NAPI(AdapterIdentity)));
  exports.Set("laplaceModelLayers", Napi::Function::New(env, BL_NAPI(ModelLayers)));
  exports.Set("laplaceAdapterState", Napi::Function::New(env, BL_NAPI(AdapterState_)));
  exports.Set("predictiveProbs", Napi::Function::New(env, BL_NAPI(PredictiveProbs)));
  Napi::Object internal = Napi::Object::New(env);
  internal.Set("symEig", Napi::Function::New(env, BL_NAPI(SymEig)));
  internal.Set("choleskyJitter", Napi::Function::New(env, BL_NAPI(CholeskyJitter)));
  internal.Set("counterNormal", Napi::Function::New(env, BL_NAPI(CounterNormal)));
  exports.Set("laplaceInternal", internal);
}

}  // namespace bl::napi
