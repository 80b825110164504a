// GEMMs with one side of at most 16 (the LoRA rank): u = x A^T, g_u = g B,
// dA += g_u^T x and dB += g^T u. Both OpenBLAS and the packed built-in kernel
// spend most of such a call repacking the big operand (x or g, tokens x d)
// for a product with a 16-lane-wide (or narrower) other side: ~30 GFLOP/s at
// 512 x 8 x 384 on two Zen 3 cores, four calls per LoRA module and step.
// These kernels read the big operand once, in place, and keep the small one
// and the accumulators in registers.
//
// Two loop shapes (AVX2 + FMA; elsewhere sgemm_skinny declines):
//   dot:  C[i, c] = sum_k X[i, k] S[c, k]   (rows of X and S contiguous in k):
//         !ta with N <= 16 (tb: S = B; !tb: S = B^T, transposed into scratch).
//   axpy: T[c, j] = sum_k S[k, c] X[k, j]  (X rows contiguous in j):
//         ta, !tb with M <= 16 (C = T: S = A, X = B) or N <= 16
//         (C = T^T: S = B, X = A, stored transposed).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "backend/cpu/cpu_features.h"
#include "backend/cpu/gemm.h"
#include "core/threads.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace bl::cpu {
namespace {

constexpr int kMaxSmall = 16;
constexpr int kMinK = 16;
// Per parallel chunk, about this many multiply-adds (a pool wake-up costs ~10 us).
constexpr int64_t kChunkWork = int64_t(1) << 17;

inline float merge(float alpha, float acc, float beta, const float* c) {
  return beta == 0.0f ? alpha * acc : alpha * acc + beta * *c;  // beta = 0: C is not read
}

#if defined(__x86_64__)
#define BL_STARGET __attribute__((target("avx2,fma")))

// Sum of each of 8 vectors, as one vector (lane c = sum of v[c]).
BL_STARGET inline __m256 hsum8(const __m256 v[8]) {
  const __m256 a = _mm256_hadd_ps(v[0], v[1]), b = _mm256_hadd_ps(v[2], v[3]);
  const __m256 c = _mm256_hadd_ps(v[4], v[5]), d = _mm256_hadd_ps(v[6], v[7]);
  const __m256 ab = _mm256_hadd_ps(a, b), cd = _mm256_hadd_ps(c, d);
  // ab = [s0 s1 s2 s3 | s0' s1' s2' s3'] (low/high 128-bit halves of v[0..3]).
  const __m256 lo = _mm256_permute2f128_ps(ab, cd, 0x20), hi = _mm256_permute2f128_ps(ab, cd, 0x31);
  return _mm256_add_ps(lo, hi);
}

// Rows [i0, i1) of C[i, c0 + c] for c < NC (<= 8), from X rows and S rows
// c0.. (ld = K-stride of each). NC is a template argument so that the
// accumulators stay in registers.
template <int NC>
BL_STARGET void dot_rows(int i0, int i1, int c0, int K, float alpha, const float* X, int64_t ldx,
                         const float* S, int64_t lds, float beta, float* C, int64_t ldc) {
  constexpr int nc = NC;
  const int K8 = K / 8 * 8;
  for (int i = i0; i < i1; ++i) {
    const float* x = X + int64_t(i) * ldx;
    __m256 acc[8];
#pragma GCC unroll 8
    for (int c = 0; c < 8; ++c) acc[c] = _mm256_setzero_ps();
    for (int k = 0; k < K8; k += 8) {
      const __m256 xv = _mm256_loadu_ps(x + k);
#pragma GCC unroll 8
      for (int c = 0; c < nc; ++c)
        acc[c] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(S + int64_t(c0 + c) * lds + k), acc[c]);
    }
    alignas(32) float sum[8];
    _mm256_store_ps(sum, hsum8(acc));
    float* crow = C + int64_t(i) * ldc + c0;
    for (int c = 0; c < nc; ++c) {
      float s = sum[c];
      const float* srow = S + int64_t(c0 + c) * lds;
      for (int k = K8; k < K; ++k) s += x[k] * srow[k];
      crow[c] = merge(alpha, s, beta, crow + c);
    }
  }
}

// T[c, j - jt] += sum_{k0 <= k < k1} S[k, c0 + c] X[k, j] for c < NC (<= 8) and
// j in [j0, j0 + nj) (nj <= 8); T rows (ldt floats) have room for 8 floats
// from any j - jt a block starts at. klast: X's last row (prefetch bound).
template <int NC>
BL_STARGET void axpy_block(int k0, int k1, int klast, int j0, int nj, int c0, const float* S, int64_t lds,
                           const float* X, int64_t ldx, float* T, int64_t ldt, int jt) {
  constexpr int nc = NC;
  __m256 acc[8];
  float* t = T + (j0 - jt);
#pragma GCC unroll 8
  for (int c = 0; c < nc; ++c) acc[c] = _mm256_loadu_ps(t + int64_t(c) * ldt);
  const __m256i lanes = _mm256_cmpgt_epi32(_mm256_set1_epi32(nj), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  for (int k = k0; k < k1; ++k) {
    const float* xr = X + int64_t(k) * ldx + j0;
    // X rows lie ldx floats apart, too far for the hardware prefetcher once X
    // outgrows the caches (2-4x at 1024 x 2048): ask for a row 16 ahead.
    _mm_prefetch(reinterpret_cast<const char*>(X + int64_t(std::min(k + 16, klast)) * ldx + j0), _MM_HINT_T0);
    const __m256 xv = nj == 8 ? _mm256_loadu_ps(xr) : _mm256_maskload_ps(xr, lanes);  // masked lanes: 0
    const float* sk = S + int64_t(k) * lds + c0;
#pragma GCC unroll 8
    for (int c = 0; c < nc; ++c) acc[c] = _mm256_fmadd_ps(_mm256_broadcast_ss(sk + c), xv, acc[c]);
  }
#pragma GCC unroll 8
  for (int c = 0; c < nc; ++c) _mm256_storeu_ps(t + int64_t(c) * ldt, acc[c]);
}

// Calls f(std::integral_constant<int, n>) for n in 1..8.
template <class F>
inline void with_nc(int n, const F& f) {
  switch (n) {
    case 1: return f(std::integral_constant<int, 1>());
    case 2: return f(std::integral_constant<int, 2>());
    case 3: return f(std::integral_constant<int, 3>());
    case 4: return f(std::integral_constant<int, 4>());
    case 5: return f(std::integral_constant<int, 5>());
    case 6: return f(std::integral_constant<int, 6>());
    case 7: return f(std::integral_constant<int, 7>());
    default: return f(std::integral_constant<int, 8>());
  }
}

BL_STARGET void dot_case(bool tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
                         int ldb, float beta, float* C, int ldc) {
  // S: N rows of K floats. With tb, B is already that; else B^T goes to scratch.
  const float* S = B;
  int64_t lds = ldb;
  std::vector<float> bt;
  if (!tb) {
    bt.resize(size_t(N) * size_t(K));
    for (int k = 0; k < K; ++k)
      for (int c = 0; c < N; ++c) bt[size_t(c) * K + k] = B[int64_t(k) * ldb + c];
    S = bt.data();
    lds = K;
  }
  const size_t grain = size_t(std::max<int64_t>(1, kChunkWork / (int64_t(N) * K)));
  parallel_for(size_t(M), grain, [&](size_t b, size_t e) {
    for (int c0 = 0; c0 < N; c0 += 8)
      with_nc(std::min(8, N - c0), [&](auto nc) {
        dot_rows<decltype(nc)::value>(int(b), int(e), c0, K, alpha, A, lda, S, lds, beta, C, ldc);
      });
  });
}

// ta, !tb: C = A^T B with A = K x M, B = K x N. Threads own column ranges of
// the big side; each walks K in chunks of kKc rows (its slice of a chunk stays
// in L2 while every 8-column block of the range sweeps it) and accumulates in
// a small scratch T, merged into C at the end. (Sweeping all of K per 8-column
// block instead re-read the whole big operand from L3 once per two blocks.)
constexpr int kKc = 128;

BL_STARGET void axpy_case(int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
                          float beta, float* C, int ldc) {
  const bool small_m = M <= kMaxSmall;  // else N <= kMaxSmall: C^T = B^T A
  const int nsmall = small_m ? M : N, nbig = small_m ? N : M;
  const float* S = small_m ? A : B;
  const float* X = small_m ? B : A;
  const int64_t lds = small_m ? lda : ldb, ldx = small_m ? ldb : lda;
  const int64_t jblocks = (nbig + 7) / 8;
  const size_t grain = size_t(std::max<int64_t>(1, kChunkWork / (int64_t(8) * nsmall * K)));
  parallel_for(size_t(jblocks), grain, [&](size_t b, size_t e) {
    const int jt = int(b) * 8, jend = std::min(nbig, int(e) * 8);
    const int64_t ldt = int64_t(e - b) * 8;  // room for the last block's 8 lanes
    std::vector<float> T(size_t(nsmall) * size_t(ldt), 0.0f);
    for (int k0 = 0; k0 < K; k0 += kKc) {
      const int k1 = std::min(K, k0 + kKc);
      for (int j0 = jt; j0 < jend; j0 += 8)
        for (int c0 = 0; c0 < nsmall; c0 += 8)
          with_nc(std::min(8, nsmall - c0), [&](auto nc) {
            axpy_block<decltype(nc)::value>(k0, k1, K - 1, j0, std::min(8, jend - j0), c0, S, lds, X, ldx,
                                            T.data() + int64_t(c0) * ldt, ldt, jt);
          });
    }
    for (int c = 0; c < nsmall; ++c)
      for (int j = jt; j < jend; ++j) {
        float* p = small_m ? C + int64_t(c) * ldc + j : C + int64_t(j) * ldc + c;
        *p = merge(alpha, T[size_t(c) * ldt + (j - jt)], beta, p);
      }
  });
}
#undef BL_STARGET
#endif

}  // namespace

bool sgemm_skinny(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
                  int ldb, float beta, float* C, int ldc) {
#if defined(__x86_64__)
  static const bool ok = cpu_features().avx2_fma();
  if (!ok || M <= 0 || N <= 0 || K < kMinK || alpha == 0.0f) return false;
  if (!ta && N <= kMaxSmall) {
    dot_case(tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return true;
  }
  if (ta && !tb && (M <= kMaxSmall || N <= kMaxSmall)) {
    axpy_case(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return true;
  }
#else
  (void)ta, (void)tb, (void)M, (void)N, (void)K, (void)alpha, (void)A, (void)lda, (void)B, (void)ldb,
      (void)beta, (void)C, (void)ldc;
#endif
  return false;
}

}  // namespace bl::cpu
