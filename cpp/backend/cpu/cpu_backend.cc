// The CPU backend: host memory, GEMM dispatch (cpu/gemm.h) and the reference
// kernels (cpu/cpu_ops.h). Small elementwise ops live here directly.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

#include "backend/backend.h"
#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/gemm.h"
#include "core/error.h"
#include "core/threads.h"

namespace bl {
namespace {

constexpr size_t kGrain = 1 << 14;
constexpr size_t kBytesGrain = size_t(1) << 18;  // zero/copy: one chunk per 256 KiB

class CpuBackend final : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  bool host_memory() const override { return true; }

  void* alloc(size_t bytes) override {
    size_t n = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, n ? n : 64);
    if (!p) fail(code::kOutOfMemory, "cpu: cannot allocate ", bytes, " bytes");
    return p;
  }
  void dealloc(void* p) override { std::free(p); }
  void to_device(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void to_host(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  // Device-to-device copies and zero fills split across the pool above 256 KiB:
  // the model zeroes gradient buffers (N x intermediate floats) before every
  // accumulating op, and one core's memset left the other idle (~1.5% of a
  // 2-thread training step). Overlapping copies stay one memmove.
  void copy(void* dst, const void* src, size_t bytes) override {
    auto* d = static_cast<char*>(dst);
    const auto* s = static_cast<const char*>(src);
    if (bytes < kBytesGrain || (d < s + bytes && s < d + bytes)) {
      std::memmove(dst, src, bytes);
      return;
    }
    parallel_for(bytes, kBytesGrain, [&](size_t b, size_t e) { std::memcpy(d + b, s + b, e - b); });
  }
  void zero(void* p, size_t bytes) override {
    auto* d = static_cast<char*>(p);
    if (bytes < kBytesGrain) {
      std::memset(p, 0, bytes);
      return;
    }
    parallel_for(bytes, kBytesGrain, [&](size_t b, size_t e) { std::memset(d + b, 0, e - b); });
  }
  void synchronize() override {}

  void gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
            const float* B, int ldb, float beta, float* C, int ldc) override {
    cpu::sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }
  void gemm_strided_batched(bool ta, bool tb, int M, int N, int K, float alpha, const float* A,
                            int lda, int64_t sa, const float* B, int ldb, int64_t sb, float beta,
                            float* C, int ldc, int64_t sc, int batch) override {
    for (int i = 0; i < batch; ++i)
      cpu::sgemm(ta, tb, M, N, K, alpha, A + i * sa, lda, B + i * sb, ldb, beta, C + i * sc, ldc);
  }

  void gemm_bf16w(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
                  const uint16_t* W, int ldw, float beta, float* C, int ldc) override {
    cpu::gemm_bf16w(ta, tb, M, N, K, alpha, A, lda, W, ldw, beta, C, ldc);
  }

  void fill(float* x, float v, int64_t n) override {
    parallel_for(size_t(n), kGrain, [&](size_t b, size_t e) { for (size_t i = b; i < e; ++i) x[i] = v; });
  }
  void axpy(int64_t n, float a, const float* x, float* y) override {
    parallel_for(size_t(n), kGrain, [&](size_t b, size_t e) { for (size_t i = b; i < e; ++i) y[i] += a * x[i]; });
  }
  void scale(int64_t n, float a, float* x) override {
    parallel_for(size_t(n), kGrain, [&](size_t b, size_t e) { for (size_t i = b; i < e; ++i) x[i] *= a; });
  }
  void add(int64_t n, const float* a, const float* b, float* out) override {
    parallel_for(size_t(n), kGrain, [&](size_t s, size_t e) { for (size_t i = s; i < e; ++i) out[i] = a[i] + b[i]; });
  }
  double sum_squares(int64_t n, const float* x) override {
    double acc = 0;
    for (int64_t i = 0; i < n; ++i) acc += double(x[i]) * x[i];
    return acc;
  }
  bool all_finite(int64_t n, const float* x) override {
    for (int64_t i = 0; i < n; ++i)
      if (!std::isfinite(x[i])) return false;
    return true;
  }

  void embedding_fwd(float* out, const int32_t* ids, const float* table, int N, int d) override { cpu::embedding_fwd(out, ids, table, N, d); }
  void embedding_bwd(float* dtable, const int32_t* ids, const float* dout, int N, int d) override { cpu::embedding_bwd(dtable, ids, dout, N, d); }
  void gather_rows(float* out, const float* x, const int32_t* idx, int n, int d) override { cpu::gather_rows(out, x, idx, n, d); }
  void scatter_add_rows(float* dx, const float* dout, const int32_t* idx, int n, int d) override { cpu::scatter_add_rows(dx, dout, idx, n, d); }
  void rmsnorm_fwd(float* out, float* rstd, const float* x, const float* w, int N, int d, float eps) override { cpu::rmsnorm_fwd(out, rstd, x, w, N, d, eps); }
  void rmsnorm_bwd(float* dx, float* dw, const float* dout, const float* x, const float* w, const float* rstd, int N, int d) override { cpu::rmsnorm_bwd(dx, dw, dout, x, w, rstd, N, d); }
  void add_bias(float* x, const float* bias, int N, int d) override { cpu::add_bias(x, bias, N, d); }
  void bias_bwd(float* dbias, const float* dout, int N, int d) override { cpu::bias_bwd(dbias, dout, N, d); }
  void rope_fwd(float* x, const int32_t* pos, const float* inv_freq, int N, int H, int hd) override { cpu::rope_fwd(x, pos, inv_freq, N, H, hd); }
  void rope_bwd(float* dx, const int32_t* pos, const float* inv_freq, int N, int H, int hd) override { cpu::rope_bwd(dx, pos, inv_freq, N, H, hd); }
  size_t attention_saved_floats(const AttnShape& s) override { return cpu::attention_saved_floats(s); }
  void attention_fwd(float* out, float* saved, const float* q, const float* k, const float* v, const uint8_t* mask, const AttnShape& s, float scale) override { cpu::attention_fwd(out, saved, q, k, v, mask, s, scale); }
  void attention_bwd(float* dq, float* dk, float* dv, const float* dout, const float* saved, const float* q, const float* k, const float* v, const uint8_t* mask, const AttnShape& s, float scale) override { cpu::attention_bwd(dq, dk, dv, dout, saved, q, k, v, mask, s, scale); }
  void swiglu_fwd(float* out, const float* gate, const float* up, int64_t n) override { cpu::swiglu_fwd(out, gate, up, n); }
  void swiglu_bwd(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n) override { cpu::swiglu_bwd(dgate, dup, dout, gate, up, n); }
  void dropout_fwd(float* out, const float* x, int64_t n, float p, uint64_t seed) override { cpu::dropout_fwd(out, x, n, p, seed); }
  void dropout_bwd(float* dx, const float* dout, int64_t n, float p, uint64_t seed) override { cpu::dropout_bwd(dx, dout, n, p, seed); }
  void rows_dot_fwd(float* logits, const float* h, const float* W, const int32_t* rows, int Bn, int C, int d) override { cpu::rows_dot_fwd(logits, h, W, rows, Bn, C, d); }
  void rows_dot_bwd(float* dh, float* dW, const float* dlogits, const float* h, const float* W, const int32_t* rows, int Bn, int C, int d) override { cpu::rows_dot_bwd(dh, dW, dlogits, h, W, rows, Bn, C, d); }
  void softmax_xent(float* loss, float* probs, float* dlogits, const float* logits, const int32_t* labels, int N, int C, float dscale) override { cpu::softmax_xent(loss, probs, dlogits, logits, labels, N, C, dscale); }
  void lora_fwd(float* y, float* u, const float* x, const float* A, const float* B, int N, int d_in, int d_out, int r, float s) override { cpu::lora_fwd(y, u, x, A, B, N, d_in, d_out, r, s); }
  void lora_bwd(float* gu, float* dA, float* dB, float* dx, float* work, const float* g, const float* x, const float* u, const float* A, const float* B, int N, int d_in, int d_out, int r, float s, float p, uint64_t seed) override { cpu::lora_bwd(gu, dA, dB, dx, work, g, x, u, A, B, N, d_in, d_out, r, s, p, seed); }
  void token_reduce(float* out, const float* X, const uint8_t* mask, const int32_t* ex, int n, int T, int d, bool mean) override { cpu::token_reduce(out, X, mask, ex, n, T, d, mean); }
  void kfac_accumulate(double* S, const float* X, int n, int d, int ldx, double scale, float* work) override { cpu::kfac_accumulate(S, X, n, d, ldx, scale, work); }
  void gram64(double* G, const double* M, int d, int n, int ldm) override { cpu::gram64(G, M, d, n, ldm); }
  void adamw(float* p, const float* g, float* m, float* v, int64_t n, float lr, float b1, float b2, float eps, float wd, int step, float grad_scale) override { cpu::adamw(p, g, m, v, n, lr, b1, b2, eps, wd, step, grad_scale); }
};

}  // namespace

Backend& cpu_backend() {
  static CpuBackend* be = new CpuBackend();
  return *be;
}

}  // namespace bl
