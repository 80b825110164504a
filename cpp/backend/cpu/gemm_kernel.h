// The contract between the built-in GEMM driver (gemm_builtin.cc) and its
// per-ISA micro-kernels (gemm_kernel_{avx512,avx2,scalar}.cc). A kernel
// computes one MR x NR tile of C from packed panels and brings its own
// packing routines (compiled for the same ISA) and cache-block sizes.
#pragma once
#include <cstdint>
#include <vector>

namespace bl::cpu {

struct GemmKernel {
  const char* name;   // "avx512", "avx2", "scalar" (or a test-only variant)
  int mr, nr;         // register tile
  int mc, kc, nc;     // cache blocks: A block mc x kc (L2), B block kc x nc (L3)
  // C[0:mr, 0:nr] (row stride ldc) = alpha * Ap^T Bp + beta * C for a full tile,
  // alpha_beta = {alpha, beta}. Ap: kc x mr (k-major panel), Bp: kc x nr, both
  // 64-byte aligned. beta == 0 never reads C. (alpha and beta come through
  // memory so they hold no vector register during the k loop: by value, GCC 12
  // spilled a B vector of the 12x32 AVX-512 tile to the stack.)
  void (*tile)(int kc, const float* Ap, const float* Bp, float* C, int64_t ldc,
               const float* alpha_beta);
  // Pack op(A)[i0:i0+mc, p0:p0+kc] into ceil(mc/mr) panels of kc*mr floats,
  // zero-padding rows past mc. op(A)(i,k) = ta ? A[k*lda+i] : A[i*lda+k].
  void (*pack_a)(bool ta, const float* A, int64_t lda, int64_t i0, int mc, int64_t p0, int kc,
                 float* out);
  // Pack op(B)[p0:p0+kc, j0:j0+nc] into ceil(nc/nr) panels of kc*nr floats,
  // zero-padding columns past nc. op(B)(k,j) = tb ? B[j*ldb+k] : B[k*ldb+j].
  void (*pack_b)(bool tb, const float* B, int64_t ldb, int64_t p0, int kc, int64_t j0, int nc,
                 float* out);
};

// Each returns nullptr when this CPU cannot run it.
const GemmKernel* gemm_kernel_avx512();
const GemmKernel* gemm_kernel_avx2();
// The AVX-512 kernel's 12x32 tiling, instantiated with AVX2 instructions:
// lets AVX2-only machines test the exact tiling/edge logic the AVX-512 build
// uses (slower: it spills registers). Never chosen automatically.
const GemmKernel* gemm_kernel_avx2_12x32();
const GemmKernel* gemm_kernel_scalar();  // always available

// The kernel the built-in GEMM uses: the best available, capped by
// $BAYESLORA_SIMD ("avx512" | "avx2" | "scalar") when set.
const GemmKernel& gemm_default_kernel();
// Every kernel this CPU can run, best first (tests iterate over them).
std::vector<const GemmKernel*> gemm_available_kernels();
// By name; nullptr when unknown or unavailable on this CPU.
const GemmKernel* gemm_kernel_by_name(const char* name);

// The driver, with an explicit kernel (sgemm_builtin uses the default one).
void sgemm_with_kernel(const GemmKernel& kern, bool ta, bool tb, int M, int N, int K, float alpha,
                       const float* A, int lda, const float* B, int ldb, float beta, float* C,
                       int ldc);

}  // namespace bl::cpu
