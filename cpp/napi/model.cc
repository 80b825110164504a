// The `Model` binding: a Napi::ObjectWrap over a LlamaModel held in a shared
// ModelHandle. Every batch and option is validated on the JS thread before any
// native work; forward/training/IO run on the libuv pool (one promise per
// batch step); a lease makes concurrent calls on one model fail with BUSY, and
// dispose() (idempotent) makes later calls fail with DISPOSED. Native memory
// is reported to V8 after every operation.
#include "napi/model.h"

#include <cmath>
#include <cstring>

#include "backend/backend.h"
#include "model/persist.h"
#include "model/trainer.h"
#include "napi/cancel.h"
#include "napi/modules.h"
#include "napi/util.h"

namespace bl::napi {

namespace {

// Type tag that marks JS objects created by this class (napi_type_tag_object).
const napi_type_tag kModelTag = {0x6a1c0e5f3b2d4a17ull, 0x9e8f7c6d5b4a3921ull};

// ---- argument readers ---------------------------------------------------------------

bool has(const Napi::Object& o, const char* key) {
  if (!o.Has(key)) return false;
  Napi::Value v = o.Get(key);
  return !v.IsUndefined() && !v.IsNull();
}

struct McData {
  int B = 0, T = 0, C = 0;
  std::vector<int32_t> ids, last, rows, labels;
  std::vector<uint8_t> mask;
  McBatchView view() const {
    return {B, T, C, ids.data(), mask.data(), last.data(), rows.data(), labels.data()};
  }
};

struct LmData {
  int B = 0, T = 0;
  std::vector<int32_t> ids, targets;
  std::vector<uint8_t> mask;
  LmBatchView view() const { return {B, T, ids.data(), mask.data(), targets.data()}; }
};

void read_dims(const Napi::Object& o, int& B, int& T) {
  B = int(get_int(o.Get("B"), "batch.B", 1, kMaxBatchTokens));
  T = int(get_int(o.Get("T"), "batch.T", 1, kMaxBatchTokens));
  BL_CHECK(int64_t(B) * T <= kMaxBatchTokens, code::kInvalidArgument, "batch: B*T = ", int64_t(B) * T,
           " exceeds the limit ", kMaxBatchTokens);
}

std::shared_ptr<McData> read_mc(const Napi::Value& v, int vocab) {
  Napi::Object o = get_object(v, "batch");
  auto d = std::make_shared<McData>();
  read_dims(o, d->B, d->T);
  d->C = int(get_int(o.Get("C"), "batch.C", 1, 65536));
  const int64_t n = int64_t(d->B) * d->T;
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

std::shared_ptr<LmData> read_lm(const Napi::Value& v, int vocab) {
  Napi::Object o = get_object(v, "batch");
  auto d = std::make_shared<LmData>();
  read_dims(o, d->B, d->T);
  const int64_t n = int64_t(d->B) * d->T;
  d->ids = copy_i32(o.Get("ids"), "batch.ids", n);
  d->mask = copy_u8(o.Get("mask"), "batch.mask", n);
  d->targets = copy_i32(o.Get("targets"), "batch.targets", n);
  validate_lm_batch(d->view(), vocab);
  return d;
}

Napi::Object opt_object(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull())
    return Napi::Object::New(info.Env());
  return get_object(info[i], what);
}

struct StepOpts {
  AdamWOptions adam;
  float grad_scale = 1.0f;
  bool apply = true;
  std::shared_ptr<CancelFlag> cancel;  // options.cancel (a CancelToken)
};

AdamWOptions read_adamw(const Napi::Object& o) {
  AdamWOptions a;
  a.lr = opt_number(o, "lr", a.lr);
  a.beta1 = opt_number(o, "beta1", a.beta1);
  a.beta2 = opt_number(o, "beta2", a.beta2);
  a.eps = opt_number(o, "eps", a.eps);
  a.weight_decay = opt_number(o, "weightDecay", a.weight_decay);
  a.max_grad_norm = opt_number(o, "maxGradNorm", a.max_grad_norm);
  a.skip_nonfinite = opt_bool(o, "skipNonFinite", a.skip_nonfinite);
  a.validate();
  return a;
}

StepOpts read_step(const Napi::Object& o, bool apply_default) {
  StepOpts s;
  s.adam = read_adamw(o);
  const double gs = opt_number(o, "gradScale", 1.0);
  BL_CHECK(std::isfinite(gs) && gs > 0, code::kInvalidArgument, "gradScale must be a positive finite number, got ", gs);
  s.grad_scale = float(gs);
  s.apply = opt_bool(o, "applyStep", apply_default);
  s.cancel = cancel_arg(o);
  return s;
}

LoraConfig read_lora(const Napi::Object& o) {
  LoraConfig c;
  c.r = int(opt_int(o, "r", c.r, 1, 65536));
  c.alpha = opt_number(o, "alpha", c.alpha);
  c.dropout = opt_number(o, "dropout", c.dropout);
  c.use_rslora = opt_bool(o, "useRslora", c.use_rslora);
  c.seed = uint64_t(opt_int(o, "seed", 0, 0, int64_t(1) << 53));
  if (has(o, "targetModules")) {
    Napi::Value t = o.Get("targetModules");
    if (t.IsString()) {
      c.target_regex = t.As<Napi::String>().Utf8Value();  // PEFT: a string is a regex
      c.target_modules.clear();
    } else if (t.IsArray()) {
      auto arr = t.As<Napi::Array>();
      c.target_modules.clear();
      for (uint32_t i = 0; i < arr.Length(); ++i)
        c.target_modules.push_back(get_string(arr.Get(i), "targetModules[i]"));
    } else {
      fail(code::kInvalidArgument, "targetModules must be an array of module names or a regex string");
    }
  }
  if (has(o, "targetRegex")) {
    c.target_regex = get_string(o.Get("targetRegex"), "targetRegex");
    BL_CHECK(!c.target_regex.empty(), code::kInvalidArgument, "targetRegex is empty");
  }
  c.validate();
  return c;
}

// ---- result builders ------------------------------------------------------------------

Napi::Value num_or_null(Napi::Env env, double v) {
  return std::isfinite(v) ? Napi::Value(Napi::Number::New(env, v)) : env.Null();
}

Napi::Object mc_to_js(Napi::Env env, const McOutput& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("logits", to_f32(env, r.logits.data(), r.logits.size()));
  o.Set("probs", to_f32(env, r.probs.data(), r.probs.size()));
  o.Set("loss", r.n_labelled > 0 ? Napi::Value(Napi::Number::New(env, r.loss)) : env.Null());
  o.Set("nLabelled", Napi::Number::New(env, r.n_labelled));
  return o;
}

void step_to_js(Napi::Env env, Napi::Object& o, const StepOutcome& s) {
  o.Set("stepped", Napi::Boolean::New(env, s.stepped));
  o.Set("skipped", Napi::Boolean::New(env, s.skipped));
  o.Set("gradNorm", (s.stepped || s.report.skipped) ? num_or_null(env, s.report.grad_norm) : env.Null());
  o.Set("step", Napi::Number::New(env, s.report.step));
}

Napi::Object config_to_js(Napi::Env env, const ModelConfig& c) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("architecture", c.architecture);
  o.Set("vocabSize", c.vocab_size);
  o.Set("hiddenSize", c.hidden_size);
  o.Set("intermediateSize", c.intermediate_size);
  o.Set("numHiddenLayers", c.num_hidden_layers);
  o.Set("numAttentionHeads", c.num_attention_heads);
  o.Set("numKeyValueHeads", c.num_key_value_heads);
  o.Set("headDim", c.head_dim);
  o.Set("maxPositionEmbeddings", c.max_position_embeddings);
  o.Set("rmsNormEps", c.rms_norm_eps);
  o.Set("ropeTheta", c.rope_theta);
  Napi::Object rs = Napi::Object::New(env);
  rs.Set("type", c.rope_scaling.type);
  rs.Set("factor", c.rope_scaling.factor);
  rs.Set("lowFreqFactor", c.rope_scaling.low_freq_factor);
  rs.Set("highFreqFactor", c.rope_scaling.high_freq_factor);
  rs.Set("originalMaxPositionEmbeddings", c.rope_scaling.original_max_position_embeddings);
  o.Set("ropeScaling", rs);
  o.Set("tieWordEmbeddings", c.tie_word_embeddings);
  o.Set("attentionBias", c.attention_bias);
  o.Set("slidingWindow", c.sliding_window);
  o.Set("torchDtype", c.torch_dtype);
  o.Set("bosTokenId", c.bos_token_id);
  o.Set("eosTokenId", c.eos_token_id);
  o.Set("padTokenId", c.pad_token_id);
  return o;
}

// Records every observed LoRA matrix to host memory (test and debugging surface).
class Recorder : public LoraObserver {
 public:
  struct Rec {
    LoraMatrixInfo info;
    int B = 0, T = 0;
    std::vector<float> x, g;
    std::vector<uint8_t> mask;
    bool has_mask = false;
  };
  explicit Recorder(Backend& be) : be_(be) {}
  void observe(const LoraMatrixInfo& m, const float* x, const float* g, int B, int T,
               const uint8_t* mask) override {
    Rec r;
    r.info = m;
    r.B = B;
    r.T = T;
    const size_t n = size_t(B) * T;
    r.x.resize(n * size_t(m.d_in));
    r.g.resize(n * size_t(m.d_out));
    be_.to_host(r.x.data(), x, r.x.size() * sizeof(float));
    be_.to_host(r.g.data(), g, r.g.size() * sizeof(float));
    if (mask) {
      r.mask.resize(n);
      be_.to_host(r.mask.data(), mask, n);
      r.has_mask = true;
    }
    recs.push_back(std::move(r));
  }
  std::vector<Rec> recs;

 private:
  Backend& be_;
};

}  // namespace

// ---- lease -----------------------------------------------------------------------------

ModelLease::ModelLease(std::shared_ptr<ModelHandle> h) : h_(std::move(h)) {
  BL_CHECK(h_ && h_->model && !h_->disposed, code::kDisposed, "the model has been disposed");
  bool expected = false;
  if (!h_->busy.compare_exchange_strong(expected, true))
    fail(code::kBusy, "the model is busy with another operation; await it before starting another");
}

ModelLease::~ModelLease() {
  // A dispose() that arrived while this operation ran frees the model now.
  if (h_->disposed) h_->model.reset();
  h_->busy.store(false);
}

void ModelLease::report_memory(Napi::Env env) const {
  if (h_->disposed || !h_->model) return;
  const int64_t now = int64_t(h_->model->native_bytes());
  if (now != h_->reported_bytes) adjust_external_memory(env, now - h_->reported_bytes);
  h_->reported_bytes = now;
}

// ---- the class ---------------------------------------------------------------------------

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit ModelWrap(const Napi::CallbackInfo& info);
  ~ModelWrap() override;

  std::shared_ptr<ModelHandle> handle() const {
    BL_CHECK(h_ && h_->model && !h_->disposed, code::kDisposed, "the model has been disposed");
    return h_;
  }

 private:
  using Method = Napi::Value (ModelWrap::*)(const Napi::CallbackInfo&);
  template <Method M>
  Napi::Value call(const Napi::CallbackInfo& info) {
    return guarded(info, [this](const Napi::CallbackInfo& i) { return (this->*M)(i); });
  }
  static Napi::Value Load(const Napi::CallbackInfo& info);

  std::shared_ptr<ModelLease> lease() const { return std::make_shared<ModelLease>(handle()); }
  int vocab() const { return h_->model->config().vocab_size; }

  Napi::Value AddLora(const Napi::CallbackInfo& info);
  Napi::Value RemoveLora(const Napi::CallbackInfo& info);
  Napi::Value EnableFullTraining(const Napi::CallbackInfo& info);
  Napi::Value Forward(const Napi::CallbackInfo& info);
  Napi::Value TrainStep(const Napi::CallbackInfo& info);
  Napi::Value Backward(const Napi::CallbackInfo& info);
  Napi::Value OptimizerStep(const Napi::CallbackInfo& info);
  Napi::Value ResetOptimizer(const Napi::CallbackInfo& info);
  Napi::Value GetTrainState(const Napi::CallbackInfo& info);
  Napi::Value SetTrainState(const Napi::CallbackInfo& info);
  Napi::Value ZeroGrads(const Napi::CallbackInfo& info);
  Napi::Value LmStep(const Napi::CallbackInfo& info);
  Napi::Value LmLoss(const Napi::CallbackInfo& info);
  Napi::Value BackwardSeed(const Napi::CallbackInfo& info);
  Napi::Value ObserveBackward(const Napi::CallbackInfo& info);
  Napi::Value LoraMatrices(const Napi::CallbackInfo& info);
  Napi::Value GetLoraWeights(const Napi::CallbackInfo& info);
  Napi::Value GetLoraGrads(const Napi::CallbackInfo& info);
  Napi::Value SetLoraWeights(const Napi::CallbackInfo& info);
  Napi::Value GetWeight(const Napi::CallbackInfo& info);
  Napi::Value GetWeightGrad(const Napi::CallbackInfo& info);
  Napi::Value SetWeight(const Napi::CallbackInfo& info);
  Napi::Value WeightNames(const Napi::CallbackInfo& info);
  Napi::Value SaveAdapter(const Napi::CallbackInfo& info);
  Napi::Value LoadAdapter(const Napi::CallbackInfo& info);
  Napi::Value SaveModel(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value Disposed(const Napi::CallbackInfo& info);

  Napi::Value lora_list(Napi::Env env, bool grads);
  Param* find_param(const std::string& name) const;

  std::shared_ptr<ModelHandle> h_;
};

Napi::Function ModelWrap::Define(Napi::Env env) {
  auto* ctor = new Napi::FunctionReference();
  Napi::Function cls = DefineClass(
      env, "Model",
      {
          StaticMethod("load", &ModelWrap::Load, napi_default, ctor),
          InstanceMethod("addLora", &ModelWrap::call<&ModelWrap::AddLora>),
          InstanceMethod("removeLora", &ModelWrap::call<&ModelWrap::RemoveLora>),
          InstanceMethod("enableFullTraining", &ModelWrap::call<&ModelWrap::EnableFullTraining>),
          InstanceMethod("forward", &ModelWrap::call<&ModelWrap::Forward>),
          InstanceMethod("trainStep", &ModelWrap::call<&ModelWrap::TrainStep>),
          InstanceMethod("backward", &ModelWrap::call<&ModelWrap::Backward>),
          InstanceMethod("optimizerStep", &ModelWrap::call<&ModelWrap::OptimizerStep>),
          InstanceMethod("resetOptimizer", &ModelWrap::call<&ModelWrap::ResetOptimizer>),
          InstanceMethod("getTrainState", &ModelWrap::call<&ModelWrap::GetTrainState>),
          InstanceMethod("setTrainState", &ModelWrap::call<&ModelWrap::SetTrainState>),
          InstanceMethod("zeroGrads", &ModelWrap::call<&ModelWrap::ZeroGrads>),
          InstanceMethod("lmStep", &ModelWrap::call<&ModelWrap::LmStep>),
          InstanceMethod("lmLoss", &ModelWrap::call<&ModelWrap::LmLoss>),
          InstanceMethod("backwardSeed", &ModelWrap::call<&ModelWrap::BackwardSeed>),
          InstanceMethod("observeBackward", &ModelWrap::call<&ModelWrap::ObserveBackward>),
          InstanceMethod("loraMatrices", &ModelWrap::call<&ModelWrap::LoraMatrices>),
          InstanceMethod("getLoraWeights", &ModelWrap::call<&ModelWrap::GetLoraWeights>),
          InstanceMethod("getLoraGrads", &ModelWrap::call<&ModelWrap::GetLoraGrads>),
          InstanceMethod("setLoraWeights", &ModelWrap::call<&ModelWrap::SetLoraWeights>),
          InstanceMethod("getWeight", &ModelWrap::call<&ModelWrap::GetWeight>),
          InstanceMethod("getWeightGrad", &ModelWrap::call<&ModelWrap::GetWeightGrad>),
          InstanceMethod("setWeight", &ModelWrap::call<&ModelWrap::SetWeight>),
          InstanceMethod("weightNames", &ModelWrap::call<&ModelWrap::WeightNames>),
          InstanceMethod("saveAdapter", &ModelWrap::call<&ModelWrap::SaveAdapter>),
          InstanceMethod("loadAdapter", &ModelWrap::call<&ModelWrap::LoadAdapter>),
          InstanceMethod("saveModel", &ModelWrap::call<&ModelWrap::SaveModel>),
          InstanceMethod("info", &ModelWrap::call<&ModelWrap::Info>),
          InstanceMethod("dispose", &ModelWrap::call<&ModelWrap::Dispose>),
          InstanceMethod("isDisposed", &ModelWrap::call<&ModelWrap::Disposed>),
      });
  *ctor = Napi::Persistent(cls);
  env.AddCleanupHook([ctor] { delete ctor; });
  return cls;
}

ModelWrap::ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
  if (info.Length() < 1 || !info[0].IsExternal())
    throw make_error(info.Env(), code::kInvalidArgument, "use Model.load(dir, options) to create a Model");
  h_ = *info[0].As<Napi::External<std::shared_ptr<ModelHandle>>>().Data();
  napi_type_tag_object(info.Env(), info.This(), &kModelTag);
}

ModelWrap::~ModelWrap() {
  if (!h_ || h_->disposed) return;
  // Garbage-collected without dispose(): nothing can be in flight (an async
  // call keeps the object alive), so the model goes with the handle.
  h_->disposed = true;
  if (h_->reported_bytes) adjust_external_memory(Env(), -h_->reported_bytes);
  h_->reported_bytes = 0;
  if (!h_->busy.load()) h_->model.reset();
}

Napi::Value ModelWrap::Load(const Napi::CallbackInfo& outer) {
  return guarded(outer, [](const Napi::CallbackInfo& info) -> Napi::Value {
    auto* ctor = static_cast<Napi::FunctionReference*>(info.Data());
    const std::string dir = get_string(info[0], "dir");
    Napi::Object o = opt_object(info, 1, "options");
    const std::string bname = opt_string(o, "backend", "cpu");
    LoadOptions lo;
    lo.full_training = opt_bool(o, "fullTraining", false);
    lo.mmap = opt_bool(o, "mmap", true);
    const std::string wd = opt_string(o, "weightDtype", "auto");
    if (wd != "auto") lo.weight_dtype = parse_weight_dtype(wd);
    Backend& be = get_backend(bname);
    auto slot = std::make_shared<std::unique_ptr<LlamaModel>>();
    return run_async(
        info.Env(), "bayeslora.model.load",
        [slot, dir, lo, &be] { *slot = LlamaModel::load(dir, be, lo); },
        [slot, ctor, bname](Napi::Env env) -> Napi::Value {
          auto h = std::make_shared<ModelHandle>();
          h->model = std::move(*slot);
          h->backend = bname;
          auto ext = Napi::External<std::shared_ptr<ModelHandle>>::New(env, &h);
          Napi::Object obj = ctor->New({ext});
          h->reported_bytes = int64_t(h->model->native_bytes());
          adjust_external_memory(env, h->reported_bytes);
          return obj;
        });
  });
}

Napi::Value ModelWrap::AddLora(const Napi::CallbackInfo& info) {
  auto l = lease();
  LoraConfig c = read_lora(get_object(info[0], "lora config"));
  l->model().add_lora(c);
  l->report_memory(info.Env());
  return info.Env().Undefined();
}

Napi::Value ModelWrap::RemoveLora(const Napi::CallbackInfo& info) {
  auto l = lease();
  l->model().remove_lora();
  l->report_memory(info.Env());
  return info.Env().Undefined();
}

Napi::Value ModelWrap::EnableFullTraining(const Napi::CallbackInfo& info) {
  auto l = lease();
  l->model().enable_full_training();
  l->report_memory(info.Env());
  return info.Env().Undefined();
}

Napi::Value ModelWrap::Forward(const Napi::CallbackInfo& info) {
  auto l = lease();
  auto d = read_mc(info[0], vocab());
  Napi::Object o = opt_object(info, 1, "options");
  // train: LoRA dropout on, masks fixed by dropoutStep (default: the training counter).
  const bool train = opt_bool(o, "train", false);
  const int64_t dstep = opt_int(o, "dropoutStep", -1, -1, int64_t(1) << 53);
  auto res = std::make_shared<McOutput>();
  return run_async(
      info.Env(), "bayeslora.model.forward",
      [l, d, res, train, dstep] { *res = l->model().forward_mc(d->view(), train, dstep); },
      [l, res](Napi::Env env) -> Napi::Value {
        l->report_memory(env);
        return mc_to_js(env, *res);
      },
      {info.This()});
}

static Napi::Value run_mc_step(const Napi::CallbackInfo& info, std::shared_ptr<ModelLease> l,
                               int vocab, bool apply_default) {
  auto d = read_mc(info[0], vocab);
  Napi::Object o = opt_object(info, 1, "options");
  StepOpts so = read_step(o, apply_default);
  auto res = std::make_shared<McStepResult>();
  return run_async(
      info.Env(), "bayeslora.model.trainStep",
      [l, d, so, res] {
        CancelScope cs(so.cancel);
        *res = mc_train_step(l->model(), d->view(), so.grad_scale, so.apply, so.adam);
      },
      [l, res](Napi::Env env) -> Napi::Value {
        l->report_memory(env);
        Napi::Object o = mc_to_js(env, res->out);
        step_to_js(env, o, res->step);
        return o;
      },
      {info.This()});
}

Napi::Value ModelWrap::TrainStep(const Napi::CallbackInfo& info) {
  return run_mc_step(info, lease(), vocab(), true);
}

Napi::Value ModelWrap::Backward(const Napi::CallbackInfo& info) {
  auto l = lease();
  Napi::Object o = opt_object(info, 1, "options");
  BL_CHECK(!opt_bool(o, "applyStep", false), code::kInvalidArgument,
           "backward() never steps the optimiser; use trainStep()");
  return run_mc_step(info, l, vocab(), false);
}

Napi::Value ModelWrap::OptimizerStep(const Napi::CallbackInfo& info) {
  auto l = lease();
  AdamWOptions a = read_adamw(opt_object(info, 0, "options"));
  auto rep = std::make_shared<StepReport>();
  return run_async(
      info.Env(), "bayeslora.model.optimizerStep",
      [l, a, rep] { *rep = l->model().optimizer_step(a); },
      [l, rep](Napi::Env env) -> Napi::Value {
        l->report_memory(env);
        Napi::Object o = Napi::Object::New(env);
        o.Set("gradNorm", num_or_null(env, rep->grad_norm));
        o.Set("step", rep->step);
        o.Set("skipped", rep->skipped);
        o.Set("stepped", !rep->skipped);
        return o;
      },
      {info.This()});
}

Napi::Value ModelWrap::ResetOptimizer(const Napi::CallbackInfo& info) {
  auto l = lease();
  l->model().optimizer().reset();
  l->model().zero_grads();
  l->report_memory(info.Env());
  return info.Env().Undefined();
}

// Optimiser moments, step count and the dropout counter: what a training
// checkpoint needs besides the weights to continue bit-identically.
Napi::Value ModelWrap::GetTrainState(const Napi::CallbackInfo& info) {
  auto l = lease();
  LlamaModel& m = l->model();
  Napi::Env env = info.Env();
  auto st = m.optimizer().export_state(m.backend());
  Napi::Object o = Napi::Object::New(env);
  o.Set("step", m.optimizer().steps());
  o.Set("trainForwards", Napi::Number::New(env, double(m.train_forwards())));
  Napi::Array arr = Napi::Array::New(env, st.size());
  for (size_t i = 0; i < st.size(); ++i) {
    Napi::Object t = Napi::Object::New(env);
    t.Set("name", st[i].name);
    t.Set("m", to_f32(env, st[i].m.data(), st[i].m.size()));
    t.Set("v", to_f32(env, st[i].v.data(), st[i].v.size()));
    arr.Set(uint32_t(i), t);
  }
  o.Set("tensors", arr);
  return o;
}

Napi::Value ModelWrap::SetTrainState(const Napi::CallbackInfo& info) {
  auto l = lease();
  LlamaModel& m = l->model();
  Napi::Object o = get_object(info[0], "train state");
  const int steps = int(get_int(o.Get("step"), "state.step", 0, int64_t(1) << 30));
  const int64_t fwd = get_int(o.Get("trainForwards"), "state.trainForwards", 0, int64_t(1) << 53);
  BL_CHECK(o.Get("tensors").IsArray(), code::kInvalidArgument, "state.tensors must be an array");
  auto arr = o.Get("tensors").As<Napi::Array>();
  std::vector<AdamW::HostMoments> hs;
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Object t = get_object(arr.Get(i), "state.tensors[i]");
    AdamW::HostMoments h;
    h.name = get_string(t.Get("name"), "state.tensors[i].name");
    h.m = copy_f32(t.Get("m"), "state.tensors[i].m");
    h.v = copy_f32(t.Get("v"), "state.tensors[i].v");
    hs.push_back(std::move(h));
  }
  m.optimizer().import_state(m.backend(), m.trainable_tensors(), steps, hs);
  m.set_train_forwards(uint64_t(fwd));
  m.zero_grads();
  m.invalidate_forward();
  l->report_memory(info.Env());
  return info.Env().Undefined();
}

Napi::Value ModelWrap::ZeroGrads(const Napi::CallbackInfo& info) {
  auto l = lease();
  l->model().zero_grads();
  return info.Env().Undefined();
}

Napi::Value ModelWrap::LmStep(const Napi::CallbackInfo& info) {
  auto l = lease();
  auto d = read_lm(info[0], vocab());
  StepOpts so = read_step(opt_object(info, 1, "options"), true);
  auto res = std::make_shared<LmStepResult>();
  return run_async(
      info.Env(), "bayeslora.model.lmStep",
      [l, d, so, res] {
        CancelScope cs(so.cancel);
        *res = lm_train_step(l->model(), d->view(), so.grad_scale, so.apply, so.adam);
      },
      [l, res](Napi::Env env) -> Napi::Value {
        l->report_memory(env);
        Napi::Object o = Napi::Object::New(env);
        o.Set("loss", num_or_null(env, res->out.loss));
        o.Set("nTargets", Napi::Number::New(env, double(res->out.n_targets)));
        step_to_js(env, o, res->step);
        return o;
      },
      {info.This()});
}

Napi::Value ModelWrap::LmLoss(const Napi::CallbackInfo& info) {
  auto l = lease();
  auto d = read_lm(info[0], vocab());
  auto res = std::make_shared<LmOutput>();
  return run_async(
      info.Env(), "bayeslora.model.lmLoss",
      [l, d, res] { *res = l->model().forward_lm(d->view(), false, 1.0f); },
      [l, res](Napi::Env env) -> Napi::Value {
        l->report_memory(env);
        Napi::Object o = Napi::Object::New(env);
        o.Set("loss", num_or_null(env, res->loss));
        o.Set("nTargets", Napi::Number::New(env, double(res->n_targets)));
        return o;
      },
      {info.This()});
}

// Seed for a backward pass after forward(): validated against the last forward's shape.
static std::shared_ptr<std::vector<float>> read_seed(const Napi::Value& v, const LlamaModel& m) {
  auto shp = m.mc_shape();
  BL_CHECK(shp.first > 0, code::kInvalidArgument,
           "backward needs a preceding forward() with no weight change since");
  auto s = std::make_shared<std::vector<float>>(copy_f32(v, "dlogits", int64_t(shp.first) * shp.second));
  for (size_t i = 0; i < s->size(); ++i)
    BL_CHECK(std::isfinite((*s)[i]), code::kInvalidArgument, "dlogits[", i, "] is not finite");
  return s;
}

Napi::Value ModelWrap::BackwardSeed(const Napi::CallbackInfo& info) {
  auto l = lease();
  auto seed = read_seed(info[0], l->model());
  Napi::Object o = opt_object(info, 1, "options");
  const bool acc = opt_bool(o, "accumulate", false);
  const bool pg = opt_bool(o, "paramGrads", true);
  return run_async(
      info.Env(), "bayeslora.model.backwardSeed",
      [l, seed, acc, pg] { l->model().backward_mc(seed->data(), nullptr, acc, pg); },
      [l](Napi::Env env) -> Napi::Value {
        l->report_memory(env);
        return env.Undefined();
      },
      {info.This()});
}

Napi::Value ModelWrap::ObserveBackward(const Napi::CallbackInfo& info) {
  auto l = lease();
  auto seed = read_seed(info[0], l->model());
  auto rec = std::make_shared<Recorder>(l->model().backend());
  return run_async(
      info.Env(), "bayeslora.model.observeBackward",
      [l, seed, rec] { l->model().backward_mc(seed->data(), rec.get(), true, false); },
      [l, rec](Napi::Env env) -> Napi::Value {
        l->report_memory(env);
        Napi::Array arr = Napi::Array::New(env, rec->recs.size());
        for (size_t i = 0; i < rec->recs.size(); ++i) {
          const auto& r = rec->recs[i];
          Napi::Object o = Napi::Object::New(env);
          o.Set("id", r.info.id);
          o.Set("module", r.info.module);
          o.Set("isB", r.info.is_b);
          o.Set("dIn", r.info.d_in);
          o.Set("dOut", r.info.d_out);
          o.Set("B", r.B);
          o.Set("T", r.T);
          o.Set("x", to_f32(env, r.x.data(), r.x.size()));
          o.Set("g", to_f32(env, r.g.data(), r.g.size()));
          if (r.has_mask) {
            auto m = Napi::Uint8Array::New(env, r.mask.size());
            std::memcpy(m.Data(), r.mask.data(), r.mask.size());
            o.Set("mask", m);
          } else {
            o.Set("mask", env.Null());
          }
          arr.Set(uint32_t(i), o);
        }
        return arr;
      },
      {info.This()});
}

Napi::Value ModelWrap::LoraMatrices(const Napi::CallbackInfo& info) {
  auto l = lease();
  const LlamaModel& m = l->model();
  Napi::Env env = info.Env();
  Napi::Array arr = Napi::Array::New(env, size_t(m.num_lora_matrices()));
  for (int id = 0; id < m.num_lora_matrices(); ++id) {
    const LoraMatrixInfo mi = m.lora_matrix(id);
    const LoraModule& mod = m.lora_module(mi.module);
    Napi::Object o = Napi::Object::New(env);
    o.Set("id", mi.id);
    o.Set("module", mi.module);
    o.Set("path", mod.path);
    o.Set("isB", mi.is_b);
    o.Set("dIn", mi.d_in);
    o.Set("dOut", mi.d_out);
    arr.Set(uint32_t(id), o);
  }
  return arr;
}

Napi::Value ModelWrap::lora_list(Napi::Env env, bool grads) {
  auto l = lease();
  const LlamaModel& m = l->model();
  Napi::Array arr = Napi::Array::New(env, size_t(m.num_lora_modules()));
  for (int i = 0; i < m.num_lora_modules(); ++i) {
    const LoraModule& mod = m.lora_module(i);
    Napi::Object o = Napi::Object::New(env);
    o.Set("path", mod.path);
    o.Set("kind", mod.kind);
    o.Set("layer", mod.layer);
    o.Set("r", mod.r);
    o.Set("dIn", mod.d_in);
    o.Set("dOut", mod.d_out);
    o.Set("scale", mod.scale);
    auto a = grads ? m.get_lora_grad(2 * i) : m.get_lora_weight(2 * i);
    auto b = grads ? m.get_lora_grad(2 * i + 1) : m.get_lora_weight(2 * i + 1);
    o.Set("A", to_f32(env, a.data(), a.size()));
    o.Set("B", to_f32(env, b.data(), b.size()));
    arr.Set(uint32_t(i), o);
  }
  return arr;
}

Napi::Value ModelWrap::GetLoraWeights(const Napi::CallbackInfo& info) { return lora_list(info.Env(), false); }
Napi::Value ModelWrap::GetLoraGrads(const Napi::CallbackInfo& info) { return lora_list(info.Env(), true); }

Napi::Value ModelWrap::SetLoraWeights(const Napi::CallbackInfo& info) {
  auto l = lease();
  LlamaModel& m = l->model();
  BL_CHECK(info[0].IsArray(), code::kInvalidArgument, "setLoraWeights expects an array of {path, A?, B?}");
  auto arr = info[0].As<Napi::Array>();
  // Validate everything first, then write.
  std::vector<std::pair<int, std::vector<float>>> todo;
  for (uint32_t k = 0; k < arr.Length(); ++k) {
    Napi::Object o = get_object(arr.Get(k), "lora weights entry");
    const std::string path = get_string(o.Get("path"), "entry.path");
    int mod = -1;
    for (int i = 0; i < m.num_lora_modules(); ++i)
      if (m.lora_module(i).path == path) mod = i;
    BL_CHECK(mod >= 0, code::kInvalidArgument, "no LoRA module with path '", path, "'");
    for (int which = 0; which < 2; ++which) {
      const char* key = which ? "B" : "A";
      if (!has(o, key)) continue;
      const int id = 2 * mod + which;
      auto v = copy_f32(o.Get(key), key, m.lora_matrix_numel(id));
      for (size_t i = 0; i < v.size(); ++i)
        BL_CHECK(std::isfinite(v[i]), code::kInvalidArgument, path, ".", key, "[", i, "] is not finite");
      todo.emplace_back(id, std::move(v));
    }
  }
  for (auto& t : todo) m.set_lora_weight(t.first, t.second.data(), int64_t(t.second.size()));
  return info.Env().Undefined();
}

Param* ModelWrap::find_param(const std::string& name) const {
  for (auto& p : h_->model->weights().params())
    if (p->name == name) return p.get();
  fail(code::kInvalidArgument, "the model has no weight named '", name, "'");
}

Napi::Value ModelWrap::WeightNames(const Napi::CallbackInfo& info) {
  auto l = lease();
  const auto& ps = l->model().weights().params();
  Napi::Array arr = Napi::Array::New(info.Env(), ps.size());
  for (size_t i = 0; i < ps.size(); ++i) arr.Set(uint32_t(i), ps[i]->name);
  return arr;
}

Napi::Value ModelWrap::GetWeight(const Napi::CallbackInfo& info) {
  auto l = lease();
  Param* p = find_param(get_string(info[0], "name"));
  std::vector<float> h(static_cast<size_t>(p->numel()));
  LlamaWeights::to_host_f32(l->model().backend(), *p, h.data());  // bf16 store widens exactly
  return to_f32(info.Env(), h.data(), h.size());
}

Napi::Value ModelWrap::GetWeightGrad(const Napi::CallbackInfo& info) {
  auto l = lease();
  Param* p = find_param(get_string(info[0], "name"));
  BL_CHECK(p->grad.data(), code::kInvalidArgument, "weight gradients exist only in full-training mode");
  std::vector<float> h(static_cast<size_t>(p->numel()));
  l->model().backend().to_host(h.data(), p->grad.data(), h.size() * sizeof(float));
  return to_f32(info.Env(), h.data(), h.size());
}

Napi::Value ModelWrap::SetWeight(const Napi::CallbackInfo& info) {
  auto l = lease();
  Param* p = find_param(get_string(info[0], "name"));
  BL_CHECK(l->model().full_training(), code::kInvalidArgument,
           "setWeight needs full-training mode (base weights are read-only otherwise)");
  auto v = copy_f32(info[1], "data", p->numel());
  for (size_t i = 0; i < v.size(); ++i)
    BL_CHECK(std::isfinite(v[i]), code::kInvalidArgument, "data[", i, "] is not finite");
  l->model().backend().to_device(p->data, v.data(), v.size() * sizeof(float));
  l->model().invalidate_forward();
  return info.Env().Undefined();
}

Napi::Value ModelWrap::SaveAdapter(const Napi::CallbackInfo& info) {
  auto l = lease();
  const std::string dir = get_string(info[0], "dir");
  BL_CHECK(l->model().has_lora(), code::kInvalidArgument, "saveAdapter: the model has no LoRA adapters");
  return run_async(
      info.Env(), "bayeslora.model.saveAdapter", [l, dir] { save_adapter(l->model(), dir); },
      [l](Napi::Env env) -> Napi::Value { return env.Undefined(); }, {info.This()});
}

Napi::Value ModelWrap::LoadAdapter(const Napi::CallbackInfo& info) {
  auto l = lease();
  const std::string dir = get_string(info[0], "dir");
  return run_async(
      info.Env(), "bayeslora.model.loadAdapter", [l, dir] { load_adapter(l->model(), dir); },
      [l](Napi::Env env) -> Napi::Value {
        l->report_memory(env);
        return env.Undefined();
      },
      {info.This()});
}

Napi::Value ModelWrap::SaveModel(const Napi::CallbackInfo& info) {
  auto l = lease();
  const std::string dir = get_string(info[0], "dir");
  return run_async(
      info.Env(), "bayeslora.model.saveModel", [l, dir] { save_model(l->model(), dir); },
      [l](Napi::Env env) -> Napi::Value { return env.Undefined(); }, {info.This()});
}

Napi::Value ModelWrap::Info(const Napi::CallbackInfo& info) {
  auto l = lease();
  const LlamaModel& m = l->model();
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("config", config_to_js(env, m.config()));
  o.Set("backend", h_->backend);
  o.Set("numParams", Napi::Number::New(env, double(m.num_params())));
  o.Set("numLoraParams", Napi::Number::New(env, double(m.num_lora_params())));
  o.Set("numTrainable", Napi::Number::New(env, double(m.num_trainable())));
  o.Set("fullTraining", m.full_training());
  o.Set("nativeBytes", Napi::Number::New(env, double(m.native_bytes())));
  o.Set("weightDtype", weight_dtype_name(m.weights().weight_dtype()));
  o.Set("weightBytes", Napi::Number::New(env, double(m.weights().weight_bytes())));
  o.Set("optimizerSteps", m.optimizer().steps());
  if (m.has_lora()) {
    const LoraConfig& c = m.lora_config();
    Napi::Object lo = Napi::Object::New(env);
    lo.Set("r", c.r);
    lo.Set("alpha", c.alpha);
    lo.Set("dropout", c.dropout);
    lo.Set("useRslora", c.use_rslora);
    lo.Set("scale", c.scale());
    lo.Set("seed", Napi::Number::New(env, double(c.seed)));
    Napi::Array tm = Napi::Array::New(env, c.target_modules.size());
    for (size_t i = 0; i < c.target_modules.size(); ++i) tm.Set(uint32_t(i), c.target_modules[i]);
    lo.Set("targetModules", tm);
    lo.Set("targetRegex", c.target_regex.empty() ? env.Null() : Napi::Value(Napi::String::New(env, c.target_regex)));
    Napi::Array mods = Napi::Array::New(env, size_t(m.num_lora_modules()));
    for (int i = 0; i < m.num_lora_modules(); ++i) mods.Set(uint32_t(i), m.lora_module(i).path);
    lo.Set("modules", mods);
    o.Set("lora", lo);
  } else {
    o.Set("lora", env.Null());
  }
  return o;
}

Napi::Value ModelWrap::Dispose(const Napi::CallbackInfo& info) {
  if (!h_ || h_->disposed) return info.Env().Undefined();  // idempotent
  h_->disposed = true;
  if (h_->reported_bytes) adjust_external_memory(info.Env(), -h_->reported_bytes);
  h_->reported_bytes = 0;
  // An operation in flight keeps the model until its lease ends (~ModelLease frees it).
  if (!h_->busy.load()) h_->model.reset();
  return info.Env().Undefined();
}

Napi::Value ModelWrap::Disposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !h_ || h_->disposed);
}

// ---- accessors for other bindings ----------------------------------------------------------

std::shared_ptr<ModelHandle> model_handle(const Napi::Value& v) {
  bool ok = false;
  if (v.IsObject()) napi_check_object_type_tag(v.Env(), v, &kModelTag, &ok);
  BL_CHECK(ok, code::kInvalidArgument, "expected a Model object");
  return ModelWrap::Unwrap(v.As<Napi::Object>())->handle();
}

LlamaModel* unwrap_model(const Napi::Value& v) { return model_handle(v)->model.get(); }

void init_model(Napi::Env env, Napi::Object exports) { exports.Set("Model", ModelWrap::Define(env)); }

}  // namespace bl::napi
