// A tiny LLaMA checkpoint on disk (config.json + model.safetensors) for the
// targets that need a model (adapters, posteriors) and for the seed corpus.
#pragma once
#include <sys/stat.h>

#include <random>
#include <string>
#include <vector>

#include "harness.h"
#include "io/safetensors.h"

namespace fuzz {

constexpr int kV = 16, kD = 8, kI = 12, kL = 1, kH = 2;

inline void write_text(const std::string& path, const std::string& s) {
  write_bytes(path, reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

inline void write_tiny_checkpoint(const std::string& dir) {
  mkdir(dir.c_str(), 0755);
  write_text(dir + "/config.json",
             "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"vocab_size\":" + std::to_string(kV) +
                 ",\"hidden_size\":" + std::to_string(kD) + ",\"intermediate_size\":" + std::to_string(kI) +
                 ",\"num_hidden_layers\":" + std::to_string(kL) + ",\"num_attention_heads\":" + std::to_string(kH) +
                 ",\"num_key_value_heads\":" + std::to_string(kH) +
                 ",\"hidden_act\":\"silu\",\"max_position_embeddings\":32,\"rms_norm_eps\":1e-5,"
                 "\"rope_theta\":10000,\"tie_word_embeddings\":false,\"torch_dtype\":\"float32\"}");
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 0.1f);
  std::vector<std::vector<float>> store;
  std::vector<bl::TensorToWrite> ts;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, bool norm) {
    int64_t n = 1;
    for (auto s : shape) n *= s;
    store.emplace_back(size_t(n));
    for (auto& v : store.back()) v = norm ? 1.0f : nd(rng);
    ts.push_back({name, bl::DType::F32, shape, nullptr});
  };
  add("model.embed_tokens.weight", {kV, kD}, false);
  for (int l = 0; l < kL; ++l) {
    const std::string p = "model.layers." + std::to_string(l);
    for (const char* m : {"q_proj", "k_proj", "v_proj", "o_proj"}) add(p + ".self_attn." + m + ".weight", {kD, kD}, false);
    add(p + ".mlp.gate_proj.weight", {kI, kD}, false);
    add(p + ".mlp.up_proj.weight", {kI, kD}, false);
    add(p + ".mlp.down_proj.weight", {kD, kI}, false);
    add(p + ".input_layernorm.weight", {kD}, true);
    add(p + ".post_attention_layernorm.weight", {kD}, true);
  }
  add("model.norm.weight", {kD}, true);
  add("lm_head.weight", {kV, kD}, false);
  for (size_t i = 0; i < ts.size(); ++i) ts[i].data = store[i].data();
  bl::write_safetensors(dir + "/model.safetensors", ts, {{"format", "pt"}});
}

}  // namespace fuzz
