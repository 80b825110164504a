// Reference SGEMM: plain loops, float64 accumulation. Used by tests as the
// ground truth for both the built-in kernel and BLAS.
#include "backend/cpu/gemm.h"

namespace bl::cpu {

void sgemm_reference(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
                     const float* B, int ldb, float beta, float* C, int ldc) {
  for (int i = 0; i < M; ++i) {
    for (int j = 0; j < N; ++j) {
      double acc = 0;
      for (int k = 0; k < K; ++k) {
        double a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
        double b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
        acc += a * b;
      }
      float& c = C[(size_t)i * ldc + j];
      c = float(alpha * acc + (beta == 0.0f ? 0.0 : double(beta) * c));
    }
  }
}

}  // namespace bl::cpu
