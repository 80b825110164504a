// Portable micro-kernel: a 4x8 tile in GCC/Clang generic vectors of 4 floats
// (SSE2 on any x86-64, NEON on ARM, plain scalar code elsewhere). The
// fallback when AVX2/FMA is missing, and a third implementation for tests.
#include <cstring>

#include "backend/cpu/gemm_kernel.h"

namespace bl::cpu {
namespace {

#define BL_KTARGET
typedef float V __attribute__((vector_size(16)));
constexpr int VL = 4;
inline V vzero() { return V{0.0f, 0.0f, 0.0f, 0.0f}; }
inline V vload(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline V vloadu(const float* p) { return vload(p); }
inline void vstoreu(float* p, V v) { std::memcpy(p, &v, sizeof v); }
inline V vbcast(float x) { return V{x, x, x, x}; }
inline V vfma(V a, V b, V c) { return a * b + c; }
inline V vmul(V a, V b) { return a * b; }

#include "backend/cpu/gemm_kernel_body.inc"
#undef BL_KTARGET

const GemmKernel kScalar = {"scalar", 4, 8, 128, 256, 2048,
                            tile_kernel<4, 2>, pack_a_panels<4>, pack_b_panels<8>};

}  // namespace

const GemmKernel* gemm_kernel_scalar() { return &kScalar; }

}  // namespace bl::cpu
