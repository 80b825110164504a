// The per-model activation workspace: one backend allocation carved into the
// saved forward activations (kept intact by backward, so several backward
// passes can share one forward) and the backward scratch. It is re-carved for
// each batch shape and grows only when a shape needs more bytes than held, so
// no step allocates inside its inner loops.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "backend/backend.h"

namespace bl {

inline constexpr int kLayerModules = 7;  // q k v o gate up down

struct WsDims {
  int L = 0, d = 0, qd = 0, kvd = 0, I = 0, V = 0;
  int r = 0;                                        // LoRA rank (0: no LoRA)
  std::vector<std::array<bool, kLayerModules>> lora;  // per layer: module adapted
  bool lora_lm = false;
  size_t attn_saved = 0;                            // floats per layer for attention backward
};

enum class WsMode { kNone, kMc, kLm };

struct LayerActs {
  // n1/n2 (the normed inputs) share one scratch buffer across layers: backward
  // recomputes them from the saved residual states (cheap, saves 2 N d per layer).
  float *n1 = nullptr, *rstd1 = nullptr;
  float *q = nullptr, *k = nullptr, *v = nullptr;  // q, k after RoPE
  float *att_saved = nullptr, *att = nullptr;
  float *x_mid = nullptr, *n2 = nullptr, *rstd2 = nullptr;
  float *gate = nullptr, *up = nullptr;
  std::array<float*, kLayerModules> u{};  // LoRA u = drop(x) A^T per module [N x r]
};

struct Acts {
  WsMode mode = WsMode::kNone;
  int B = 0, T = 0, C = 0, N = 0;
  // inputs (backend memory)
  int32_t *ids = nullptr, *pos = nullptr, *last_idx = nullptr, *rows = nullptr;
  int32_t *labels = nullptr, *gidx = nullptr, *targets = nullptr;
  uint8_t* mask = nullptr;
  // forward (saved)
  std::vector<float*> resid;  // L+1 residual-stream states [N x d]
  std::vector<LayerActs> layers;
  float *hl = nullptr, *nf = nullptr, *rstd_f = nullptr, *u_lm = nullptr;
  // Multiple-choice only: the last layer's attention output at each example's
  // last real position [B x qd] and its gradient (see llama.cc, last-rows path).
  float *att_last = nullptr, *datt_last = nullptr;
  float *logits = nullptr, *probs = nullptr, *loss = nullptr, *dlogits = nullptr;
  // backward scratch
  float *seed = nullptr, *tmp_c = nullptr;
  float *dX = nullptr, *dn = nullptr, *dq = nullptr, *dk = nullptr, *dv = nullptr, *datt = nullptr;
  float *act = nullptr, *dact = nullptr, *dgate = nullptr, *dup = nullptr;
  float *gu = nullptr, *vbuf = nullptr, *drop = nullptr, *drop2 = nullptr;
  float *gdense = nullptr, *dnf = nullptr, *dhl = nullptr;
  float *nrm = nullptr, *rstd_tmp = nullptr;  // normed-input scratch (see LayerActs)
};

class Workspace {
 public:
  // Lays out `acts` for the shape; (re)allocates only when more bytes are needed.
  void prepare(Backend& be, const WsDims& dims, WsMode mode, int B, int T, int C, Acts& acts);
  void release() { buf_.reset(); }
  size_t bytes() const { return buf_.bytes(); }
  // Bytes prepare() needs for this shape (what a smaller batch would hold).
  static size_t need(const WsDims& dims, WsMode mode, int B, int T, int C);

 private:
  Buffer buf_;
};

}  // namespace bl
