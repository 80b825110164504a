// CPU reference kernels (free functions). The CPU backend forwards to these;
// tests call them through the backend. Semantics are documented on the
// matching Backend methods in backend/backend.h (bwd ops accumulate).
#pragma once
#include <cstdint>

#include "backend/backend.h"

namespace bl::cpu {

void embedding_fwd(float* out, const int32_t* ids, const float* table, int N, int d);
void embedding_bwd(float* dtable, const int32_t* ids, const float* dout, int N, int d);
void gather_rows(float* out, const float* x, const int32_t* idx, int n, int d);
void scatter_add_rows(float* dx, const float* dout, const int32_t* idx, int n, int d);
void rmsnorm_fwd(float* out, float* rstd, const float* x, const float* w, int N, int d, float eps);
void rmsnorm_bwd(float* dx, float* dw, const float* dout, const float* x, const float* w,
                 const float* rstd, int N, int d);
void add_bias(float* x, const float* bias, int N, int d);
void bias_bwd(float* dbias, const float* dout, int N, int d);
void rope_fwd(float* x, const int32_t* pos, const float* inv_freq, int N, int H, int hd);
void rope_bwd(float* dx, const int32_t* pos, const float* inv_freq, int N, int H, int hd);
size_t attention_saved_floats(const AttnShape& s);
void attention_fwd(float* out, float* saved, const float* q, const float* k, const float* v,
                   const uint8_t* mask, const AttnShape& s, float scale);
void attention_bwd(float* dq, float* dk, float* dv, const float* dout, const float* saved,
                   const float* q, const float* k, const float* v, const uint8_t* mask,
                   const AttnShape& s, float scale);
void swiglu_fwd(float* out, const float* gate, const float* up, int64_t n);
void swiglu_bwd(float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                int64_t n);
void dropout_fwd(float* out, const float* x, int64_t n, float p, uint64_t seed);
void dropout_bwd(float* dx, const float* dout, int64_t n, float p, uint64_t seed);
void rows_dot_fwd(float* logits, const float* h, const float* W, const int32_t* rows, int Bn, int C,
                  int d);
void rows_dot_bwd(float* dh, float* dW, const float* dlogits, const float* h, const float* W,
                  const int32_t* rows, int Bn, int C, int d);
void softmax_xent(float* loss, float* probs, float* dlogits, const float* logits,
                  const int32_t* labels, int N, int C, float dscale);
void gemm_bf16w(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
                const uint16_t* W, int ldw, float beta, float* C, int ldc);
void lora_fwd(float* y, float* u, const float* x, const float* A, const float* B, int N, int d_in, int d_out,
              int r, float s);
void lora_bwd(float* gu, float* dA, float* dB, float* dx, float* work, const float* g, const float* x,
              const float* u, const float* A, const float* B, int N, int d_in, int d_out, int r, float s,
              float p, uint64_t seed);
void token_reduce(float* out, const float* X, const uint8_t* mask, const int32_t* ex, int n, int T, int d,
                  bool mean);
void kfac_accumulate(double* S, const float* X, int n, int d, int ldx, double scale, float* work);
void gram64(double* G, const double* M, int d, int n, int ldm);
void adamw(float* p, const float* g, float* m, float* v, int64_t n, float lr, float b1, float b2,
           float eps, float wd, int step, float grad_scale);

}  // namespace bl::cpu
