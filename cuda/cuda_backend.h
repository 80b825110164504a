// The CUDA backend: every bl::Backend op on device memory of one GPU, enqueued
// on one explicit stream owned by the backend's device context, with cuBLAS
// (dlopen'd, see cublas_loader.h) for the GEMMs.
//
// Plain C++ header (no CUDA or Node headers) so that bindings and model code
// compiled by the host compiler can use the CUDA-only extras below through
// `as_cuda(backend)`.
//
// Semantics are those documented in backend/backend.h. CUDA specifics:
// - Every op only enqueues work; synchronize(), to_host(), sum_squares() and
//   all_finite() wait for the stream.
// - Errors become bl::Error: CUDA_OOM for allocation failures, CUDA_ERROR for
//   everything else. A sticky error (illegal address, device assert, ...)
//   marks the context unusable; every later call then throws CUDA_ERROR naming
//   the original failure.
// - Ops are serialised by a (recursive) mutex, so the backend may be used from
//   several threads (libuv workers); each op's kernels are enqueued as a unit,
//   which also makes the shared scratch buffer safe.
// - Deterministic except where atomics are documented (embedding_bwd,
//   scatter_add_rows, rows_dot_bwd dW).
#pragma once
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

#include "backend/backend.h"

struct CUstream_st;  // cudaStream_t without the CUDA headers

namespace bl {

namespace cuda::blas { struct Api; struct Context; }

class CudaBackend final : public Backend {
 public:
  // Opens device `device`: stream, cuBLAS handle and workspace. Throws
  // UNSUPPORTED (no device / no cuBLAS) or CUDA_ERROR.
  explicit CudaBackend(int device);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  std::string name() const override { return "cuda"; }
  bool host_memory() const override { return false; }

  void* alloc(size_t bytes) override;
  void dealloc(void* p) override;
  void to_device(void* dst, const void* host_src, size_t bytes) override;
  void to_host(void* host_dst, const void* src, size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  void zero(void* p, size_t bytes) override;
  void synchronize() override;

  void gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
            float beta, float* C, int ldc) override;
  void gemm_strided_batched(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda, int64_t sa,
                            const float* B, int ldb, int64_t sb, float beta, float* C, int ldc, int64_t sc,
                            int batch) override;

  void fill(float* x, float v, int64_t n) override;
  void axpy(int64_t n, float a, const float* x, float* y) override;
  void scale(int64_t n, float a, float* x) override;
  void add(int64_t n, const float* a, const float* b, float* out) override;
  double sum_squares(int64_t n, const float* x) override;
  bool all_finite(int64_t n, const float* x) override;

  void embedding_fwd(float* out, const int32_t* ids, const float* table, int N, int d) override;
  void embedding_bwd(float* dtable, const int32_t* ids, const float* dout, int N, int d) override;
  void gather_rows(float* out, const float* x, const int32_t* idx, int n, int d) override;
  void scatter_add_rows(float* dx, const float* dout, const int32_t* idx, int n, int d) override;
  void rmsnorm_fwd(float* out, float* rstd, const float* x, const float* w, int N, int d, float eps) override;
  void rmsnorm_bwd(float* dx, float* dw, const float* dout, const float* x, const float* w, const float* rstd, int N,
                   int d) override;
  void add_bias(float* x, const float* bias, int N, int d) override;
  void bias_bwd(float* dbias, const float* dout, int N, int d) override;
  void rope_fwd(float* x, const int32_t* pos, const float* inv_freq, int N, int H, int hd) override;
  void rope_bwd(float* dx, const int32_t* pos, const float* inv_freq, int N, int H, int hd) override;
  size_t attention_saved_floats(const AttnShape& s) override;
  void attention_fwd(float* out, float* saved, const float* q, const float* k, const float* v, const uint8_t* mask,
                     const AttnShape& s, float scale) override;
  void attention_bwd(float* dq, float* dk, float* dv, const float* dout, const float* saved, const float* q,
                     const float* k, const float* v, const uint8_t* mask, const AttnShape& s,
                     float scale) override;
  void swiglu_fwd(float* out, const float* gate, const float* up, int64_t n) override;
  void swiglu_bwd(float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                  int64_t n) override;
  void dropout_fwd(float* out, const float* x, int64_t n, float p, uint64_t seed) override;
  void dropout_bwd(float* dx, const float* dout, int64_t n, float p, uint64_t seed) override;
  void rows_dot_fwd(float* logits, const float* h, const float* W, const int32_t* rows, int Bn, int C,
                    int d) override;
  void rows_dot_bwd(float* dh, float* dW, const float* dlogits, const float* h, const float* W, const int32_t* rows,
                    int Bn, int C, int d) override;
  void softmax_xent(float* loss, float* probs, float* dlogits, const float* logits, const int32_t* labels, int N,
                    int C, float dscale) override;
  void adamw(float* p, const float* g, float* m, float* v, int64_t n, float lr, float b1, float b2, float eps,
             float wd, int step, float grad_scale) override;

  void lora_fwd(float* y, float* u, const float* x, const float* A, const float* B, int N, int d_in, int d_out, int r,
                float s) override;
  void lora_bwd(float* gu, float* dA, float* dB, float* dx, float* work, const float* g, const float* x, const float* u,
                const float* A, const float* B, int N, int d_in, int d_out, int r, float s, float p,
                uint64_t seed) override;
  void token_reduce(float* out, const float* X, const uint8_t* mask, const int32_t* ex, int n, int T, int d,
                    bool mean) override;
  void kfac_accumulate(double* S, const float* X, int n, int d, int ldx, double scale, float* work) override;
  void gram64(double* G, const double* M, int d, int n, int ldm) override;

  // ---- CUDA-only extras (not in the shared Backend interface) -----------------------
  // gemm_bf16w (in the interface): C = alpha * op(A) * op(W) + beta * C with W stored as bf16 (raw uint16 bit
  // patterns, e.g. frozen base weights kept in their checkpoint dtype). A is
  // float32 and is rounded to bf16 on the fly; the product runs on tensor
  // cores with float32 accumulation. Same row-major conventions as gemm().
  void gemm_bf16w(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
                  const uint16_t* W, int ldw, float beta, float* C, int ldc) override;
  // Row-major float64 GEMM (K-FAC Gram products), same conventions as gemm().
  void dgemm(bool ta, bool tb, int M, int N, int K, double alpha, const double* A, int lda, const double* B, int ldb,
             double beta, double* C, int ldc);
  // dst (bf16 bits) = round(src), n elements; both device pointers.
  void f32_to_bf16(uint16_t* dst, const float* src, int64_t n);
  void bf16_to_f32(float* dst, const uint16_t* src, int64_t n);
  // Allow TF32 tensor cores in float32 gemm()s (off by default: TF32 keeps only
  // 10 mantissa bits, too coarse for parity with the CPU reference). Also set
  // by the environment variable BAYESLORA_TF32=1 at construction.
  void set_tf32(bool on);
  bool tf32() const { return tf32_; }

  // Device scratch of at least `bytes`, valid until the next scratch() call.
  // Grow-only. Callers composing several ops hold lock() across them.
  void* scratch(size_t bytes);
  std::unique_lock<std::recursive_mutex> lock();
  // Per-op prologue for code that enqueues its own kernels on stream() (hold
  // lock() first): throws when the context is broken, binds the device to the
  // calling thread.
  void enter();
  CUstream_st* stream() const { return stream_; }
  int device() const { return device_; }
  // "NVIDIA H200 (sm_90, 139.8 GiB), cuBLAS 13.0.0 from /path"
  std::string describe() const;

 private:
  void init();              // the constructor's work (device, cuBLAS, stream, workspace)
  void release() noexcept;  // frees what init created; the destructor and a failed init
  void blas_gemm_ex(bool ta, bool tb, int M, int N, int K, float alpha, const void* A, int atype, int lda,
                    const void* B, int btype, int ldb, float beta, float* C, int ldc, int compute);

  int device_ = 0;
  CUstream_st* stream_ = nullptr;
  cuda::blas::Context* blas_ = nullptr;
  const cuda::blas::Api* api_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  void* scratch_ = nullptr;
  size_t scratch_bytes_ = 0;
  void* host_result_ = nullptr;  // pinned 16 bytes for reduction results
  bool tf32_ = false;
  std::string describe_;
  std::recursive_mutex mu_;
  // Buffers from alloc() (Buffer / Tensor memory; not the cuBLAS workspace,
  // the scratch buffer or the pinned bytes): sizes to account frees.
  std::unordered_map<void*, size_t> sizes_;
  size_t live_bytes_ = 0, peak_bytes_ = 0;

 public:
  // internal = cuBLAS workspace + scratch; device free / total from
  // cudaMemGetInfo. reset_peak: peak restarts from live after this reading.
  DeviceMemory memory_stats(bool reset_peak);
};

// The process-wide CUDA backend (device $BAYESLORA_CUDA_DEVICE, default 0),
// created on first use. Throws UNSUPPORTED / CUDA_ERROR with the reason when no
// device is usable; the reason is remembered, later calls throw it again.
Backend& cuda_backend();

// The CUDA backend behind `be`, or nullptr when `be` is another backend.
CudaBackend* as_cuda(Backend& be);

// Device memory of the process-wide CUDA backend, if it was created (false
// otherwise; never creates it, never throws).
bool cuda_memory(DeviceMemory* out, bool reset_peak);

// A sentence for `bayeslora info`: device name, compute capability, memory,
// which cuBLAS was found; or why no device is usable. Never throws.
std::string cuda_probe(bool* usable);

}  // namespace bl
