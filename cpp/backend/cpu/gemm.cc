// SGEMM dispatch: OpenBLAS (dlopen'd, blas_loader.h) for problems big enough
// to amortise its call overhead, the built-in kernel (gemm_builtin.cc) for
// tiny ones and when no BLAS is present; set_gemm_impl forces either.
#include "backend/cpu/gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>

#include "backend/cpu/blas_loader.h"
#include "backend/cpu/gemm_kernel.h"
#include "core/error.h"
#include "core/threads.h"

namespace bl::cpu {
namespace {

enum class Impl { kAuto, kBuiltin, kBlas };
std::atomic<Impl> g_impl{Impl::kAuto};

// Below ~32^3 multiply-adds OpenBLAS's per-call setup outweighs the
// arithmetic (measured on Zen 3: the built-in kernel is level with it there).
constexpr int64_t kBlasMinWork = int64_t(32) * 32 * 32;
// With K this short the product is a rank-K update bound by writing C, and
// OpenBLAS 0.3.21 ran 1.6-3x slower than the built-in kernel at
// 1024 x 2048 x K for K = 1..16 (the LoRA up-projection H B^T has K = rank).
constexpr int kBlasMinK = 17;
// C sizes (floats) from which a beta = 0 BLAS call zeroes C itself first.
constexpr int64_t kZeroFirstMin = int64_t(1) << 16;

// cblas_sgemm reports (and ignores) leading dimensions below the matrix
// width through xerbla, which prints to stderr; such calls (legal for us when
// the matrix has a single row) go to the built-in kernel instead.
bool blas_accepts(bool ta, bool tb, int M, int N, int K, int lda, int ldb, int ldc) {
  return lda >= std::max(1, ta ? M : K) && ldb >= std::max(1, tb ? K : N) && ldc >= std::max(1, N);
}

}  // namespace

void sgemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
           const float* B, int ldb, float beta, float* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  Impl impl = g_impl.load(std::memory_order_relaxed);
  // One side no wider than the LoRA rank: the in-place kernels beat both
  // packed GEMMs there (gemm_skinny.cc).
  if (impl == Impl::kAuto && sgemm_skinny(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)) return;
  // Inside a pool worker (e.g. per-head attention GEMMs) the cores are already
  // busy: the single-threaded built-in kernel avoids oversubscribing them.
  bool use_blas = impl == Impl::kBlas ||
                  (impl == Impl::kAuto && !in_pool_worker() && K >= kBlasMinK &&
                   int64_t(M) * N * K >= kBlasMinWork);
  if (use_blas && K > 0 && blas_accepts(ta, tb, M, N, K, lda, ldb, ldc)) {
    // beta = 0 on a large C: zero it with the pool and pass beta = 1.
    // OpenBLAS otherwise runs its own beta pass over C (sgemm_beta: ~3% of a
    // 2-thread 20m training step, more than the parallel memset).
    if (beta == 0.0f && int64_t(M) * N >= kZeroFirstMin) {
      scale_c(M, N, 0.0f, C, ldc);
      beta = 1.0f;
    }
    if (blas_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)) return;
  }
  sgemm_builtin(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

GemmInfo gemm_info() {
  GemmInfo g;
  const BlasLib& b = blas_lib();
  if (b.loaded) {
    // openblas_get_config() reads "OpenBLAS 0.3.21 DYNAMIC_ARCH ... Zen MAX_THREADS=64".
    std::string cfg = b.config;
    if (cfg.rfind("OpenBLAS ", 0) == 0) cfg = cfg.substr(9);
    g.blas = (b.config.empty() ? std::string("cblas") : "openblas " + cfg) + " (" + b.path + ")";
    g.coretype = !b.corename.empty() ? b.corename : b.coretype_env;
  } else {
    g.blas = "builtin";
    g.coretype = "";
  }
  g.simd = gemm_default_kernel().name;
  g.threads = num_threads();
  return g;
}

void set_gemm_impl(const std::string& impl) {
  if (impl == "auto") {
    g_impl = Impl::kAuto;
  } else if (impl == "builtin") {
    g_impl = Impl::kBuiltin;
  } else if (impl == "blas") {
    if (!blas_lib().loaded)
      fail(code::kUnsupported, "set_gemm_impl('blas'): no BLAS library is loaded (",
           blas_lib().attempts.empty() ? std::string("none found") : blas_lib().attempts.back(), ")");
    g_impl = Impl::kBlas;
  } else {
    fail(code::kInvalidArgument, "gemm implementation must be 'auto', 'builtin' or 'blas', got '",
         impl, "'");
  }
}

}  // namespace bl::cpu
