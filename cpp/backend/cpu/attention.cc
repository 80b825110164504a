// Causal multi-head attention with key padding and grouped-query heads.
// For each (example b, query head h) the scores S = scale * Q K^T are formed
// with SGEMM, masked (causal, padding), softmaxed row by row into the saved
// probabilities P [T x T], and out = P V is a second SGEMM. The backward reuses
// P:  dV = P^T dO,  dP = dO V^T,  dS = P * (dP - rowsum(dP * P)),
//     dQ = scale * dS K,  dK = scale * dS^T Q.
// Query heads h share key/value head g = h / (H / Hkv).
//
// Causality: query rows are processed in tiles of kTile; a tile [t0, t1) only
// needs keys [0, t1), so every GEMM is restricted to those columns (about half
// the arithmetic of full T x T products for long sequences).
//
// Threads: work items are (b, h) pairs (forward) and (b, kv head) pairs
// (backward); inside a worker the built-in GEMM is called directly, single-
// threaded. Measured on the shared 2-core Zen 3 box at B=4, T=256, H=8, hd=64
// (fwd+bwd): 25-40 ms this way; routing the same calls through sgemm()
// (multi-threaded OpenBLAS at these sizes) took 37-47 ms on a quiet machine
// but 450-600 ms under load, when OpenBLAS's spinning threads compete with
// the pool's workers. The built-in path is never worse and does not degrade.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backend/cpu/cpu_features.h"
#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/gemm.h"
#include "backend/cpu/vec_exp.h"
#include "core/threads.h"

namespace bl::cpu {
namespace {

struct Layout {
  int B, T, H, Hkv, hd, group;
  int64_t ldq, ldk;  // row strides of q/out and k/v (all heads of a token are adjacent)
  explicit Layout(const AttnShape& s)
      : B(s.B), T(s.T), H(s.H), Hkv(s.Hkv), hd(s.hd), group(s.H / s.Hkv),
        ldq(int64_t(s.H) * s.hd), ldk(int64_t(s.Hkv) * s.hd) {}
  // First row of head h (or kv head g) of example b.
  size_t q_off(int b, int h) const { return size_t(b) * T * ldq + size_t(h) * hd; }
  size_t k_off(int b, int g) const { return size_t(b) * T * ldk + size_t(g) * hd; }
  size_t p_off(int b, int h) const { return (size_t(b) * H + h) * size_t(T) * T; }
};

constexpr int kTile = 64;

inline bool real(const uint8_t* m, int s) { return m == nullptr || m[s] != 0; }

// Single-threaded when called from a pool worker (nested parallel_for runs inline).
inline void gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  sgemm_builtin(ta, tb, M, N, K, alpha, A, int(lda), B, int(ldb), beta, C, int(ldc));
}

// Scores row t -> probabilities over visible keys s <= t with mask[s] == 1.
// A padded query (or, defensively, one with no visible key) gets a zero row,
// which makes its output and all its gradients zero.
void softmax_row_scalar(float* p, int t, int T, const uint8_t* m) {
  float mx = -std::numeric_limits<float>::infinity();
  if (real(m, t))
    for (int s = 0; s <= t; ++s)
      if (real(m, s) && p[s] > mx) mx = p[s];
  if (!(mx > -std::numeric_limits<float>::infinity())) {
    for (int s = 0; s < T; ++s) p[s] = 0.0f;
    return;
  }
  float sum = 0.0f;  // every term <= 1 and one term is exactly 1: float is accurate here
  for (int s = 0; s <= t; ++s) {
    float e = real(m, s) ? std::exp(p[s] - mx) : 0.0f;
    p[s] = e;
    sum += e;
  }
  float inv = 1.0f / sum;
  for (int s = 0; s <= t; ++s) p[s] *= inv;
  for (int s = t + 1; s < T; ++s) p[s] = 0.0f;
}

#if defined(__x86_64__)
// The same row with 8 keys at a time and the vector exp: libm's scalar expf
// was ~2% of a 20m training step (one exp per visible score). Arguments are
// clamped at -87 (exp's valid range): a probability below 1.6e-38 instead of
// a smaller one, far below float rounding of the row sum.
// Lanes of keys [s, s+8) that are padding: all ones where mask[s] == 0 (none
// without a mask).
BL_VTARGET_AVX2 inline __m256 pad_lanes(const uint8_t* m, int s) {
  if (!m) return _mm256_setzero_ps();
  const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(m + s));
  return _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_cvtepu8_epi32(b), _mm256_setzero_si256()));
}

BL_VTARGET_AVX2 void softmax_row_avx2(float* p, int t, int T, const uint8_t* m) {
  const float ninf = -std::numeric_limits<float>::infinity();
  const int n = t + 1;  // visible keys [0, t]
  float mx = ninf;
  if (real(m, t)) {
    __m256 vm = _mm256_set1_ps(ninf);
    int s = 0;
    for (; s + 8 <= n; s += 8)
      vm = _mm256_max_ps(vm, _mm256_blendv_ps(_mm256_loadu_ps(p + s), _mm256_set1_ps(ninf), pad_lanes(m, s)));
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, vm);
    for (float x : lanes) mx = x > mx ? x : mx;
    for (; s < n; ++s)
      if (real(m, s) && p[s] > mx) mx = p[s];
  }
  if (!(mx > ninf)) {
    for (int s = 0; s < T; ++s) p[s] = 0.0f;
    return;
  }
  const __m256 vmx = _mm256_set1_ps(mx), lo = _mm256_set1_ps(-87.0f);
  __m256 vs = _mm256_setzero_ps();
  int s = 0;
  for (; s + 8 <= n; s += 8) {
    __m256 e = exp_avx2(_mm256_max_ps(_mm256_sub_ps(_mm256_loadu_ps(p + s), vmx), lo));
    e = _mm256_andnot_ps(pad_lanes(m, s), e);
    _mm256_storeu_ps(p + s, e);
    vs = _mm256_add_ps(vs, e);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, vs);
  float sum = 0.0f;  // every term <= 1 and one term is exactly 1: float is accurate here
  for (float x : lanes) sum += x;
  for (; s < n; ++s) {
    const float e = real(m, s) ? std::exp(p[s] - mx) : 0.0f;
    p[s] = e;
    sum += e;
  }
  const __m256 vinv = _mm256_set1_ps(1.0f / sum);
  s = 0;
  for (; s + 8 <= n; s += 8) _mm256_storeu_ps(p + s, _mm256_mul_ps(_mm256_loadu_ps(p + s), vinv));
  const float inv = 1.0f / sum;
  for (; s < n; ++s) p[s] *= inv;
  for (s = n; s < T; ++s) p[s] = 0.0f;
}
#endif

void softmax_row(float* p, int t, int T, const uint8_t* m) {
#if defined(__x86_64__)
  static const bool v = cpu_features().avx2_fma();
  if (v) return softmax_row_avx2(p, t, T, m);
#endif
  softmax_row_scalar(p, t, T, m);
}

}  // namespace

size_t attention_saved_floats(const AttnShape& s) {
  return size_t(s.B) * size_t(s.H) * size_t(s.T) * size_t(s.T);
}

void attention_fwd(float* out, float* saved, const float* q, const float* k, const float* v,
                   const uint8_t* mask, const AttnShape& s, float scale) {
  const Layout L(s);
  if (L.B <= 0 || L.T <= 0 || L.H <= 0) return;
  const int T = L.T;
  // One (b, h) pair per work item: each owns its P block and its out columns.
  parallel_for(size_t(L.B) * L.H, 1, [&](size_t u0, size_t u1) {
    for (size_t u = u0; u < u1; ++u) {
      const int b = int(u / L.H), h = int(u % L.H), g = h / L.group;
      const uint8_t* m = mask ? mask + size_t(b) * T : nullptr;
      float* P = saved + L.p_off(b, h);
      const float* qb = q + L.q_off(b, h);
      const float* kb = k + L.k_off(b, g);
      const float* vb = v + L.k_off(b, g);
      float* ob = out + L.q_off(b, h);
      for (int t0 = 0; t0 < T; t0 += kTile) {
        const int t1 = std::min(T, t0 + kTile), nt = t1 - t0;
        float* Pt = P + size_t(t0) * T;
        // scores of rows [t0, t1) against keys [0, t1); softmax_row zeroes the rest of each row
        gemm(false, true, nt, t1, L.hd, scale, qb + t0 * L.ldq, L.ldq, kb, L.ldk, 0.0f, Pt, T);
        for (int t = t0; t < t1; ++t) softmax_row(P + size_t(t) * T, t, T, m);
        gemm(false, false, nt, L.hd, t1, 1.0f, Pt, T, vb, L.ldk, 0.0f, ob + t0 * L.ldq, L.ldq);
      }
    }
  });
}

void attention_bwd(float* dq, float* dk, float* dv, const float* dout, const float* saved,
                   const float* q, const float* k, const float* v, const uint8_t* mask,
                   const AttnShape& s, float scale) {
  const Layout L(s);
  if (L.B <= 0 || L.T <= 0 || L.H <= 0) return;
  const int T = L.T;
  // One (b, kv head) pair per work item: it owns dk/dv of that kv head, which
  // all `group` query heads accumulate into, so no two threads share an output.
  parallel_for(size_t(L.B) * L.Hkv, 1, [&](size_t u0, size_t u1) {
    // dP / dS for one row tile (kTile x T): the only scratch, one per worker.
    std::vector<float> dS((dq || dk) ? size_t(std::min(T, kTile)) * T : 0);
    for (size_t u = u0; u < u1; ++u) {
      const int b = int(u / L.Hkv), g = int(u % L.Hkv);
      const float* kb = k + L.k_off(b, g);
      const float* vb = v + L.k_off(b, g);
      float* dkb = dk ? dk + L.k_off(b, g) : nullptr;
      float* dvb = dv ? dv + L.k_off(b, g) : nullptr;
      for (int h = g * L.group; h < (g + 1) * L.group; ++h) {
        const float* P = saved + L.p_off(b, h);
        const float* qb = q + L.q_off(b, h);
        const float* dO = dout + L.q_off(b, h);
        float* dqb = dq ? dq + L.q_off(b, h) : nullptr;
        for (int t0 = 0; t0 < T; t0 += kTile) {
          const int t1 = std::min(T, t0 + kTile), nt = t1 - t0;
          const float* Pt = P + size_t(t0) * T;
          const float* dOt = dO + t0 * L.ldq;
          // dV[0:t1] += P[t0:t1, 0:t1]^T dO[t0:t1]
          if (dvb) gemm(true, false, t1, L.hd, nt, 1.0f, Pt, T, dOt, L.ldq, 1.0f, dvb, L.ldk);
          if (!dqb && !dkb) continue;
          float* dP = dS.data();
          gemm(false, true, nt, t1, L.hd, 1.0f, dOt, L.ldq, vb, L.ldk, 0.0f, dP, T);
          for (int t = t0; t < t1; ++t) {
            const float* p = P + size_t(t) * T;
            float* r = dP + size_t(t - t0) * T;
            // Only keys s <= t can be non-zero in a causal row; the row sum is
            // taken in float64 (T terms of mixed sign).
            double acc = 0.0;
            for (int j = 0; j <= t; ++j) acc += double(r[j] * p[j]);
            const float c = float(acc);
            for (int j = 0; j <= t; ++j) r[j] = p[j] * (r[j] - c);
            for (int j = t + 1; j < t1; ++j) r[j] = 0.0f;
          }
          // dQ[t0:t1] += scale dS K[0:t1];  dK[0:t1] += scale dS^T Q[t0:t1]
          if (dqb) gemm(false, false, nt, L.hd, t1, scale, dP, T, kb, L.ldk, 1.0f, dqb + t0 * L.ldq, L.ldq);
          if (dkb) gemm(true, false, t1, L.hd, nt, scale, dP, T, qb + t0 * L.ldq, L.ldq, 1.0f, dkb, L.ldk);
        }
      }
    }
  });
}

}  // namespace bl::cpu
