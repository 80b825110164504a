// SGEMM dispatch: OpenBLAS (dlopen'd, blas_loader.h) for problems big enough
// to amortise its call overhead, the built-in kernel (gemm_builtin.cc) for
// tiny ones, when no BLAS is present, and on AVX-512 CPUs where OpenBLAS runs
// AVX2 kernels (auto_choice); set_gemm_impl forces either.
#include "backend/cpu/gemm.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <string>

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

// OpenBLAS core types whose SGEMM kernels use AVX-512 (0.3.21 has SkylakeX
// and Cooperlake; later releases add SapphireRapids).
bool core_uses_avx512(const std::string& core) {
  std::string c;
  for (char ch : core) c.push_back(char(std::tolower(static_cast<unsigned char>(ch))));
  return c == "skylakex" || c == "cooperlake" || c == "sapphirerapids";
}

// Which implementation `auto` sends the large GEMMs to, decided once. OpenBLAS
// when loaded, except on an AVX-512 CPU whose OpenBLAS runs AVX2-or-older
// kernels (OPENBLAS_CORETYPE set to Haswell or Zen by the user or the
// environment, or a core it misdetects): the built-in AVX-512 kernel is faster
// there. Measured on a 2-core Zen 5 (bench/gemm.ts, both alternated): 320-440
// vs 230-250 GFLOP/s at the 120m model's shapes, and its LoRA training step
// 0.50 vs 0.78-0.82 s; with OpenBLAS's SkylakeX kernels BLAS stays ahead
// (420-460 GFLOP/s, step 0.46 s).
struct AutoChoice {
  bool blas = false;
  std::string why;
};

const AutoChoice& auto_choice() {
  static const AutoChoice c = [] {
    AutoChoice r;
    const BlasLib& b = blas_lib();
    if (!b.loaded) {
      r.why = "no BLAS library loaded";
      return r;
    }
    const bool builtin_avx512 = std::string(gemm_default_kernel().name) == "avx512";
    if (builtin_avx512 && !b.corename.empty() && !core_uses_avx512(b.corename)) {
      r.why = "the CPU has AVX-512 but OpenBLAS runs its " + b.corename +
              " kernels, which do not use it; unset OPENBLAS_CORETYPE or set it to SkylakeX "
              "for OpenBLAS's AVX-512 kernels";
      return r;
    }
    r.blas = true;
    r.why = "BLAS for large products, built-in kernels for small and LoRA-shaped ones";
    return r;
  }();
  return c;
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
                   int64_t(M) * N * K >= kBlasMinWork && auto_choice().blas);
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
  switch (g_impl.load()) {
    case Impl::kBlas: g.gemm = "blas"; g.gemm_why = "set by setGemmImpl('blas')"; break;
    case Impl::kBuiltin: g.gemm = "builtin"; g.gemm_why = "set by setGemmImpl('builtin')"; break;
    case Impl::kAuto:
      g.gemm = auto_choice().blas ? "blas" : "builtin";
      g.gemm_why = auto_choice().why;
      break;
  }
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
