// Run-time loading of OpenBLAS (or any library exporting cblas_sgemm) with
// dlopen. Never linked: the addon loads and works when no BLAS is installed.
// Search order: $BAYESLORA_BLAS (a path, or "none" to disable), then
// libopenblas.so.0, libopenblas.so. Before the dlopen, on CPUs with AVX-512
// and no user-set OPENBLAS_CORETYPE, OPENBLAS_CORETYPE=SkylakeX is set:
// OpenBLAS 0.3.21 misdetects newer AVX-512 CPUs and falls back to slow kernels.
// Also before the dlopen, unless the user set it, OPENBLAS_THREAD_TIMEOUT=16:
// OpenBLAS's idle threads then sleep after 2^16 cycles instead of 2^28 (about
// 0.1 s of sched_yield spinning after every call), which otherwise takes the
// cores from this library's own pool (attention, norms) between GEMMs.
#pragma once
#include <string>
#include <vector>

namespace bl::cpu {

struct BlasLib {
  bool loaded = false;
  std::string path;        // what dlopen accepted
  std::string config;      // openblas_get_config(), "" for a non-OpenBLAS cblas
  std::string corename;    // openblas_get_corename(), ""
  std::string coretype_env;     // OPENBLAS_CORETYPE at load time ("" when unset)
  bool coretype_set_by_us = false;
  std::string thread_timeout_env;  // OPENBLAS_THREAD_TIMEOUT at load time
  bool thread_timeout_set_by_us = false;
  std::vector<std::string> attempts;  // "path: error" for each failed candidate, or "disabled"
};

// Loads on first call (std::call_once); later calls return the same record.
const BlasLib& blas_lib();

// C = alpha op(A) op(B) + beta C through cblas_sgemm (row-major). Syncs the
// BLAS thread count with bl::num_threads() first. Returns false (doing
// nothing) when no BLAS is loaded.
bool blas_sgemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
                const float* B, int ldb, float beta, float* C, int ldc);

// The same through cblas_dgemm (float64; the Laplace code's products). Returns
// false when no BLAS is loaded or it has no cblas_dgemm.
bool blas_dgemm(bool ta, bool tb, int M, int N, int K, double alpha, const double* A, int lda,
                const double* B, int ldb, double beta, double* C, int ldc);

// LAPACK's dsyevd (OpenBLAS bundles LAPACK) on a column-major n x n symmetric
// matrix: eigenvalues ascending in w, eigenvectors overwrite A as columns.
// Returns false when the symbol is absent; info holds LAPACK's status.
bool lapack_dsyevd(int n, double* A, double* w, int* info);

// BLAS-internal thread count (0 when not loaded or unknown).
int blas_threads();

}  // namespace bl::cpu
