// An 8-lane float exp for AVX2+FMA hosts, shared by the CPU kernels whose
// scalar libm expf showed up in profiles (SwiGLU's sigmoid, attention's
// softmax). Callers compile the calling function with BL_VTARGET_AVX2 and
// check cpu_features().avx2_fma() before taking the vector path.
#pragma once

#if defined(__x86_64__)
#include <immintrin.h>

#define BL_VTARGET_AVX2 __attribute__((target("avx2,fma")))

namespace bl::cpu {

// exp(x) for x in [-87.3, 88.3] (callers clamp): x = n ln2 + r, |r| <= ln2/2,
// exp(r) by the degree-6 minimax polynomial of Cephes' expf (relative error
// ~1.2e-7, about one float ulp), times 2^n built in the exponent field.
// exp(0) is exactly 1 (n = 0, r = 0), which softmax relies on.
BL_VTARGET_AVX2 inline __m256 exp_avx2(__m256 x) {
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);  // ln2 in two parts: exact first product
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  const __m256 r2 = _mm256_mul_ps(r, r);
  p = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

}  // namespace bl::cpu
#endif
