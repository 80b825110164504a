// CUDA emulation (tests only): __nv_bfloat16 and the two conversions the
// kernels use, written from the bf16 definition (the top 16 bits of an IEEE
// float; float -> bf16 rounds to nearest, ties to even; NaN stays a quiet NaN),
// independently of bl::f32_to_bf16 so that a parity test compares two codes.
#pragma once
#include <cstdint>
#include <cstring>

struct __nv_bfloat16 {
  uint16_t bits;
};

inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  __nv_bfloat16 r;
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) {
    r.bits = uint16_t((u >> 16) | 0x0040u);  // quiet NaN, sign kept
    return r;
  }
  const uint32_t lsb = (u >> 16) & 1u;
  r.bits = uint16_t((u + 0x7fffu + lsb) >> 16);
  return r;
}

inline float __bfloat162float(__nv_bfloat16 h) {
  const uint32_t u = uint32_t(h.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
