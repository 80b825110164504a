// AVX-512 micro-kernel: 12x32 tile (24 zmm accumulators, 2 B vectors,
// 1 broadcast). Same source body as the AVX2 kernels (gemm_kernel_body.inc);
// its 12x32 tiling is tested on AVX2-only machines via the avx2_12x32 variant.
#include <immintrin.h>

#include "backend/cpu/gemm_kernel.h"

namespace bl::cpu {
namespace {

#define BL_KTARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))
using V = __m512;
constexpr int VL = 16;
BL_KTARGET inline V vzero() { return _mm512_setzero_ps(); }
BL_KTARGET inline V vload(const float* p) { return _mm512_load_ps(p); }
BL_KTARGET inline V vloadu(const float* p) { return _mm512_loadu_ps(p); }
BL_KTARGET inline void vstoreu(float* p, V v) { _mm512_storeu_ps(p, v); }
BL_KTARGET inline V vbcast(float x) { return _mm512_set1_ps(x); }
BL_KTARGET inline V vfma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
BL_KTARGET inline V vmul(V a, V b) { return _mm512_mul_ps(a, b); }

#include "backend/cpu/gemm_kernel_body.inc"
#undef BL_KTARGET

bool supported() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
}

// Not tuned on AVX-512 hardware (none available while writing): B micro-panel
// kc*32*4 = 24 KiB fits a 32-48 KiB L1d, A block mc*kc*4 = 180 KiB in L2.
const GemmKernel kAvx512 = {"avx512", 12, 32, 240, 192, 4064,
                            tile_kernel<12, 2>, pack_a_panels<12>, pack_b_panels<32>};

}  // namespace

const GemmKernel* gemm_kernel_avx512() { return supported() ? &kAvx512 : nullptr; }

}  // namespace bl::cpu
