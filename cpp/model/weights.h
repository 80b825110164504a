// The base weights of a LLaMA-family model: the expected HF tensor set for a
// config (names and exact shapes), loading from a Checkpoint with validation,
// and the switch to trainable owned f32 copies with gradient buffers.
//
// Storage: an F32 tensor on a host-memory backend is used in place (zero-copy
// from the mmap, never written) unless the weight is trainable; F16/BF16 are
// converted to f32 at load into owned backend memory.
//
// bf16 frozen-weight store (WeightDtype::kBF16): the seven per-layer linear
// weights (q/k/v/o/gate/up/down) are kept as bfloat16 bit patterns, half the
// bytes, and multiplied by Backend::gemm_bf16w with float32 accumulation. A
// BF16 tensor on a host-memory backend is borrowed from the mmap; an F32/F16
// one is rounded to nearest-even into owned memory. Embeddings, norms, biases
// and lm_head stay float32: the embedding gather, the norms and the
// multiple-choice head's row gather (rows_dot over lm_head, which may also be
// the tied embedding) have no bf16 seam op, and norms/biases are tiny.
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
  float* data = nullptr;        // backend memory: owned or borrowed (read-only mmap); null when bf16
  const uint16_t* bf16 = nullptr;  // bf16 store: backend memory, owned or borrowed; data is null
  Buffer owned;                 // set when data is owned
  Buffer grad;                  // set when trainable
  bool decay = true;            // AdamW weight decay applies (not to norms, biases)
  int64_t numel() const {
    int64_t n = 1;
    for (auto s : shape) n *= s;
    return n;
  }
  bool borrowed() const { return (data != nullptr || bf16 != nullptr) && owned.data() == nullptr; }
  bool is_bf16() const { return bf16 != nullptr; }
  // Bytes of the weight's storage (owned or borrowed), gradients excluded.
  size_t storage_bytes() const { return size_t(numel()) * (is_bf16() ? 2 : 4); }
};

// Storage of the frozen linear weights. kAuto: bf16 on a device backend when
// every linear weight in the checkpoint is BF16 (and the weights are frozen),
// else f32.
enum class WeightDtype { kAuto, kF32, kBF16 };
WeightDtype parse_weight_dtype(const std::string& s);  // "f32" | "bf16"; INVALID_ARGUMENT otherwise
const char* weight_dtype_name(WeightDtype t);

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
  // wd: storage of the frozen linear weights (kAuto resolved here); kBF16
  // with trainable is INVALID_ARGUMENT (trained weights are float32).
  void load(const ModelConfig& c, const Checkpoint& ckpt, Backend& be, bool trainable,
            WeightDtype wd = WeightDtype::kF32);
  // Owned f32 copies of every borrowed or bf16 weight (bf16 widens exactly:
  // the store becomes f32) plus zeroed gradient buffers.
  void make_trainable(Backend& be);
  bool trainable() const { return trainable_; }
  WeightDtype weight_dtype() const { return wdtype_; }  // kF32 or kBF16 (resolved)
  // Host float32 copy of a weight (bf16 widened exactly); out has numel() floats.
  static void to_host_f32(Backend& be, const Param& p, float* out);

  std::vector<std::unique_ptr<Param>>& params() { return params_; }
  const std::vector<std::unique_ptr<Param>>& params() const { return params_; }
  Param* embed = nullptr;
  Param* norm = nullptr;
  Param* lm_head = nullptr;  // == embed when tie_word_embeddings
  std::vector<LayerWeights> layers;

  int64_t numel() const;          // distinct parameters (tied counted once)
  size_t owned_bytes() const;     // weights + gradients in backend memory
  size_t weight_bytes() const;    // storage of all weights, owned or borrowed (tied once)

 private:
  Param* add(const std::string& name, std::vector<int64_t> shape, bool decay);
  std::vector<std::unique_ptr<Param>> params_;
  bool trainable_ = false;
  WeightDtype wdtype_ = WeightDtype::kF32;
};

// True when q/k/v (and, for Llama/Mistral, o) carry biases.
bool has_qkv_bias(const ModelConfig& c);
bool has_o_bias(const ModelConfig& c);

}  // namespace bl
