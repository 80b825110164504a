// AVX-512 micro-kernel: 12x32 tile (24 zmm accumulators, 2 B vectors,
// 1 broadcast). Same source body as the AVX2 kernels (gemm_kernel_body.inc);
// its 12x32 tiling is tested on AVX2-only machines via the avx2_12x32 variant.
#include <immintrin.h>
#include <unistd.h>

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

// The B micro-panel (kc x 32 floats) stays in L1d while the A micro-panels
// stream past it from L2 (A block mc*kc*4 bytes). kc = 192 (24 KiB) fits a
// 32 KiB L1d (Skylake-X); with 48 KiB or more (Zen 4/5, Ice Lake and later)
// kc = 256 (32 KiB) fits too and passes over each C tile a quarter fewer
// times (K = 768: 3 K blocks instead of 4). Measured on a 2-core Zen 5 (48 KiB L1d), built-in vs
// OpenBLAS SkylakeX paired at six model shapes: 0.91-0.92x with kc 192,
// 0.94-0.95x with kc 256 (three sweeps; mc 480 instead of 240 changed
// nothing); 120m LoRA training step on this kernel 2.4-3% faster
// (bench/ab-builds.ts, paired; A/A 1.002), 20m unchanged (K = 384 takes two
// K blocks either way).
int l1d_bytes() {
  long v = sysconf(_SC_LEVEL1_DCACHE_SIZE);
  return v > 0 && v < (1L << 24) ? int(v) : 32 * 1024;
}

const GemmKernel& kernel() {
  static const GemmKernel k = {"avx512", 12, 32, 240, l1d_bytes() >= 48 * 1024 ? 256 : 192, 4064,
                               tile_kernel<12, 2>, pack_a_panels<12>, pack_b_panels<32>};
  return k;
}

}  // namespace

const GemmKernel* gemm_kernel_avx512() { return supported() ? &kernel() : nullptr; }

}  // namespace bl::cpu
