// ModelConfig: the subset of a Hugging Face `config.json` that LLaMA-family
// models (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM) need.
// parse_model_config validates every field (types, ranges, consistency) and
// throws bl::Error(BAD_FILE) naming the file and the problem.
#pragma once
#include <string>

namespace bl {

struct RopeScaling {
  std::string type = "none";  // "none", "llama3", "linear"
  double factor = 1.0;
  double low_freq_factor = 1.0;   // llama3
  double high_freq_factor = 4.0;  // llama3
  double original_max_position_embeddings = 8192;  // llama3
};

struct ModelConfig {
  std::string architecture;      // "LlamaForCausalLM" | "MistralForCausalLM" | "Qwen2ForCausalLM"
  int vocab_size = 0;
  int hidden_size = 0;           // d
  int intermediate_size = 0;     // MLP width
  int num_hidden_layers = 0;
  int num_attention_heads = 0;   // H
  int num_key_value_heads = 0;   // Hkv (defaults to H)
  int head_dim = 0;              // defaults to hidden_size / H
  int max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;   // q/k/v biases (Qwen2: true)
  int sliding_window = 0;        // Mistral; 0 = none (not applied when >= sequence length)
  std::string torch_dtype = "float32";
  int bos_token_id = -1, eos_token_id = -1, pad_token_id = -1;
};

// Parse and validate `path` (a config.json).
ModelConfig parse_model_config(const std::string& path);
// Same from JSON text (`origin` names the source in error messages).
ModelConfig parse_model_config_text(const std::string& text, const std::string& origin);
// Serialise back to HF config.json JSON text.
std::string model_config_to_json(const ModelConfig& c);

}  // namespace bl
