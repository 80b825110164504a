// TEMPORARY stub (replaced by the GEMM work): routes everything to the reference.
#include "backend/cpu/gemm.h"
#include "core/threads.h"

namespace bl::cpu {

void sgemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
           const float* B, int ldb, float beta, float* C, int ldc) {
  sgemm_reference(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
void sgemm_builtin(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
                   const float* B, int ldb, float beta, float* C, int ldc) {
  sgemm_reference(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
GemmInfo gemm_info() { return GemmInfo{"reference", "scalar", "", num_threads()}; }
void set_gemm_impl(const std::string&) {}

}  // namespace bl::cpu
