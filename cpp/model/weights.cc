// Base-weight validation and loading (see weights.h).
#include "model/weights.h"

#include <algorithm>
#include <cstring>
#include <sstream>

#include "core/error.h"

namespace bl {

bool has_qkv_bias(const ModelConfig& c) {
  return c.attention_bias || c.architecture == "Qwen2ForCausalLM";
}
// HF LlamaAttention/MistralAttention give o_proj the same bias flag as q/k/v;
// Qwen2 never has an o_proj bias.
bool has_o_bias(const ModelConfig& c) {
  return c.attention_bias && c.architecture != "Qwen2ForCausalLM";
}

WeightDtype parse_weight_dtype(const std::string& s) {
  if (s == "f32") return WeightDtype::kF32;
  if (s == "bf16") return WeightDtype::kBF16;
  fail(code::kInvalidArgument, "weightDtype must be 'f32' or 'bf16', got '", s, "'");
}

const char* weight_dtype_name(WeightDtype t) {
  return t == WeightDtype::kBF16 ? "bf16" : t == WeightDtype::kF32 ? "f32" : "auto";
}

static std::string shape_str(const std::vector<int64_t>& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}

Param* LlamaWeights::add(const std::string& name, std::vector<int64_t> shape, bool decay) {
  auto p = std::make_unique<Param>();
  p->name = name;
  p->shape = std::move(shape);
  p->decay = decay;
  params_.push_back(std::move(p));
  return params_.back().get();
}

void LlamaWeights::load(const ModelConfig& c, const Checkpoint& ckpt, Backend& be, bool trainable,
                        WeightDtype wd) {
  BL_CHECK(!(trainable && wd == WeightDtype::kBF16), code::kInvalidArgument,
           "weightDtype 'bf16' cannot be combined with full training (trained weights are float32)");
  params_.clear();
  layers.clear();
  const int64_t d = c.hidden_size, V = c.vocab_size, I = c.intermediate_size;
  const int64_t qd = int64_t(c.num_attention_heads) * c.head_dim;
  const int64_t kvd = int64_t(c.num_key_value_heads) * c.head_dim;
  embed = add("model.embed_tokens.weight", {V, d}, true);
  const bool qkvb = has_qkv_bias(c), ob = has_o_bias(c);
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerWeights w;
    w.attn_norm = add(p + "input_layernorm.weight", {d}, false);
    w.q = add(p + "self_attn.q_proj.weight", {qd, d}, true);
    w.k = add(p + "self_attn.k_proj.weight", {kvd, d}, true);
    w.v = add(p + "self_attn.v_proj.weight", {kvd, d}, true);
    w.o = add(p + "self_attn.o_proj.weight", {d, qd}, true);
    if (qkvb) {
      w.qb = add(p + "self_attn.q_proj.bias", {qd}, false);
      w.kb = add(p + "self_attn.k_proj.bias", {kvd}, false);
      w.vb = add(p + "self_attn.v_proj.bias", {kvd}, false);
    }
    if (ob) w.ob = add(p + "self_attn.o_proj.bias", {d}, false);
    w.mlp_norm = add(p + "post_attention_layernorm.weight", {d}, false);
    w.gate = add(p + "mlp.gate_proj.weight", {I, d}, true);
    w.up = add(p + "mlp.up_proj.weight", {I, d}, true);
    w.down = add(p + "mlp.down_proj.weight", {d, I}, true);
    layers.push_back(w);
  }
  norm = add("model.norm.weight", {d}, false);
  lm_head = c.tie_word_embeddings ? embed : add("lm_head.weight", {V, d}, true);

  // Validate everything before loading anything.
  std::vector<const TensorEntry*> src;
  for (auto& p : params_) {
    const TensorEntry* e = ckpt.find(p->name);
    BL_CHECK(e, code::kBadFile, "checkpoint is missing tensor '", p->name, "' (expected shape ",
             shape_str(p->shape), ")");
    BL_CHECK(e->shape == p->shape, code::kBadFile, "tensor '", p->name, "' has shape ",
             shape_str(e->shape), ", expected ", shape_str(p->shape));
    BL_CHECK(e->dtype == DType::F32 || e->dtype == DType::F16 || e->dtype == DType::BF16,
             code::kBadFile, "tensor '", p->name, "' has dtype ", dtype_name(e->dtype),
             " (expected F32, F16 or BF16)");
    BL_CHECK(e->nbytes == size_t(p->numel()) * dtype_size(e->dtype), code::kBadFile, "tensor '",
             p->name, "' has ", e->nbytes, " bytes, expected ", size_t(p->numel()) * dtype_size(e->dtype));
    src.push_back(e);
  }

  // The frozen linear weights the bf16 store covers.
  std::vector<const Param*> lin;
  for (auto& w : layers)
    for (const Param* q : {w.q, w.k, w.v, w.o, w.gate, w.up, w.down}) lin.push_back(q);
  auto is_lin = [&](const Param* q) { return std::find(lin.begin(), lin.end(), q) != lin.end(); };
  if (wd == WeightDtype::kAuto) {
    // A device backend with a BF16 checkpoint keeps the checkpoint's bytes (half
    // the memory, tensor-core GEMMs); the CPU keeps f32, bit-identical to the
    // float32 GEMM path and with no widening per product.
    bool all_bf16 = !lin.empty();
    for (size_t i = 0; i < params_.size(); ++i)
      if (is_lin(params_[i].get()) && src[i]->dtype != DType::BF16) all_bf16 = false;
    wd = (!be.host_memory() && !trainable && all_bf16) ? WeightDtype::kBF16 : WeightDtype::kF32;
  }
  wdtype_ = wd;

  std::vector<float> host;
  std::vector<uint16_t> host16;
  for (size_t i = 0; i < params_.size(); ++i) {
    Param& p = *params_[i];
    const TensorEntry& e = *src[i];
    const size_t n = size_t(p.numel());
    if (wd == WeightDtype::kBF16 && is_lin(&p)) {
      const bool al2 = (reinterpret_cast<uintptr_t>(e.data) % alignof(uint16_t)) == 0;
      if (e.dtype == DType::BF16 && be.host_memory() && al2) {
        p.bf16 = static_cast<const uint16_t*>(e.data);  // read-only use of the mmap
        continue;
      }
      p.owned = Buffer(be, n * sizeof(uint16_t));
      host16.resize(n);
      if (e.dtype == DType::BF16) {
        std::memcpy(host16.data(), e.data, n * sizeof(uint16_t));
      } else {
        // F32/F16 -> bf16 rounds to nearest-even (via an exact f32 widening for F16).
        host.resize(n);
        convert_to_f32(host.data(), e.data, e.dtype, n);
        for (size_t j = 0; j < n; ++j) host16[j] = f32_to_bf16(host[j]);
      }
      be.to_device(p.owned.data(), host16.data(), n * sizeof(uint16_t));
      p.bf16 = static_cast<const uint16_t*>(p.owned.data());
      continue;
    }
    const bool aligned = (reinterpret_cast<uintptr_t>(e.data) % alignof(float)) == 0;
    if (e.dtype == DType::F32 && be.host_memory() && aligned && !trainable) {
      p.data = const_cast<float*>(static_cast<const float*>(e.data));  // read-only use
      continue;
    }
    p.owned = Buffer(be, n * sizeof(float));
    p.data = p.owned.f();
    if (be.host_memory()) {
      convert_to_f32(p.data, e.data, e.dtype, n);
    } else {
      host.resize(n);
      convert_to_f32(host.data(), e.data, e.dtype, n);
      be.to_device(p.data, host.data(), n * sizeof(float));
    }
  }
  if (trainable) make_trainable(be);
}

void LlamaWeights::to_host_f32(Backend& be, const Param& p, float* out) {
  const size_t n = size_t(p.numel());
  if (!p.is_bf16()) {
    be.to_host(out, p.data, n * sizeof(float));
    return;
  }
  std::vector<uint16_t> h(n);
  be.to_host(h.data(), p.bf16, n * sizeof(uint16_t));
  for (size_t j = 0; j < n; ++j) out[j] = bf16_to_f32(h[j]);
}

void LlamaWeights::make_trainable(Backend& be) {
  for (auto& pp : params_) {
    Param& p = *pp;
    const size_t bytes = size_t(p.numel()) * sizeof(float);
    if (p.is_bf16()) {  // widen exactly into an owned f32 copy
      std::vector<float> h(size_t(p.numel()));
      to_host_f32(be, p, h.data());
      Buffer b(be, bytes);
      be.to_device(b.data(), h.data(), bytes);
      p.owned = std::move(b);
      p.data = p.owned.f();
      p.bf16 = nullptr;
    } else if (p.borrowed()) {
      Buffer b(be, bytes);
      be.copy(b.data(), p.data, bytes);
      p.owned = std::move(b);
      p.data = p.owned.f();
    }
    if (!p.grad.data()) {
      p.grad = Buffer(be, bytes);
      be.zero(p.grad.data(), bytes);
    }
  }
  trainable_ = true;
  wdtype_ = WeightDtype::kF32;
}

int64_t LlamaWeights::numel() const {
  int64_t n = 0;
  for (auto& p : params_) n += p->numel();
  return n;
}

size_t LlamaWeights::weight_bytes() const {
  size_t n = 0;
  for (auto& p : params_) n += p->storage_bytes();
  return n;
}

size_t LlamaWeights::owned_bytes() const {
  size_t n = 0;
  for (auto& p : params_) n += p->owned.bytes() + p->grad.bytes();
  return n;
}

}  // namespace bl
