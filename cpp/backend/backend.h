// The backend seam. Model, training and Laplace code call only this interface;
// the CPU backend (cpp/backend/cpu) is the reference implementation, the CUDA
// backend (cuda/) implements the same ops on device memory.
//
// Conventions (every backend, every op):
// - float32 compute, row-major, contiguous unless a leading dimension is given.
// - Pointers are backend memory (host memory for the CPU backend).
// - Every *_bwd op ACCUMULATES (+=) into its gradient outputs; callers zero
//   gradient buffers first. Exceptions are marked "in place".
// - A nullable gradient output may be nullptr: that gradient is not computed.
// - Token layout: row index = b * T + t for batch b and position t.
// - mask: uint8 per token, 1 = real token, 0 = padding.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/dtype.h"

namespace bl {

struct AttnShape {
  int B = 0, T = 0;   // batch, sequence length
  int H = 0;          // query heads
  int Hkv = 0;        // key/value heads (H % Hkv == 0, grouped-query attention)
  int hd = 0;         // head dim
};

// A device backend's memory (CUDA: cudaMemory() in the bindings).
struct DeviceMemory {
  size_t live = 0, peak = 0;  // bytes in alloc()'d buffers now / at most since start or the last reset
  size_t internal = 0;        // the backend's own workspace and scratch
  size_t device_free = 0, device_total = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;

  // ---- identity ----------------------------------------------------------
  virtual std::string name() const = 0;  // "cpu", "cuda"
  virtual bool host_memory() const = 0;  // true when pointers are host pointers

  // ---- memory --------------------------------------------------------------
  // alloc throws bl::Error(OUT_OF_MEMORY / CUDA_OOM); memory is 64-byte aligned.
  virtual void* alloc(size_t bytes) = 0;
  virtual void dealloc(void* p) = 0;
  virtual void to_device(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void to_host(void* host_dst, const void* src, size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;  // device to device
  virtual void zero(void* p, size_t bytes) = 0;
  virtual void synchronize() = 0;

  // ---- dense linear algebra ------------------------------------------------
  // C[M x N] = alpha * op(A) * op(B) + beta * C, row-major.
  // op(A) is M x K (A is K x M when ta), op(B) is K x N (B is N x K when tb).
  virtual void gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
                    const float* B, int ldb, float beta, float* C, int ldc) = 0;
  // `batch` independent gemms; matrix i starts at A + i*sa, B + i*sb, C + i*sc.
  virtual void gemm_strided_batched(bool ta, bool tb, int M, int N, int K, float alpha,
                                    const float* A, int lda, int64_t sa, const float* B, int ldb,
                                    int64_t sb, float beta, float* C, int ldc, int64_t sc,
                                    int batch) = 0;

  // Frozen-weight GEMM: C = alpha * op(A) * op(W) + beta * C, same conventions
  // as gemm(), with W stored as bfloat16 bit patterns (base weights kept in
  // their checkpoint dtype, half the bytes of float32) and A float32.
  // CPU: W is widened to float32 exactly and the product is a float32 GEMM.
  // CUDA: A is rounded to bfloat16 and the product runs on tensor cores with
  // float32 accumulation, so the two differ by A's bf16 rounding (relative
  // 2^-9 per product): compare with bf16-aware tolerances.
  virtual void gemm_bf16w(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
                          const uint16_t* W, int ldw, float beta, float* C, int ldc) = 0;

  // ---- elementwise / reductions -----------------------------------------------
  virtual void fill(float* x, float v, int64_t n) = 0;
  virtual void axpy(int64_t n, float a, const float* x, float* y) = 0;      // y += a x
  virtual void scale(int64_t n, float a, float* x) = 0;                     // x *= a
  virtual void add(int64_t n, const float* a, const float* b, float* out) = 0;  // out = a + b (may alias)
  virtual double sum_squares(int64_t n, const float* x) = 0;                // sum x^2 (float64 accumulate)
  virtual bool all_finite(int64_t n, const float* x) = 0;

  // ---- embedding -------------------------------------------------------------
  // out[i, :] = table[ids[i], :]; ids validated by the caller (0 <= id < V).
  virtual void embedding_fwd(float* out, const int32_t* ids, const float* table, int N, int d) = 0;
  // dtable[ids[i], :] += dout[i, :]
  virtual void embedding_bwd(float* dtable, const int32_t* ids, const float* dout, int N, int d) = 0;

  // ---- rows ------------------------------------------------------------------
  // out[i, :] = x[idx[i], :]   (n rows of width d)
  virtual void gather_rows(float* out, const float* x, const int32_t* idx, int n, int d) = 0;
  // dx[idx[i], :] += dout[i, :]
  virtual void scatter_add_rows(float* dx, const float* dout, const int32_t* idx, int n, int d) = 0;

  // ---- RMSNorm ---------------------------------------------------------------
  // rstd[i] = 1/sqrt(mean(x[i]^2) + eps); out[i] = x[i] * rstd[i] * w
  virtual void rmsnorm_fwd(float* out, float* rstd, const float* x, const float* w, int N, int d,
                           float eps) = 0;
  // dx (+=), dw (+=, nullable)
  virtual void rmsnorm_bwd(float* dx, float* dw, const float* dout, const float* x, const float* w,
                           const float* rstd, int N, int d) = 0;

  // ---- bias (Qwen2 q/k/v) ----------------------------------------------------------
  virtual void add_bias(float* x, const float* bias, int N, int d) = 0;          // x[i] += bias
  virtual void bias_bwd(float* dbias, const float* dout, int N, int d) = 0;       // dbias += sum_i dout[i]

  // ---- RoPE (rotate-half convention of HF LLaMA) ---------------------------------
  // x: [N x H x hd], in place. Row i has position pos[i]; angle_j = pos * inv_freq[j],
  // j < hd/2; pairs (x[j], x[j + hd/2]) are rotated by angle_j.
  virtual void rope_fwd(float* x, const int32_t* pos, const float* inv_freq, int N, int H,
                        int hd) = 0;
  // In place: dx = R^T dy (the inverse rotation), same layout.
  virtual void rope_bwd(float* dx, const int32_t* pos, const float* inv_freq, int N, int H,
                        int hd) = 0;

  // ---- attention -------------------------------------------------------------
  // q: [B,T,H,hd], k,v: [B,T,Hkv,hd], out: [B,T,H,hd]. Query t of example b
  // attends keys s <= t with mask[b*T+s] == 1, scores scaled by `scale`.
  // A query with no visible key (or a padded query) outputs zeros.
  // `saved` holds attention_saved_floats(shape) floats for the backward pass.
  virtual size_t attention_saved_floats(const AttnShape& s) = 0;
  virtual void attention_fwd(float* out, float* saved, const float* q, const float* k,
                             const float* v, const uint8_t* mask, const AttnShape& s,
                             float scale) = 0;
  // dq, dk, dv (+=)
  virtual void attention_bwd(float* dq, float* dk, float* dv, const float* dout, const float* saved,
                             const float* q, const float* k, const float* v, const uint8_t* mask,
                             const AttnShape& s, float scale) = 0;

  // ---- SwiGLU MLP activation ---------------------------------------------------------
  // out = silu(gate) * up, n elements
  virtual void swiglu_fwd(float* out, const float* gate, const float* up, int64_t n) = 0;
  // dgate, dup (+=)
  virtual void swiglu_bwd(float* dgate, float* dup, const float* dout, const float* gate,
                          const float* up, int64_t n) = 0;

  // ---- dropout (LoRA dropout) ---------------------------------------------------------
  // out = x * keep / (1-p) with keep = hash(seed, i) >= p; deterministic in (seed, i)
  // so every backend draws the same mask. out may alias x.
  virtual void dropout_fwd(float* out, const float* x, int64_t n, float p, uint64_t seed) = 0;
  // dx += dout * keep / (1-p)  (same mask as dropout_fwd with the same seed)
  virtual void dropout_bwd(float* dx, const float* dout, int64_t n, float p, uint64_t seed) = 0;

  // ---- LM head restricted to given rows ---------------------------------------------
  // logits[b, c] = dot(h[b, :], W[rows[b*C + c], :]) for b < Bn, c < C. W: [V x d].
  virtual void rows_dot_fwd(float* logits, const float* h, const float* W, const int32_t* rows,
                            int Bn, int C, int d) = 0;
  // dh[b] += sum_c dlogits[b,c] W[rows[b,c]];  dW[rows[b,c]] += dlogits[b,c] h[b] (dW nullable)
  virtual void rows_dot_bwd(float* dh, float* dW, const float* dlogits, const float* h,
                            const float* W, const int32_t* rows, int Bn, int C, int d) = 0;

  // ---- softmax cross-entropy --------------------------------------------------------------
  // For each row i < N of logits [N x C]: probs = softmax(row), loss[i] = -log probs[label[i]],
  // dlogits[i] = (probs - onehot(label)) * dscale. label < 0 means ignore: loss 0, dlogits 0.
  // probs and dlogits nullable.
  virtual void softmax_xent(float* loss, float* probs, float* dlogits, const float* logits,
                            const int32_t* labels, int N, int C, float dscale) = 0;

  // ---- LoRA linear (fused branch) ----------------------------------------------------
  // The LoRA branch of h = W0 x + s * B (A x), added to the frozen output y
  // [N x d_out] that the caller already holds (no separate pass over y):
  //   u = x A^T   [N x r], written (saved for the backward pass),
  //   y += s * u B^T.
  // x [N x d_in] is the LoRA input after dropout; A [r x d_in]; B [d_out x r].
  virtual void lora_fwd(float* y, float* u, const float* x, const float* A, const float* B, int N, int d_in,
                        int d_out, int r, float s) = 0;
  // Backward of the branch, one pass per output over g = dL/dy [N x d_out]:
  //   gu = s * g B   [N x r], written (the LoRA-A layer's output gradient),
  //   dB += s * g^T u,   dA += gu^T x     (both nullable),
  //   dx += dropout_bwd(gu A)             (nullable; with p > 0 the mask of
  //        dropout_fwd(p, seed) is applied and `work` [N x d_in] is scratch,
  //        p == 0 adds gu A directly and `work` may be nullptr).
  // x and u are the forward's (dropped) input and saved u.
  virtual void lora_bwd(float* gu, float* dA, float* dB, float* dx, float* work, const float* g, const float* x,
                        const float* u, const float* A, const float* B, int N, int d_in, int d_out, int r,
                        float s, float p, uint64_t seed) = 0;

  // ---- K-FAC factor building blocks (cpp/laplace) ---------------------------------------------
  // Token reduction of selected examples: for i < n, example e = ex[i],
  //   out[i, :] = sum over t < T with mask[e*T + t] != 0 of X[e*T + t, :]
  // divided by that count when `mean`; float64 accumulation, rounded once.
  // mask nullable (all tokens real). An example without real tokens gives 0.
  virtual void token_reduce(float* out, const float* X, const uint8_t* mask, const int32_t* ex, int n, int T,
                            int d, bool mean) = 0;
  // Dense factor sum: S [d x d] (float64) += scale * X^T X, the Gram of the n
  // rows of X (row stride ldx >= d) formed in float32 (a SYRK-shaped product,
  // both triangles written); `work` holds d*d floats of scratch.
  virtual void kfac_accumulate(double* S, const float* X, int n, int d, int ldx, double scale,
                               float* work) = 0;
  // float64 Gram of columns: G [n x n] = M^T M, M [d x n] with row stride ldm
  // (the low-rank factor update's (k+m)-sized Gram). G is exactly symmetric.
  virtual void gram64(double* G, const double* M, int d, int n, int ldm) = 0;

  // ---- optimiser ----------------------------------------------------------------------
  // Decoupled-weight-decay Adam (AdamW): p -= lr * (mhat / (sqrt(vhat) + eps) + wd * p),
  // with g scaled by grad_scale first; step is 1-based (bias correction).
  virtual void adamw(float* p, const float* g, float* m, float* v, int64_t n, float lr, float b1,
                     float b2, float eps, float wd, int step, float grad_scale) = 0;
};

// The process-wide CPU backend (reference implementation).
Backend& cpu_backend();

// Backend by name: "cpu" always; "cuda" when compiled in and a device is usable
// (throws bl::Error UNSUPPORTED with the reason otherwise).
Backend& get_backend(const std::string& name);

// RAII buffer in backend memory.
class Buffer {
 public:
  Buffer() = default;
  Buffer(Backend& be, size_t bytes) : be_(&be), bytes_(bytes) { p_ = bytes ? be.alloc(bytes) : nullptr; }
  ~Buffer() { reset(); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept : be_(o.be_), p_(o.p_), bytes_(o.bytes_) { o.p_ = nullptr; o.bytes_ = 0; }
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) { reset(); be_ = o.be_; p_ = o.p_; bytes_ = o.bytes_; o.p_ = nullptr; o.bytes_ = 0; }
    return *this;
  }
  void reset() {
    if (p_ && be_) be_->dealloc(p_);
    p_ = nullptr;
    bytes_ = 0;
  }
  template <class T = float> T* as() const { return static_cast<T*>(p_); }
  float* f() const { return static_cast<float*>(p_); }
  void* data() const { return p_; }
  size_t bytes() const { return bytes_; }
  Backend* backend() const { return be_; }

 private:
  Backend* be_ = nullptr;
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

// Deterministic counter-based uniform in [0,1) shared by all backends (dropout, init).
inline uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
inline float uniform01(uint64_t seed, uint64_t i) {
  return float(mix64(seed * 0x632be59bd9b4e019ull + i) >> 40) * (1.0f / 16777216.0f);
}

}  // namespace bl
