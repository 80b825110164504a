// The base weights of a LLaMA-family model: the expected HF tensor set for a
// config (names and exact shapes), loading from a Checkpoint with validation,
// and the switch to trainable owned f32 copies with gradient buffers.
//
// Storage: an F32 tensor on a host-memory backend is used in place (zero-copy
// from the mmap, never written) unless the weight is trainable; F16/BF16 are
// converted to f32 at load into owned backend memory.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "io/config.h"
#include "io/safetensors.h"

namespace bl {

struct Param {
  std::string name;             // HF tensor name
  std::vector<int64_t> shape;   // [out, in] for linears, [n] for norms/biases
  float* data = nullptr;        // backend memory: owned or borrowed (read-only mmap)
  Buffer owned;                 // set when data is owned
  Buffer grad;                  // set when trainable
  bool decay = true;            // AdamW weight decay applies (not to norms, biases)
  int64_t numel() const {
    int64_t n = 1;
    for (auto s : shape) n *= s;
    return n;
  }
  bool borrowed() const { return data != nullptr && owned.data() == nullptr; }
};

struct LayerWeights {
  Param *attn_norm = nullptr, *mlp_norm = nullptr;
  Param *q = nullptr, *k = nullptr, *v = nullptr, *o = nullptr;
  Param *qb = nullptr, *kb = nullptr, *vb = nullptr, *ob = nullptr;  // biases (nullable)
  Param *gate = nullptr, *up = nullptr, *down = nullptr;
};

class LlamaWeights {
 public:
  // Validates every expected tensor (presence, dtype, exact shape) before
  // loading any: throws BAD_FILE naming the tensor and both shapes.
  void load(const ModelConfig& c, const Checkpoint& ckpt, Backend& be, bool trainable);
  // Owned f32 copies of every borrowed weight plus zeroed gradient buffers.
  void make_trainable(Backend& be);
  bool trainable() const { return trainable_; }

  std::vector<std::unique_ptr<Param>>& params() { return params_; }
  const std::vector<std::unique_ptr<Param>>& params() const { return params_; }
  Param* embed = nullptr;
  Param* norm = nullptr;
  Param* lm_head = nullptr;  // == embed when tie_word_embeddings
  std::vector<LayerWeights> layers;

  int64_t numel() const;          // distinct parameters (tied counted once)
  size_t owned_bytes() const;     // weights + gradients in backend memory

 private:
  Param* add(const std::string& name, std::vector<int64_t> shape, bool decay);
  std::vector<std::unique_ptr<Param>> params_;
  bool trainable_ = false;
};

// True when q/k/v (and, for Llama/Mistral, o) carry biases.
bool has_qkv_bias(const ModelConfig& c);
bool has_o_bias(const ModelConfig& c);

}  // namespace bl
