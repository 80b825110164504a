// PEFT LoRA adapter configuration (`adapter_config.json`) and tensor naming,
// so adapters trained here load in Hugging Face PEFT and vice versa.
// Reading validates the file and rejects PEFT features that would change the
// adapter's meaning if ignored (DoRA, biases, per-module rank patterns,
// modules_to_save, fan_in_fan_out, layer subsets) as UNSUPPORTED.
#pragma once
#include <string>
#include <vector>

namespace bl {

struct AdapterConfig {
  int r = 8;
  double lora_alpha = 8;
  double lora_dropout = 0;
  bool use_rslora = false;                  // scale alpha/sqrt(r) instead of alpha/r
  std::vector<std::string> target_modules;  // e.g. {"q_proj", "v_proj"}; matched as in PEFT
  std::string target_regex;  // when PEFT's target_modules is a string it is a regex (full match); else empty
  std::string base_model_name_or_path;
  std::string bias = "none";
};

// Read and validate `path` (BAD_FILE / UNSUPPORTED / IO_ERROR naming the path).
AdapterConfig read_adapter_config(const std::string& path);
AdapterConfig parse_adapter_config_text(const std::string& text, const std::string& origin);
// Write what PEFT itself writes for a plain LoRA adapter (atomic).
void write_adapter_config(const std::string& path, const AdapterConfig& cfg);
std::string adapter_config_to_json(const AdapterConfig& cfg);  // throws INVALID_ARGUMENT on invalid cfg

// PEFT's rule for whether `module_path` (e.g. "model.layers.0.self_attn.q_proj")
// is adapted: target_regex full-matches it, or it equals / ends with
// "." + one of target_modules.
bool adapter_targets_module(const AdapterConfig& cfg, const std::string& module_path);

// "base_model.model.<module_path>.lora_A.weight" ([r, in]) or ".lora_B.weight" ([out, r]).
std::string peft_tensor_name(const std::string& module_path, bool is_b);

}  // namespace bl
