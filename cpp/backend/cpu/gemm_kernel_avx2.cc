// AVX2 + FMA micro-kernels: the production 6x16 tile (12 ymm accumulators,
// 2 B vectors, 1 broadcast: 15 of 16 registers) and a 12x32 test variant
// that mirrors the AVX-512 tiling. Compiled with a target attribute, run only
// after a run-time CPU check.
#include <immintrin.h>

#include "backend/cpu/gemm_kernel.h"

namespace bl::cpu {
namespace {

#define BL_KTARGET __attribute__((target("avx2,fma")))
using V = __m256;
constexpr int VL = 8;
BL_KTARGET inline V vzero() { return _mm256_setzero_ps(); }
BL_KTARGET inline V vload(const float* p) { return _mm256_load_ps(p); }
BL_KTARGET inline V vloadu(const float* p) { return _mm256_loadu_ps(p); }
BL_KTARGET inline void vstoreu(float* p, V v) { _mm256_storeu_ps(p, v); }
BL_KTARGET inline V vbcast(float x) { return _mm256_set1_ps(x); }
BL_KTARGET inline V vfma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
BL_KTARGET inline V vmul(V a, V b) { return _mm256_mul_ps(a, b); }

#include "backend/cpu/gemm_kernel_body.inc"
#undef BL_KTARGET

bool supported() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

// Blocks for Zen 3 / Haswell-class caches: B micro-panel kc*16*4 = 16 KiB
// (half of L1d), A block mc*kc*4 = 144 KiB (L2), B block kc*nc*4 = 4 MiB (L3).
const GemmKernel kAvx2 = {"avx2", 6, 16, 144, 256, 4080,
                          tile_kernel<6, 2>, pack_a_panels<6>, pack_b_panels<16>};
const GemmKernel kAvx2Wide = {"avx2_12x32", 12, 32, 240, 192, 4064,
                              tile_kernel<12, 4>, pack_a_panels<12>, pack_b_panels<32>};

}  // namespace

const GemmKernel* gemm_kernel_avx2() { return supported() ? &kAvx2 : nullptr; }
const GemmKernel* gemm_kernel_avx2_12x32() { return supported() ? &kAvx2Wide : nullptr; }

}  // namespace bl::cpu
