// CPU SGEMM dispatch: OpenBLAS (loaded at run time with dlopen) when present,
// otherwise the built-in packed, register-tiled kernel (AVX-512 / AVX2 / scalar
// chosen at run time). Row-major; semantics as Backend::gemm.
#pragma once
#include <cstdint>
#include <string>

namespace bl::cpu {

void sgemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
           const float* B, int ldb, float beta, float* C, int ldc);

// The built-in kernel alone (benchmarks and tests compare it with BLAS).
void sgemm_builtin(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
                   const float* B, int ldb, float beta, float* C, int ldc);

// C = beta * C over M x N rows of stride ldc, split across the pool (beta == 0
// writes zeros without reading C).
void scale_c(int M, int N, float beta, float* C, int64_t ldc);

// LoRA-shaped products (gemm_skinny.cc): !ta with N <= 16, or ta and !tb with
// M or N <= 16, K >= 16, on AVX2+FMA hosts. Returns false (C untouched) when
// the shape or the CPU is not one it handles.
bool sgemm_skinny(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
                  const float* B, int ldb, float beta, float* C, int ldc);

// Straightforward triple loop with float64 accumulation: the test reference.
void sgemm_reference(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
                     const float* B, int ldb, float beta, float* C, int ldc);

struct GemmInfo {
  std::string blas;        // "openblas 0.3.21 (path)" or "builtin"
  std::string simd;        // "avx512", "avx2", "scalar"
  std::string coretype;    // OPENBLAS_CORETYPE in effect ("" when unset)
  std::string gemm;        // where large SGEMMs go now: "blas" or "builtin"
  std::string gemm_why;    // why (set_gemm_impl, no BLAS, or the auto rule)
  int threads = 1;
};
GemmInfo gemm_info();

// Force a GEMM implementation: "auto" (BLAS if loaded, unless the CPU has
// AVX-512 and the loaded OpenBLAS core type does not use it), "builtin", "blas".
void set_gemm_impl(const std::string& impl);

}  // namespace bl::cpu
