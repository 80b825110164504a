// LlamaModel: a LLaMA-family decoder (Llama, Mistral, Qwen2: GQA, optional
// q/k/v biases, tied embeddings, RoPE with linear/llama3 scaling) with LoRA,
// its forward passes (multiple-choice class logits; full-vocabulary LM loss)
// and one backward implementation serving training, K-FAC and the predictive.
//
// Usage for curvature / Jacobians (see lora_observer.h):
//   McOutput out = model.forward_mc(batch, /*train=*/false);
//   for (int c = 0; c < C; ++c) {          // repeated backward, one forward
//     seed = ... [B*C] host floats ...;
//     model.backward_mc(seed.data(), &observer, /*accumulate_grads=*/false,
//                       /*param_grads=*/false);
//   }
// backward never writes the saved forward activations, so any number of
// backward passes may follow one forward (until the next forward, a weight
// change or a LoRA change, which invalidate it).
//
// Positions come from the mask: pos(b, t) = number of real tokens before t,
// so left- and right-padded batches give the same logits for real tokens.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "io/config.h"
#include "io/safetensors.h"
#include "model/adamw.h"
#include "model/batch.h"
#include "model/lora.h"
#include "model/lora_observer.h"
#include "model/weights.h"
#include "model/workspace.h"

namespace bl {

struct LoadOptions {
  bool full_training = false;  // all weights trainable (owned f32 copies + gradients)
  WeightDtype weight_dtype = WeightDtype::kAuto;  // frozen linear weights' storage (weights.h)
  bool mmap = true;  // map the checkpoint (zero-copy) or read it into private memory (io/safetensors.h)
};

// Result of a multiple-choice forward, copied to host.
struct McOutput {
  int B = 0, C = 0;
  std::vector<float> logits;  // [B*C] class logits
  std::vector<float> probs;   // [B*C] softmax over the C classes
  std::vector<float> dloss;   // [B*C] d(mean CE over labelled examples)/dlogits (0 rows unlabelled)
  double loss = 0;            // mean CE over labelled examples (NaN when none is labelled)
  int n_labelled = 0;
};

struct LmOutput {
  double loss = 0;        // mean next-token CE over counted targets (NaN when none)
  int64_t n_targets = 0;  // targets != -1
};

class LlamaModel {
 public:
  // Reads `dir`/config.json and the checkpoint (model.safetensors or a sharded index).
  static std::unique_ptr<LlamaModel> load(const std::string& dir, Backend& be,
                                          const LoadOptions& opt = {});
  LlamaModel(const ModelConfig& cfg, Checkpoint ckpt, Backend& be, const LoadOptions& opt);
  ~LlamaModel();
  LlamaModel(const LlamaModel&) = delete;
  LlamaModel& operator=(const LlamaModel&) = delete;

  const ModelConfig& config() const { return cfg_; }
  Backend& backend() const { return *be_; }
  const std::vector<float>& inv_freq() const { return inv_freq_host_; }

  // ---- LoRA --------------------------------------------------------------------
  // Adds LoRA to every targeted module (once per model; INVALID_ARGUMENT when
  // LoRA is already present or no module matches).
  void add_lora(const LoraConfig& c);
  // Drops every LoRA module (and their optimiser state).
  void remove_lora();
  bool has_lora() const { return !lora_.empty(); }
  const LoraConfig& lora_config() const { return lora_cfg_; }
  int num_lora_modules() const { return int(lora_.size()); }
  const LoraModule& lora_module(int m) const;
  // Matrices: id 2m is module m's A [r x d_in], id 2m+1 its B [d_out x r].
  int num_lora_matrices() const { return 2 * num_lora_modules(); }
  LoraMatrixInfo lora_matrix(int id) const;
  int64_t lora_matrix_numel(int id) const;
  float* lora_weight(int id) const;  // backend memory
  float* lora_grad(int id) const;    // backend memory (accumulated by backward)
  std::vector<float> get_lora_weight(int id) const;  // host copy
  std::vector<float> get_lora_grad(int id) const;    // host copy
  void set_lora_weight(int id, const float* host, int64_t n);
  int64_t num_lora_params() const;

  // ---- full-parameter training ------------------------------------------------
  void enable_full_training();
  bool full_training() const { return weights_.trainable(); }
  LlamaWeights& weights() { return weights_; }
  const LlamaWeights& weights() const { return weights_; }
  int64_t num_params() const { return weights_.numel(); }

  // ---- forward / backward -----------------------------------------------------------
  // Validates the batch, runs the full stack, the final norm and the LM head at
  // each example's last real position for its C rows only. train = true
  // applies LoRA dropout, its masks drawn from (LoRA seed, dropout_step);
  // dropout_step < 0 means the model's own counter of training forwards
  // (what training uses), >= 0 fixes the masks (tests, MC dropout).
  // Unless full training, LoRA dropout on the last layer's o/gate/up/down, or
  // the environment variable BAYESLORA_FULL_LAST_LAYER (non-empty, not "0")
  // rules it out, the last layer runs o_proj, its residual, norm and MLP on
  // the B last-position rows only (the other rows feed nothing); equal up to
  // GEMM rounding. A backward pass whose observer needs every row of that
  // layer's o_proj/MLP LoRA recomputes it in full first (backward_mc).
  McOutput forward_mc(const McBatchView& b, bool train, int64_t dropout_step = -1);
  // dlogits: host [B*C] seed for the last forward_mc. Computes gradients of
  // LoRA matrices (and, in full-training mode, of all weights) when
  // param_grads; zeroes them first unless accumulate_grads. The observer (may
  // be null) sees every LoRA matrix's inputs and output gradients.
  void backward_mc(const float* dlogits, LoraObserver* observer, bool accumulate_grads,
                   bool param_grads = true);
  // LM forward: full-vocabulary logits, next-token CE; the gradient seed is
  // grad_scale * d(mean loss)/dlogits, kept for backward_lm.
  LmOutput forward_lm(const LmBatchView& b, bool train, float grad_scale = 1.0f,
                      int64_t dropout_step = -1);
  void backward_lm(LoraObserver* observer, bool accumulate_grads, bool param_grads = true);
  // Host copy of the class logits of the last forward_mc ([B*C]).
  std::vector<float> last_mc_logits() const;
  bool forward_valid() const { return fwd_valid_; }
  // Shape (B, C) of the last valid forward_mc, (0, 0) when there is none.
  std::pair<int, int> mc_shape() const {
    return fwd_valid_ && a_.mode == WsMode::kMc ? std::make_pair(a_.B, a_.C) : std::make_pair(0, 0);
  }
  void invalidate_forward() { fwd_valid_ = false; }

  // ---- training ------------------------------------------------------------------
  void zero_grads();
  // LoRA A/B (when present) and, in full-training mode, every base weight.
  std::vector<TrainTensor> trainable_tensors();
  int64_t num_trainable() const;
  AdamW& optimizer() { return adamw_; }
  const AdamW& optimizer() const { return adamw_; }
  // Training forwards so far: the counter that keys LoRA dropout masks
  // (saved in training checkpoints so a resumed run draws the same masks).
  uint64_t train_forwards() const { return train_forwards_; }
  void set_train_forwards(uint64_t n) { train_forwards_ = n; }
  // Clip, AdamW-update every trainable tensor, zero gradients, invalidate the forward.
  StepReport optimizer_step(const AdamWOptions& o);

  // Native memory owned by the model (weights copies, LoRA, gradients, optimiser, workspace).
  size_t native_bytes() const;
  void release_workspace() {
    ws_.release();
    fwd_valid_ = false;
  }
  size_t workspace_bytes() const { return ws_.bytes(); }
  // Bytes the workspace needs for a multiple-choice batch of this shape.
  size_t mc_workspace_need(int B, int T, int C) const { return Workspace::need(dims(), WsMode::kMc, B, T, C); }

 private:
  struct Lin {
    const Param* w = nullptr;
    const Param* b = nullptr;
    LoraModule* lora = nullptr;
    int in = 0, out = 0;
  };
  WsDims dims() const;
  Lin layer_lin(int l, int kind) const;
  Lin head_lin() const;
  uint64_t dropout_seed(const LoraModule& m) const;
  bool dropout_on(const LoraModule& m) const;
  void begin_forward(bool train, int64_t dropout_step);
  void upload_tokens(const int32_t* ids, const uint8_t* mask, int B, int T);
  void trunk_forward();
  void lin_fwd(const Lin& L, const float* x, float* y, float* u, int N, float beta = 0.0f);
  void lin_bwd(const Lin& L, const float* x, const float* u, const float* g, float* dx, int N,
               bool pg, LoraObserver* obs, int B, int T, const uint8_t* mask);
  void attn_core_fwd(int l);
  void layer_fwd(int l);
  void layer_bwd(int l, bool need_input, bool pg, LoraObserver* obs);
  // The per-row part after attention (o_proj .. MLP), shared by layer_fwd and
  // layer_fwd_last_rows; and its MLP backward.
  void post_attn_fwd(int l, const float* att, const float* x, float* out, int rows);
  void mlp_bwd(int l, int rows, float* dX, bool mlp_in_needed, bool pg, LoraObserver* obs, int B, int T,
               const uint8_t* mask);
  // Attention backward from a_.datt = dL/d att (all rows) down to the layer input.
  void attn_core_bwd(int l, bool need_input, bool pg, LoraObserver* obs);
  // The last layer on the B last-position rows only (see forward_mc).
  bool last_rows_possible() const;
  void layer_fwd_last_rows(int l);
  // obs sees q/k/v on every row (as on the full path) and o_proj/MLP on the
  // B kept rows (T = 1): only for observers that do not need every row, or
  // when those modules carry no LoRA (see backward_mc).
  void layer_bwd_last_rows(int l, bool need_input, bool pg, LoraObserver* obs);
  // True when the last layer's o_proj or MLP carries LoRA: an observer would
  // need their every-row inputs, which the answer-rows forward did not compute.
  bool last_layer_post_attn_lora() const;
  int lowest_lora_layer() const;  // L when no layer has LoRA
  // Where a backward pass can stop: the lowest layer whose LoRA needs work
  // (parameter gradients: every LoRA layer; otherwise the layers with a
  // matrix the observer uses). L when none.
  int lowest_backward_layer(bool pg, const LoraObserver* obs) const;
  void trunk_bwd(bool pg, LoraObserver* obs);
  void begin_backward(bool accumulate, bool pg);

  ModelConfig cfg_;
  Checkpoint ckpt_;  // keeps the mmaps alive for borrowed weights
  Backend* be_;
  LlamaWeights weights_;
  std::vector<float> inv_freq_host_;
  Buffer inv_freq_;
  float attn_scale_ = 1.0f;

  LoraConfig lora_cfg_;
  std::vector<std::unique_ptr<LoraModule>> lora_;
  std::vector<std::array<LoraModule*, kLayerModules>> lora_at_;  // [layer][kind]
  LoraModule* lora_lm_ = nullptr;

  AdamW adamw_;
  Workspace ws_;
  Acts a_;
  bool fwd_valid_ = false;
  bool fwd_train_ = false;
  bool fwd_last_rows_ = false;  // the valid forward ran the last layer on B rows only
  uint64_t fwd_seed_ = 0;
  uint64_t train_forwards_ = 0;
};

}  // namespace bl
