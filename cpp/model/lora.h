// LoRA as PEFT defines it: configuration, target-module matching, the per-module
// A/B matrices (and their gradients) in backend memory, and seeded PEFT-style
// initialisation (A ~ kaiming-uniform with bound 1/sqrt(d_in), B = 0).
//
// The LoRA linear is  h = W0 a + s * B (A drop(a)),  s = alpha/r (or alpha/sqrt(r)
// for rsLoRA). BA is never formed; llama.cc runs the branch through the
// backend seam (Backend::lora_fwd / lora_bwd, fused on a GPU).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/lora_observer.h"

namespace bl {

struct LoraConfig {
  int r = 8;
  double alpha = 16.0;
  double dropout = 0.0;
  bool use_rslora = false;
  // Either module names (a path matches when it equals or ends with "." + name,
  // as in PEFT) or, when target_regex is non-empty, a regular expression that
  // must match the full module path (e.g. "model\\.layers\\.\\d+\\.self_attn\\.(q|v)_proj").
  std::vector<std::string> target_modules{"q_proj", "v_proj"};
  std::string target_regex;
  uint64_t seed = 0;

  double scale() const;
  // Throws INVALID_ARGUMENT on out-of-range fields (UNSUPPORTED for embed_tokens).
  void validate() const;
};

// The module kinds a LLaMA-family model has (names as in HF module paths).
const std::vector<std::string>& lora_module_kinds();

// PEFT's rule: target_regex full-matches the module path, or the path equals
// or ends with "." + one of target_modules.
bool lora_targets(const LoraConfig& c, const std::string& path);
bool lora_target_matches(const std::string& target, const std::string& path);

// One adapted linear module: W0 [d_out x d_in] gets A [r x d_in], B [d_out x r].
struct LoraModule {
  std::string path;  // full module path, e.g. model.layers.0.self_attn.q_proj, lm_head
  std::string kind;  // q_proj ... down_proj, lm_head
  int layer = -1;    // -1 for lm_head
  int index = 0;     // module index (dense over adapted modules)
  int d_in = 0, d_out = 0, r = 0;
  float scale = 1.0f;
  float dropout = 0.0f;
  Buffer A, B;    // weights
  Buffer dA, dB;  // gradients (accumulated by backward)

  int64_t numel_a() const { return int64_t(r) * d_in; }
  int64_t numel_b() const { return int64_t(d_out) * r; }
  LoraMatrixInfo info_a() const { return {2 * index, index, false, d_in, r}; }
  LoraMatrixInfo info_b() const { return {2 * index + 1, index, true, r, d_out}; }
};

// PEFT initialisation of one module (A uniform in [-1/sqrt(d_in), 1/sqrt(d_in)]
// from a counter-based generator keyed by (seed, module path), B = 0), written
// to backend memory. Reproducible across runs and backends.
void lora_init(Backend& be, LoraModule& m, uint64_t seed);

}  // namespace bl
