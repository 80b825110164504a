// LlamaModel: loading, LoRA wiring, forward and backward passes (see llama.h).
//
// Layer (pre-norm):  n1 = rms(x); q,k,v = lin(n1) (+bias), RoPE(q,k);
//                    (n1, n2 are not kept: backward recomputes them)
//                    x_mid = x + o(attn(q,k,v));  n2 = rms(x_mid);
//                    x' = x_mid + down(silu(gate(n2)) * up(n2)).
// A LoRA linear:     y = x W0^T (+b) + s * (drop(x) A^T) B^T, with u = drop(x) A^T
//                    saved; backward recomputes drop(x) from the step's seed.
// Multiple-choice passes may run the last layer past its attention on the B
// answer rows only (layer_fwd_last_rows / layer_bwd_last_rows).
#include "model/llama.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "core/cancel.h"
#include "core/error.h"
#include "model/rope.h"

namespace bl {

namespace {
enum Kind { kQ = 0, kK, kV, kO, kGate, kUp, kDown };
const char* const kKindName[kLayerModules] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                              "gate_proj", "up_proj", "down_proj"};
const char* const kKindPrefix[kLayerModules] = {"self_attn", "self_attn", "self_attn", "self_attn",
                                                "mlp",       "mlp",       "mlp"};
}  // namespace

// ---------------------------------------------------------------------------------
// construction

std::unique_ptr<LlamaModel> LlamaModel::load(const std::string& dir, Backend& be,
                                             const LoadOptions& opt) {
  ModelConfig cfg = parse_model_config(dir + "/config.json");
  Checkpoint ck = Checkpoint::open_dir(dir, /*copy=*/!opt.mmap);
  return std::make_unique<LlamaModel>(cfg, std::move(ck), be, opt);
}

LlamaModel::LlamaModel(const ModelConfig& cfg, Checkpoint ckpt, Backend& be, const LoadOptions& opt)
    : cfg_(cfg), ckpt_(std::move(ckpt)), be_(&be) {
  BL_CHECK(cfg_.architecture == "LlamaForCausalLM" || cfg_.architecture == "MistralForCausalLM" ||
               cfg_.architecture == "Qwen2ForCausalLM",
           code::kUnsupported, "architecture '", cfg_.architecture,
           "' is not supported (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)");
  BL_CHECK(cfg_.num_key_value_heads >= 1 && cfg_.num_attention_heads % cfg_.num_key_value_heads == 0,
           code::kBadFile, "config: num_attention_heads (", cfg_.num_attention_heads,
           ") must be a multiple of num_key_value_heads (", cfg_.num_key_value_heads, ")");
  weights_.load(cfg_, ckpt_, be, opt.full_training, opt.weight_dtype);
  inv_freq_host_ = rope_inv_freq(cfg_);
  inv_freq_ = Buffer(be, inv_freq_host_.size() * sizeof(float));
  be.to_device(inv_freq_.data(), inv_freq_host_.data(), inv_freq_.bytes());
  attn_scale_ = float(1.0 / std::sqrt(double(cfg_.head_dim)));
  lora_at_.assign(size_t(cfg_.num_hidden_layers), {});
}

LlamaModel::~LlamaModel() = default;

// ---------------------------------------------------------------------------------
// LoRA

void LlamaModel::add_lora(const LoraConfig& c) {
  c.validate();
  BL_CHECK(!has_lora(), code::kInvalidArgument, "the model already has LoRA adapters");
  std::vector<std::unique_ptr<LoraModule>> mods;
  std::vector<bool> used(c.target_modules.size(), false);
  auto consider = [&](const std::string& path, const std::string& kind, int layer, int d_in, int d_out) {
    if (!lora_targets(c, path)) return;
    if (c.target_regex.empty())
      for (size_t i = 0; i < c.target_modules.size(); ++i)
        used[i] = used[i] || lora_target_matches(c.target_modules[i], path);
    auto m = std::make_unique<LoraModule>();
    m->path = path;
    m->kind = kind;
    m->layer = layer;
    m->index = int(mods.size());
    m->d_in = d_in;
    m->d_out = d_out;
    m->r = c.r;
    m->scale = float(c.scale());
    m->dropout = float(c.dropout);
    mods.push_back(std::move(m));
  };
  const int d = cfg_.hidden_size, I = cfg_.intermediate_size;
  const int qd = cfg_.num_attention_heads * cfg_.head_dim, kvd = cfg_.num_key_value_heads * cfg_.head_dim;
  const int in_dim[kLayerModules] = {d, d, d, qd, d, d, I};
  const int out_dim[kLayerModules] = {qd, kvd, kvd, d, I, I, d};
  for (int l = 0; l < cfg_.num_hidden_layers; ++l)
    for (int k = 0; k < kLayerModules; ++k)
      consider("model.layers." + std::to_string(l) + "." + kKindPrefix[k] + "." + kKindName[k],
               kKindName[k], l, in_dim[k], out_dim[k]);
  consider("lm_head", "lm_head", -1, d, cfg_.vocab_size);
  if (c.target_regex.empty())
    for (size_t i = 0; i < used.size(); ++i)
      BL_CHECK(used[i], code::kInvalidArgument, "lora target module '", c.target_modules[i],
               "' matches no module of the model");
  BL_CHECK(!mods.empty(), code::kInvalidArgument, "lora target_regex '", c.target_regex,
           "' matches no module path (paths look like model.layers.0.self_attn.q_proj, lm_head)");
  for (auto& m : mods) {
    m->A = Buffer(*be_, size_t(m->numel_a()) * sizeof(float));
    m->B = Buffer(*be_, size_t(m->numel_b()) * sizeof(float));
    m->dA = Buffer(*be_, size_t(m->numel_a()) * sizeof(float));
    m->dB = Buffer(*be_, size_t(m->numel_b()) * sizeof(float));
    be_->zero(m->dA.data(), m->dA.bytes());
    be_->zero(m->dB.data(), m->dB.bytes());
    lora_init(*be_, *m, c.seed);
  }
  lora_cfg_ = c;
  lora_ = std::move(mods);
  lora_at_.assign(size_t(cfg_.num_hidden_layers), {});
  lora_lm_ = nullptr;
  for (auto& m : lora_) {
    if (m->layer < 0) {
      lora_lm_ = m.get();
      continue;
    }
    for (int k = 0; k < kLayerModules; ++k)
      if (m->kind == kKindName[k]) lora_at_[size_t(m->layer)][size_t(k)] = m.get();
  }
  train_forwards_ = 0;
  fwd_valid_ = false;
}

void LlamaModel::remove_lora() {
  lora_.clear();
  lora_at_.assign(size_t(cfg_.num_hidden_layers), {});
  lora_lm_ = nullptr;
  lora_cfg_ = LoraConfig{};
  adamw_.reset();
  fwd_valid_ = false;
}

const LoraModule& LlamaModel::lora_module(int m) const {
  BL_CHECK(m >= 0 && m < num_lora_modules(), code::kInvalidArgument, "lora module index ", m,
           " out of range [0, ", num_lora_modules(), ")");
  return *lora_[size_t(m)];
}

LoraMatrixInfo LlamaModel::lora_matrix(int id) const {
  BL_CHECK(id >= 0 && id < num_lora_matrices(), code::kInvalidArgument, "lora matrix id ", id,
           " out of range [0, ", num_lora_matrices(), ")");
  const LoraModule& m = *lora_[size_t(id / 2)];
  return (id % 2) ? m.info_b() : m.info_a();
}

int64_t LlamaModel::lora_matrix_numel(int id) const {
  LoraMatrixInfo i = lora_matrix(id);
  return int64_t(i.d_in) * i.d_out;
}

float* LlamaModel::lora_weight(int id) const {
  lora_matrix(id);
  const LoraModule& m = *lora_[size_t(id / 2)];
  return (id % 2) ? m.B.f() : m.A.f();
}

float* LlamaModel::lora_grad(int id) const {
  lora_matrix(id);
  const LoraModule& m = *lora_[size_t(id / 2)];
  return (id % 2) ? m.dB.f() : m.dA.f();
}

std::vector<float> LlamaModel::get_lora_weight(int id) const {
  std::vector<float> h(static_cast<size_t>(lora_matrix_numel(id)));
  be_->to_host(h.data(), lora_weight(id), h.size() * sizeof(float));
  return h;
}

std::vector<float> LlamaModel::get_lora_grad(int id) const {
  std::vector<float> h(static_cast<size_t>(lora_matrix_numel(id)));
  be_->to_host(h.data(), lora_grad(id), h.size() * sizeof(float));
  return h;
}

void LlamaModel::set_lora_weight(int id, const float* host, int64_t n) {
  const int64_t want = lora_matrix_numel(id);
  BL_CHECK(n == want, code::kShapeMismatch, "lora matrix ", id, " (", lora_[size_t(id / 2)]->path,
           (id % 2) ? ".lora_B" : ".lora_A", ") has ", want, " elements, got ", n);
  for (int64_t i = 0; i < n; ++i)
    BL_CHECK(std::isfinite(host[i]), code::kInvalidArgument, "lora matrix ", id, " value ", i,
             " is not finite");
  be_->to_device(lora_weight(id), host, size_t(n) * sizeof(float));
  fwd_valid_ = false;
}

int64_t LlamaModel::num_lora_params() const {
  int64_t n = 0;
  for (auto& m : lora_) n += m->numel_a() + m->numel_b();
  return n;
}

void LlamaModel::enable_full_training() {
  weights_.make_trainable(*be_);
  fwd_valid_ = false;
}

// ---------------------------------------------------------------------------------
// training state

void LlamaModel::zero_grads() {
  for (auto& m : lora_) {
    be_->zero(m->dA.data(), m->dA.bytes());
    be_->zero(m->dB.data(), m->dB.bytes());
  }
  if (full_training())
    for (auto& p : weights_.params()) be_->zero(p->grad.data(), p->grad.bytes());
}

std::vector<TrainTensor> LlamaModel::trainable_tensors() {
  std::vector<TrainTensor> ts;
  for (auto& m : lora_) {
    ts.push_back({m->path + ".lora_A.weight", m->A.f(), m->dA.f(), m->numel_a(), true});
    ts.push_back({m->path + ".lora_B.weight", m->B.f(), m->dB.f(), m->numel_b(), true});
  }
  if (full_training())
    for (auto& p : weights_.params()) ts.push_back({p->name, p->data, p->grad.f(), p->numel(), p->decay});
  return ts;
}

int64_t LlamaModel::num_trainable() const {
  return num_lora_params() + (full_training() ? weights_.numel() : 0);
}

StepReport LlamaModel::optimizer_step(const AdamWOptions& o) {
  auto ts = trainable_tensors();
  fwd_valid_ = false;
  return adamw_.step(*be_, ts, o);
}

size_t LlamaModel::native_bytes() const {
  size_t n = weights_.owned_bytes() + ws_.bytes() + adamw_.bytes() + inv_freq_.bytes();
  for (auto& m : lora_) n += m->A.bytes() + m->B.bytes() + m->dA.bytes() + m->dB.bytes();
  return n;
}

// ---------------------------------------------------------------------------------
// helpers

WsDims LlamaModel::dims() const {
  WsDims D;
  D.L = cfg_.num_hidden_layers;
  D.d = cfg_.hidden_size;
  D.qd = cfg_.num_attention_heads * cfg_.head_dim;
  D.kvd = cfg_.num_key_value_heads * cfg_.head_dim;
  D.I = cfg_.intermediate_size;
  D.V = cfg_.vocab_size;
  D.r = has_lora() ? lora_cfg_.r : 0;
  D.lora.assign(size_t(D.L), {});
  for (int l = 0; l < D.L; ++l)
    for (int k = 0; k < kLayerModules; ++k) D.lora[size_t(l)][size_t(k)] = lora_at_[size_t(l)][size_t(k)] != nullptr;
  D.lora_lm = lora_lm_ != nullptr;
  return D;
}

LlamaModel::Lin LlamaModel::layer_lin(int l, int kind) const {
  const LayerWeights& w = weights_.layers[size_t(l)];
  const int d = cfg_.hidden_size, I = cfg_.intermediate_size;
  const int qd = cfg_.num_attention_heads * cfg_.head_dim, kvd = cfg_.num_key_value_heads * cfg_.head_dim;
  Lin L;
  L.lora = lora_at_[size_t(l)][size_t(kind)];
  switch (kind) {
    case kQ: L.w = w.q, L.b = w.qb, L.in = d, L.out = qd; break;
    case kK: L.w = w.k, L.b = w.kb, L.in = d, L.out = kvd; break;
    case kV: L.w = w.v, L.b = w.vb, L.in = d, L.out = kvd; break;
    case kO: L.w = w.o, L.b = w.ob, L.in = qd, L.out = d; break;
    case kGate: L.w = w.gate, L.in = d, L.out = I; break;
    case kUp: L.w = w.up, L.in = d, L.out = I; break;
    default: L.w = w.down, L.in = I, L.out = d; break;
  }
  return L;
}

LlamaModel::Lin LlamaModel::head_lin() const {
  Lin L;
  L.w = weights_.lm_head;
  L.lora = lora_lm_;
  L.in = cfg_.hidden_size;
  L.out = cfg_.vocab_size;
  return L;
}

bool LlamaModel::dropout_on(const LoraModule& m) const { return fwd_train_ && m.dropout > 0.0f; }

uint64_t LlamaModel::dropout_seed(const LoraModule& m) const {
  return mix64(fwd_seed_ ^ (uint64_t(m.index + 1) * 0x9e3779b97f4a7c15ull));
}

int LlamaModel::lowest_backward_layer(bool pg, const LoraObserver* obs) const {
  if (pg || !obs) return lowest_lora_layer();
  for (int l = 0; l < cfg_.num_hidden_layers; ++l)
    for (int k = 0; k < kLayerModules; ++k) {
      const LoraModule* m = lora_at_[size_t(l)][size_t(k)];
      if (m && (obs->observes(m->info_a().id) || obs->observes(m->info_b().id))) return l;
    }
  return cfg_.num_hidden_layers;
}

int LlamaModel::lowest_lora_layer() const {
  for (int l = 0; l < cfg_.num_hidden_layers; ++l)
    for (int k = 0; k < kLayerModules; ++k)
      if (lora_at_[size_t(l)][size_t(k)]) return l;
  return cfg_.num_hidden_layers;
}

// ---------------------------------------------------------------------------------
// linear with LoRA

void LlamaModel::lin_fwd(const Lin& L, const float* x, float* y, float* u, int N, float beta) {
  Backend& be = *be_;
  // Frozen product y = beta y + x W^T; a bf16-stored W goes through the
  // bf16-weight GEMM (float32 accumulation; the CPU widens W exactly, so it
  // equals the f32 path on bf16-representable weights).
  if (L.w->is_bf16())
    be.gemm_bf16w(false, true, N, L.out, L.in, 1.0f, x, L.in, L.w->bf16, L.in, beta, y, L.out);
  else
    be.gemm(false, true, N, L.out, L.in, 1.0f, x, L.in, L.w->data, L.in, beta, y, L.out);
  if (L.b) be.add_bias(y, L.b->data, N, L.out);
  if (L.lora) {
    const LoraModule& m = *L.lora;
    const float* xin = x;
    if (dropout_on(m)) {
      be.dropout_fwd(a_.drop, x, int64_t(N) * L.in, m.dropout, dropout_seed(m));
      xin = a_.drop;
    }
    // u = xin A^T (saved), y += s u B^T: one seam op, so a GPU backend adds the
    // branch to the frozen output without another pass over y.
    be.lora_fwd(y, u, xin, m.A.f(), m.B.f(), N, L.in, L.out, m.r, m.scale);
  }
}

// g: [N x out] output gradient; dx (nullable) accumulates the input gradient.
void LlamaModel::lin_bwd(const Lin& L, const float* x, const float* u, const float* g, float* dx,
                         int N, bool pg, LoraObserver* obs, int B, int T, const uint8_t* mask) {
  Backend& be = *be_;
  if (dx) {  // dx += g W (frozen W; bf16 store: the bf16-weight GEMM)
    if (L.w->is_bf16())
      be.gemm_bf16w(false, false, N, L.in, L.out, 1.0f, g, L.out, L.w->bf16, L.in, 1.0f, dx, L.in);
    else
      be.gemm(false, false, N, L.in, L.out, 1.0f, g, L.out, L.w->data, L.in, 1.0f, dx, L.in);
  }
  if (pg && full_training()) {
    be.gemm(true, false, L.out, L.in, N, 1.0f, g, L.out, x, L.in, 1.0f, L.w->grad.f(), L.in);
    if (L.b) be.bias_bwd(L.b->grad.f(), g, N, L.out);
  }
  if (!L.lora) return;
  const LoraModule& m = *L.lora;
  const int r = m.r;
  const bool drop = dropout_on(m);
  const float* xin = x;
  if (drop) {
    be.dropout_fwd(a_.drop, x, int64_t(N) * L.in, m.dropout, dropout_seed(m));
    xin = a_.drop;
  }
  // One seam op (backend.h lora_bwd): g_u = s g B (the A-layer's output
  // gradient, kept in a_.gu for the observer), dB += g^T (s u), dA += g_u^T xin,
  // dx += drop_bwd(g_u A). On the CPU the same GEMMs in the same order as the
  // separate calls this replaced; a GPU backend fuses the passes over g.
  be.lora_bwd(a_.gu, pg ? m.dA.f() : nullptr, pg ? m.dB.f() : nullptr, dx, drop ? a_.drop2 : nullptr, g, xin, u,
              m.A.f(), m.B.f(), N, L.in, L.out, r, m.scale, drop ? m.dropout : 0.0f, dropout_seed(m));
  if (obs) {
    obs->observe(m.info_a(), xin, a_.gu, B, T, mask);
    be.copy(a_.vbuf, u, size_t(N) * r * sizeof(float));
    be.scale(int64_t(N) * r, m.scale, a_.vbuf);
    obs->observe(m.info_b(), a_.vbuf, g, B, T, mask);
  }
}

// ---------------------------------------------------------------------------------
// forward

void LlamaModel::begin_forward(bool train, int64_t dropout_step) {
  fwd_train_ = train;
  if (!train) return;
  const uint64_t step = dropout_step >= 0 ? uint64_t(dropout_step) : ++train_forwards_;
  fwd_seed_ = mix64(lora_cfg_.seed * 0x2545f4914f6cdd1dull + step);
}

void LlamaModel::upload_tokens(const int32_t* ids, const uint8_t* mask, int B, int T) {
  const int64_t N = int64_t(B) * T;
  std::vector<int32_t> pos(static_cast<size_t>(N));
  for (int b = 0; b < B; ++b) {
    int32_t c = 0;  // real tokens before t
    for (int t = 0; t < T; ++t) {
      pos[size_t(b) * T + t] = c;
      c += mask[int64_t(b) * T + t];
    }
    if (cfg_.sliding_window > 0)
      BL_CHECK(c <= cfg_.sliding_window, code::kUnsupported, "example ", b, " has ", c,
               " tokens, more than the sliding window (", cfg_.sliding_window,
               "); windowed attention is not implemented");
  }
  be_->to_device(a_.ids, ids, size_t(N) * sizeof(int32_t));
  be_->to_device(a_.mask, mask, size_t(N));
  be_->to_device(a_.pos, pos.data(), size_t(N) * sizeof(int32_t));
}

// n1 = rms(x); q,k,v; RoPE; la.att = attention output (all N rows).
void LlamaModel::attn_core_fwd(int l) {
  Backend& be = *be_;
  const LayerWeights& w = weights_.layers[size_t(l)];
  LayerActs& la = a_.layers[size_t(l)];
  const int N = a_.N, d = cfg_.hidden_size, H = cfg_.num_attention_heads,
            Hkv = cfg_.num_key_value_heads, hd = cfg_.head_dim;
  be.rmsnorm_fwd(la.n1, la.rstd1, a_.resid[size_t(l)], w.attn_norm->data, N, d, float(cfg_.rms_norm_eps));
  lin_fwd(layer_lin(l, kQ), la.n1, la.q, la.u[kQ], N);
  lin_fwd(layer_lin(l, kK), la.n1, la.k, la.u[kK], N);
  lin_fwd(layer_lin(l, kV), la.n1, la.v, la.u[kV], N);
  be.rope_fwd(la.q, a_.pos, inv_freq_.f(), N, H, hd);
  be.rope_fwd(la.k, a_.pos, inv_freq_.f(), N, Hkv, hd);
  AttnShape s{a_.B, a_.T, H, Hkv, hd};
  be.attention_fwd(la.att, la.att_saved, la.q, la.k, la.v, a_.mask, s, attn_scale_);
}

void LlamaModel::layer_fwd(int l) {
  LayerActs& la = a_.layers[size_t(l)];
  attn_core_fwd(l);
  post_attn_fwd(l, la.att, a_.resid[size_t(l)], a_.resid[size_t(l) + 1], a_.N);
}

// o_proj, residual, MLP norm, MLP and residual on `rows` rows: att -> out, with
// x the layer input rows (out may alias x: x is read before out is written).
void LlamaModel::post_attn_fwd(int l, const float* att, const float* x, float* out, int rows) {
  Backend& be = *be_;
  const LayerWeights& w = weights_.layers[size_t(l)];
  LayerActs& la = a_.layers[size_t(l)];
  const int d = cfg_.hidden_size;
  // The residual adds go into the GEMMs (beta = 1 on a copy of the residual):
  // a BLAS zeroes C first when beta = 0, so this saves that pass and the
  // separate add's three passes over the rows for a one-pass copy.
  be.copy(la.x_mid, x, size_t(rows) * d * sizeof(float));
  lin_fwd(layer_lin(l, kO), att, la.x_mid, la.u[kO], rows, 1.0f);
  be.rmsnorm_fwd(la.n2, la.rstd2, la.x_mid, w.mlp_norm->data, rows, d, float(cfg_.rms_norm_eps));
  lin_fwd(layer_lin(l, kGate), la.n2, la.gate, la.u[kGate], rows);
  lin_fwd(layer_lin(l, kUp), la.n2, la.up, la.u[kUp], rows);
  be.swiglu_fwd(a_.act, la.gate, la.up, int64_t(rows) * cfg_.intermediate_size);
  be.copy(out, la.x_mid, size_t(rows) * d * sizeof(float));  // x was read above: out may alias it
  lin_fwd(layer_lin(l, kDown), a_.act, out, la.u[kDown], rows, 1.0f);
}

// Multiple-choice heads read only the last real position of each example, so
// in the last layer the other rows of o_proj, the residual, the MLP norm and
// the MLP feed nothing. Attention (and q/k/v) stays full: the kept rows attend
// to every key. Kept rows land compacted: x_mid/gate/up/u[o..down] use their
// first B rows, a_.att_last holds the gathered attention output, and the
// layer output goes straight to a_.hl (the head's input; resid[L] is unused).
bool LlamaModel::last_rows_possible() const {
  if (full_training() || cfg_.num_hidden_layers < 1) return false;
  // Dropout masks are keyed by element index over all N rows: a compacted
  // input would draw other masks, so dropout on these modules keeps the full path.
  const auto& lo = lora_at_[size_t(cfg_.num_hidden_layers - 1)];
  for (int k : {kO, kGate, kUp, kDown})
    if (lo[size_t(k)] && dropout_on(*lo[size_t(k)])) return false;
  const char* off = std::getenv("BAYESLORA_FULL_LAST_LAYER");
  return !(off && *off && std::strcmp(off, "0") != 0);
}

void LlamaModel::layer_fwd_last_rows(int l) {
  Backend& be = *be_;
  LayerActs& la = a_.layers[size_t(l)];
  const int B = a_.B, d = cfg_.hidden_size, qd = cfg_.num_attention_heads * cfg_.head_dim;
  const float* x = a_.resid[size_t(l)];
  attn_core_fwd(l);  // all N rows: the kept rows attend to every key
  // From here on B rows: the same per-row operations as layer_fwd.
  be.gather_rows(a_.att_last, la.att, a_.last_idx, B, qd);
  be.gather_rows(a_.hl, x, a_.last_idx, B, d);  // the residual rows (hl is overwritten below)
  post_attn_fwd(l, a_.att_last, a_.hl, a_.hl, B);
}

void LlamaModel::trunk_forward() {
  be_->embedding_fwd(a_.resid[0], a_.ids, weights_.embed->data, a_.N, cfg_.hidden_size);
  const int L = cfg_.num_hidden_layers;
  for (int l = 0; l < L; ++l) {
    check_cancel("forward");  // an AbortSignal stops within one layer (the forward leaves no state behind)
    if (fwd_last_rows_ && l == L - 1)
      layer_fwd_last_rows(l);
    else
      layer_fwd(l);
  }
}

McOutput LlamaModel::forward_mc(const McBatchView& b, bool train, int64_t dropout_step) {
  validate_mc_batch(b, cfg_.vocab_size);
  BL_CHECK(int64_t(b.B) * cfg_.vocab_size < int64_t(std::numeric_limits<int32_t>::max()),
           code::kInvalidArgument, "mc batch: B * vocab_size is too large");
  Backend& be = *be_;
  fwd_valid_ = false;
  WsDims D = dims();
  AttnShape s{b.B, b.T, cfg_.num_attention_heads, cfg_.num_key_value_heads, cfg_.head_dim};
  D.attn_saved = be.attention_saved_floats(s);
  ws_.prepare(be, D, WsMode::kMc, b.B, b.T, b.C, a_);

  begin_forward(train, dropout_step);
  fwd_last_rows_ = last_rows_possible();

  const int B = b.B, C = b.C, T = b.T, d = cfg_.hidden_size;
  upload_tokens(b.ids, b.mask, B, T);
  std::vector<int32_t> last_idx(static_cast<size_t>(B)), labels(static_cast<size_t>(B)), gidx(size_t(B) * C);
  int nl = 0;
  for (int i = 0; i < B; ++i) {
    last_idx[size_t(i)] = i * T + b.last[i];
    labels[size_t(i)] = b.labels ? b.labels[i] : -1;
    nl += labels[size_t(i)] >= 0;
    for (int c = 0; c < C; ++c)
      gidx[size_t(i) * C + c] = i * cfg_.vocab_size + b.rows[int64_t(i) * C + c];
  }
  be.to_device(a_.last_idx, last_idx.data(), last_idx.size() * sizeof(int32_t));
  be.to_device(a_.rows, b.rows, size_t(B) * C * sizeof(int32_t));
  be.to_device(a_.labels, labels.data(), labels.size() * sizeof(int32_t));
  be.to_device(a_.gidx, gidx.data(), gidx.size() * sizeof(int32_t));

  trunk_forward();

  // Head: last real position only, C rows only (the last-rows layer wrote a_.hl itself).
  if (!fwd_last_rows_) be.gather_rows(a_.hl, a_.resid[size_t(cfg_.num_hidden_layers)], a_.last_idx, B, d);
  be.rmsnorm_fwd(a_.nf, a_.rstd_f, a_.hl, weights_.norm->data, B, d, float(cfg_.rms_norm_eps));
  be.rows_dot_fwd(a_.logits, a_.nf, weights_.lm_head->data, a_.rows, B, C, d);
  if (lora_lm_) {
    const LoraModule& m = *lora_lm_;
    const float* xin = a_.nf;
    if (dropout_on(m)) {
      be.dropout_fwd(a_.drop, a_.nf, int64_t(B) * d, m.dropout, dropout_seed(m));
      xin = a_.drop;
    }
    be.gemm(false, true, B, m.r, d, 1.0f, xin, d, m.A.f(), d, 0.0f, a_.u_lm, m.r);
    be.rows_dot_fwd(a_.tmp_c, a_.u_lm, m.B.f(), a_.rows, B, C, m.r);
    be.axpy(int64_t(B) * C, m.scale, a_.tmp_c, a_.logits);
  }
  be.softmax_xent(a_.loss, a_.probs, a_.dlogits, a_.logits, a_.labels, B, C,
                  nl > 0 ? 1.0f / float(nl) : 0.0f);

  McOutput out;
  out.B = B;
  out.C = C;
  out.logits.resize(size_t(B) * C);
  out.probs.resize(size_t(B) * C);
  out.dloss.resize(size_t(B) * C);
  std::vector<float> loss(static_cast<size_t>(B));
  be.to_host(out.logits.data(), a_.logits, out.logits.size() * sizeof(float));
  be.to_host(out.probs.data(), a_.probs, out.probs.size() * sizeof(float));
  be.to_host(out.dloss.data(), a_.dlogits, out.dloss.size() * sizeof(float));
  be.to_host(loss.data(), a_.loss, loss.size() * sizeof(float));
  double sum = 0;
  for (int i = 0; i < B; ++i)
    if (labels[size_t(i)] >= 0) sum += loss[size_t(i)];
  out.n_labelled = nl;
  out.loss = nl > 0 ? sum / nl : std::numeric_limits<double>::quiet_NaN();
  fwd_valid_ = true;
  return out;
}

LmOutput LlamaModel::forward_lm(const LmBatchView& b, bool train, float grad_scale,
                                int64_t dropout_step) {
  validate_lm_batch(b, cfg_.vocab_size);
  BL_CHECK(std::isfinite(grad_scale), code::kInvalidArgument, "grad_scale must be finite");
  Backend& be = *be_;
  fwd_valid_ = false;
  WsDims D = dims();
  AttnShape s{b.B, b.T, cfg_.num_attention_heads, cfg_.num_key_value_heads, cfg_.head_dim};
  D.attn_saved = be.attention_saved_floats(s);
  ws_.prepare(be, D, WsMode::kLm, b.B, b.T, 0, a_);

  begin_forward(train, dropout_step);
  fwd_last_rows_ = false;  // every position's logits are used

  const int N = b.B * b.T, d = cfg_.hidden_size, V = cfg_.vocab_size;
  upload_tokens(b.ids, b.mask, b.B, b.T);
  be.to_device(a_.targets, b.targets, size_t(N) * sizeof(int32_t));
  int64_t nt = 0;
  for (int i = 0; i < N; ++i) nt += b.targets[i] >= 0;

  trunk_forward();
  be.rmsnorm_fwd(a_.nf, a_.rstd_f, a_.resid[size_t(cfg_.num_hidden_layers)], weights_.norm->data, N,
                 d, float(cfg_.rms_norm_eps));
  lin_fwd(head_lin(), a_.nf, a_.logits, a_.u_lm, N);
  be.softmax_xent(a_.loss, nullptr, a_.dlogits, a_.logits, a_.targets, N, V,
                  nt > 0 ? grad_scale / float(nt) : 0.0f);
  std::vector<float> loss(static_cast<size_t>(N));
  be.to_host(loss.data(), a_.loss, loss.size() * sizeof(float));
  double sum = 0;
  for (int i = 0; i < N; ++i) sum += loss[size_t(i)];
  LmOutput out;
  out.n_targets = nt;
  out.loss = nt > 0 ? sum / double(nt) : std::numeric_limits<double>::quiet_NaN();
  fwd_valid_ = true;
  return out;
}

std::vector<float> LlamaModel::last_mc_logits() const {
  BL_CHECK(fwd_valid_ && a_.mode == WsMode::kMc, code::kInvalidArgument, "no valid multiple-choice forward");
  std::vector<float> h(size_t(a_.B) * a_.C);
  be_->to_host(h.data(), a_.logits, h.size() * sizeof(float));
  return h;
}

// ---------------------------------------------------------------------------------
// backward

void LlamaModel::begin_backward(bool accumulate, bool pg) {
  if (pg && !accumulate) zero_grads();
}

void LlamaModel::layer_bwd(int l, bool need_input, bool pg, LoraObserver* obs) {
  Backend& be = *be_;
  LayerActs& la = a_.layers[size_t(l)];
  const auto& lo = lora_at_[size_t(l)];
  const int N = a_.N;
  const int qd = cfg_.num_attention_heads * cfg_.head_dim;
  const bool full = pg && full_training();
  const int B = a_.B, T = a_.T;
  const uint8_t* mask = a_.mask;

  const bool attn_lora = lo[kQ] || lo[kK] || lo[kV] || lo[kO];
  const bool mlp_lora = lo[kGate] || lo[kUp] || lo[kDown];
  const bool attn_needed = full || attn_lora || need_input;
  const bool mlp_in_needed = attn_needed;  // d x_mid must include the MLP branch
  const bool mlp_needed = full || mlp_lora || mlp_in_needed;

  // a_.dX = dL/d resid[l+1] = the direct (residual) part of dL/d x_mid.
  if (mlp_needed) mlp_bwd(l, N, a_.dX, mlp_in_needed, pg, obs, B, T, mask);
  // a_.dX = dL/d x_mid (when attention is needed).
  if (attn_needed) {
    const bool o_dx = full || lo[kQ] || lo[kK] || lo[kV] || need_input;
    if (o_dx) be.zero(a_.datt, size_t(N) * qd * sizeof(float));
    lin_bwd(layer_lin(l, kO), la.att, la.u[kO], a_.dX, o_dx ? a_.datt : nullptr, N, pg, obs, B, T, mask);
    if (o_dx) attn_core_bwd(l, need_input, pg, obs);
  }
  // a_.dX = dL/d resid[l] (when need_input).
}

// MLP backward on `rows` rows: dX = dL/d (layer output rows) on entry; LoRA
// gradients of gate/up/down; when mlp_in_needed, dX += the MLP branch's part
// of dL/d x_mid. obs/B/T/mask as for lin_bwd.
void LlamaModel::mlp_bwd(int l, int rows, float* dX, bool mlp_in_needed, bool pg, LoraObserver* obs, int B, int T,
                         const uint8_t* mask) {
  Backend& be = *be_;
  const LayerWeights& w = weights_.layers[size_t(l)];
  LayerActs& la = a_.layers[size_t(l)];
  const auto& lo = lora_at_[size_t(l)];
  const int d = cfg_.hidden_size, I = cfg_.intermediate_size;
  const bool full = pg && full_training();
  const bool down_dx = full || lo[kGate] || lo[kUp] || mlp_in_needed;
  be.swiglu_fwd(a_.act, la.gate, la.up, int64_t(rows) * I);  // down's input, recomputed
  if (down_dx) be.zero(a_.dact, size_t(rows) * I * sizeof(float));
  lin_bwd(layer_lin(l, kDown), a_.act, la.u[kDown], dX, down_dx ? a_.dact : nullptr, rows, pg, obs, B, T, mask);
  if (!down_dx) return;
  be.zero(a_.dgate, size_t(rows) * I * sizeof(float));
  be.zero(a_.dup, size_t(rows) * I * sizeof(float));
  be.swiglu_bwd(a_.dgate, a_.dup, a_.dact, la.gate, la.up, int64_t(rows) * I);
  if (mlp_in_needed) be.zero(a_.dn, size_t(rows) * d * sizeof(float));
  float* dn = mlp_in_needed ? a_.dn : nullptr;
  be.rmsnorm_fwd(la.n2, a_.rstd_tmp, la.x_mid, w.mlp_norm->data, rows, d, float(cfg_.rms_norm_eps));  // recompute
  lin_bwd(layer_lin(l, kGate), la.n2, la.u[kGate], a_.dgate, dn, rows, pg, obs, B, T, mask);
  lin_bwd(layer_lin(l, kUp), la.n2, la.u[kUp], a_.dup, dn, rows, pg, obs, B, T, mask);
  if (mlp_in_needed)
    be.rmsnorm_bwd(dX, full ? w.mlp_norm->grad.f() : nullptr, a_.dn, la.x_mid, w.mlp_norm->data, la.rstd2, rows, d);
}

// a_.datt = dL/d att (all N rows) -> q/k/v LoRA gradients and, when need_input,
// a_.dX += dL/d resid[l] through the attention branch.
void LlamaModel::attn_core_bwd(int l, bool need_input, bool pg, LoraObserver* obs) {
  Backend& be = *be_;
  const LayerWeights& w = weights_.layers[size_t(l)];
  LayerActs& la = a_.layers[size_t(l)];
  const int N = a_.N, d = cfg_.hidden_size;
  const int H = cfg_.num_attention_heads, Hkv = cfg_.num_key_value_heads, hd = cfg_.head_dim;
  const int qd = H * hd, kvd = Hkv * hd;
  const bool full = pg && full_training();
  const int B = a_.B, T = a_.T;
  const uint8_t* mask = a_.mask;
  const float eps = float(cfg_.rms_norm_eps);
  be.zero(a_.dq, size_t(N) * qd * sizeof(float));
  be.zero(a_.dk, size_t(N) * kvd * sizeof(float));
  be.zero(a_.dv, size_t(N) * kvd * sizeof(float));
  AttnShape s{B, T, H, Hkv, hd};
  be.attention_bwd(a_.dq, a_.dk, a_.dv, a_.datt, la.att_saved, la.q, la.k, la.v, mask, s, attn_scale_);
  be.rope_bwd(a_.dq, a_.pos, inv_freq_.f(), N, H, hd);
  be.rope_bwd(a_.dk, a_.pos, inv_freq_.f(), N, Hkv, hd);
  if (need_input) be.zero(a_.dn, size_t(N) * d * sizeof(float));
  float* dn = need_input ? a_.dn : nullptr;
  be.rmsnorm_fwd(la.n1, a_.rstd_tmp, a_.resid[size_t(l)], w.attn_norm->data, N, d, eps);  // recompute
  lin_bwd(layer_lin(l, kQ), la.n1, la.u[kQ], a_.dq, dn, N, pg, obs, B, T, mask);
  lin_bwd(layer_lin(l, kK), la.n1, la.u[kK], a_.dk, dn, N, pg, obs, B, T, mask);
  lin_bwd(layer_lin(l, kV), la.n1, la.u[kV], a_.dv, dn, N, pg, obs, B, T, mask);
  if (need_input)
    be.rmsnorm_bwd(a_.dX, full ? w.attn_norm->grad.f() : nullptr, a_.dn, a_.resid[size_t(l)],
                   w.attn_norm->data, la.rstd1, N, d);
  // a_.dX = dL/d resid[l] (when need_input).
}

bool LlamaModel::last_layer_post_attn_lora() const {
  if (cfg_.num_hidden_layers < 1) return false;
  const auto& lo = lora_at_[size_t(cfg_.num_hidden_layers - 1)];
  for (int k : {kO, kGate, kUp, kDown})
    if (lo[size_t(k)]) return true;
  return false;
}

// The backward of layer_fwd_last_rows (no full training; observers as in
// llama.h): the MLP and o_proj on the B kept rows, from a_.dhl = dL/d (layer
// output rows); the attention-output gradient is scattered into a zeroed
// [N x qd] buffer for the full attention backward. Rows that fed nothing had
// zero output gradient, so every LoRA gradient is the same sum as on the
// full path.
void LlamaModel::layer_bwd_last_rows(int l, bool need_input, bool pg, LoraObserver* obs) {
  Backend& be = *be_;
  LayerActs& la = a_.layers[size_t(l)];
  const auto& lo = lora_at_[size_t(l)];
  const int N = a_.N, B = a_.B, d = cfg_.hidden_size;
  const int qd = cfg_.num_attention_heads * cfg_.head_dim;
  const bool attn_needed = lo[kQ] || lo[kK] || lo[kV] || lo[kO] || need_input;
  const bool mlp_in_needed = attn_needed;
  const bool mlp_needed = lo[kGate] || lo[kUp] || lo[kDown] || mlp_in_needed;
  float* dxb = a_.dhl;  // [B x d]: dL/d layer output rows, then dL/d x_mid rows
  // o_proj and the MLP are observed on the kept rows, one per example (T = 1).
  if (mlp_needed) mlp_bwd(l, B, dxb, mlp_in_needed, pg, obs, B, 1, nullptr);
  if (!attn_needed) return;
  const bool o_dx = lo[kQ] || lo[kK] || lo[kV] || need_input;
  if (o_dx) be.zero(a_.datt_last, size_t(B) * qd * sizeof(float));
  lin_bwd(layer_lin(l, kO), a_.att_last, la.u[kO], dxb, o_dx ? a_.datt_last : nullptr, B, pg, obs, B, 1, nullptr);
  if (need_input) {  // the residual part of dL/d resid[l]: dL/d x_mid on the kept rows
    be.zero(a_.dX, size_t(N) * d * sizeof(float));
    be.scatter_add_rows(a_.dX, dxb, a_.last_idx, B, d);
  }
  if (o_dx) {
    be.zero(a_.datt, size_t(N) * qd * sizeof(float));
    be.scatter_add_rows(a_.datt, a_.datt_last, a_.last_idx, B, qd);
    // q/k/v see all N rows: their inputs are the full n1 and their output
    // gradients come from the scattered a_.datt, whose other rows are the
    // exact zeros the full path would have there.
    attn_core_bwd(l, need_input, pg, obs);
  }
}

// From a_.dX = dL/d resid[L] down to the lowest layer that needs work.
void LlamaModel::trunk_bwd(bool pg, LoraObserver* obs) {
  const bool full = pg && full_training();
  const int L = cfg_.num_hidden_layers;
  const int stop = full ? 0 : lowest_backward_layer(pg, obs);
  for (int l = L - 1; l >= stop; --l) {
    // Training's gradients are discarded on abort; an observer (a K-FAC
    // accumulator) must see whole passes, so only observer-free passes stop here.
    if (!obs) check_cancel("backward");
    if (fwd_last_rows_ && l == L - 1)
      layer_bwd_last_rows(l, full || l > stop, pg, obs);  // backward_mc reran the layer for observers that need every row
    else
      layer_bwd(l, full || l > stop, pg, obs);
  }
  if (full) be_->embedding_bwd(weights_.embed->grad.f(), a_.ids, a_.dX, a_.N, cfg_.hidden_size);
}

void LlamaModel::backward_mc(const float* dlogits, LoraObserver* obs, bool accumulate, bool pg) {
  BL_CHECK(fwd_valid_ && a_.mode == WsMode::kMc, code::kInvalidArgument,
           "backward_mc needs a preceding forward_mc (with no weight change since)");
  BL_CHECK(dlogits, code::kInvalidArgument, "backward_mc: dlogits is null");
  Backend& be = *be_;
  const int B = a_.B, C = a_.C, d = cfg_.hidden_size, N = a_.N;
  for (int64_t i = 0; i < int64_t(B) * C; ++i)
    BL_CHECK(std::isfinite(dlogits[i]), code::kNumerical, "backward_mc: dlogits[", i, "] is not finite");
  begin_backward(accumulate, pg);
  const bool full = pg && full_training();
  const bool trunk = full || lowest_backward_layer(pg, obs) < cfg_.num_hidden_layers;
  if (trunk && fwd_last_rows_ && (full || (obs && obs->needs_every_row() && last_layer_post_attn_lora()))) {
    // An observer that needs every position's inputs of the last layer's
    // o_proj or MLP LoRA (K-FAC): rerun the last layer in full (same inputs
    // and dropout seed; a_.hl keeps the forward's values). The forward stays
    // full for any further backward passes. Otherwise the answer-rows
    // backward serves: q/k/v are observed on every row, o_proj and the MLP on
    // the answer rows (a Jacobian needs no rows whose gradient is zero).
    layer_fwd(cfg_.num_hidden_layers - 1);
    fwd_last_rows_ = false;
  }
  be.to_device(a_.seed, dlogits, size_t(B) * C * sizeof(float));

  if (trunk) be.zero(a_.dnf, size_t(B) * d * sizeof(float));
  if (trunk)
    be.rows_dot_bwd(a_.dnf, full ? weights_.lm_head->grad.f() : nullptr, a_.seed, a_.nf,
                    weights_.lm_head->data, a_.rows, B, C, d);
  if (lora_lm_) {
    const LoraModule& m = *lora_lm_;
    const int r = m.r;
    // rows_dot with the scaled seed gives g_u = s * B[rows]^T dlogits and
    // dB[rows] += (s * dlogits) u = dlogits v.
    be.copy(a_.tmp_c, a_.seed, size_t(B) * C * sizeof(float));
    be.scale(int64_t(B) * C, m.scale, a_.tmp_c);
    be.zero(a_.gu, size_t(B) * r * sizeof(float));
    be.rows_dot_bwd(a_.gu, pg ? m.dB.f() : nullptr, a_.tmp_c, a_.u_lm, m.B.f(), a_.rows, B, C, r);
    const bool drop = dropout_on(m);
    const float* xin = a_.nf;
    if (drop) {
      be.dropout_fwd(a_.drop, a_.nf, int64_t(B) * d, m.dropout, dropout_seed(m));
      xin = a_.drop;
    }
    if (pg) be.gemm(true, false, r, d, B, 1.0f, a_.gu, r, xin, d, 1.0f, m.dA.f(), d);
    if (trunk) {
      if (drop) {
        be.gemm(false, false, B, d, r, 1.0f, a_.gu, r, m.A.f(), d, 0.0f, a_.drop2, d);
        be.dropout_bwd(a_.dnf, a_.drop2, int64_t(B) * d, m.dropout, dropout_seed(m));
      } else {
        be.gemm(false, false, B, d, r, 1.0f, a_.gu, r, m.A.f(), d, 1.0f, a_.dnf, d);
      }
    }
    if (obs) {
      obs->observe(m.info_a(), xin, a_.gu, B, 1, nullptr);
      be.copy(a_.vbuf, a_.u_lm, size_t(B) * r * sizeof(float));
      be.scale(int64_t(B) * r, m.scale, a_.vbuf);
      be.zero(a_.gdense, size_t(B) * cfg_.vocab_size * sizeof(float));
      be.scatter_add_rows(a_.gdense, a_.seed, a_.gidx, B * C, 1);
      obs->observe(m.info_b(), a_.vbuf, a_.gdense, B, 1, nullptr);
    }
  }
  if (!trunk) return;
  be.zero(a_.dhl, size_t(B) * d * sizeof(float));
  be.rmsnorm_bwd(a_.dhl, full ? weights_.norm->grad.f() : nullptr, a_.dnf, a_.hl,
                 weights_.norm->data, a_.rstd_f, B, d);
  if (!fwd_last_rows_) {  // the last-rows layer starts from a_.dhl itself
    be.zero(a_.dX, size_t(N) * d * sizeof(float));
    be.scatter_add_rows(a_.dX, a_.dhl, a_.last_idx, B, d);
  }
  trunk_bwd(pg, obs);
}

void LlamaModel::backward_lm(LoraObserver* obs, bool accumulate, bool pg) {
  BL_CHECK(fwd_valid_ && a_.mode == WsMode::kLm, code::kInvalidArgument,
           "backward_lm needs a preceding forward_lm (with no weight change since)");
  Backend& be = *be_;
  const int N = a_.N, d = cfg_.hidden_size;
  begin_backward(accumulate, pg);
  const bool full = pg && full_training();
  const bool trunk = full || lowest_backward_layer(pg, obs) < cfg_.num_hidden_layers;
  if (trunk) be.zero(a_.dnf, size_t(N) * d * sizeof(float));
  lin_bwd(head_lin(), a_.nf, a_.u_lm, a_.dlogits, trunk ? a_.dnf : nullptr, N, pg, obs, a_.B, a_.T, a_.mask);
  if (!trunk) return;
  be.zero(a_.dX, size_t(N) * d * sizeof(float));
  be.rmsnorm_bwd(a_.dX, full ? weights_.norm->grad.f() : nullptr, a_.dnf,
                 a_.resid[size_t(cfg_.num_hidden_layers)], weights_.norm->data, a_.rstd_f, N, d);
  trunk_bwd(pg, obs);
}

}  // namespace bl
