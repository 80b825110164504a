// Causal multi-head attention with key padding and grouped-query heads.
// For each (example b, query head h) the scores S = scale * Q K^T are formed
// with one SGEMM, masked (causal, padding), softmaxed row by row into the saved
// probabilities P [T x T], and out = P V is a second SGEMM. The backward reuses
// P:  dV = P^T dO,  dP = dO V^T,  dS = P * (dP - rowsum(dP * P)),
//     dQ = scale * dS K,  dK = scale * dS^T Q.
// Query heads h share key/value head g = h / (H / Hkv).
#include <cmath>
#include <limits>
#include <vector>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/gemm.h"
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

inline bool real(const uint8_t* m, int s) { return m == nullptr || m[s] != 0; }

// Scores row t -> probabilities over visible keys s <= t with mask[s] == 1.
// A padded query (or, defensively, one with no visible key) gets a zero row,
// which makes its output and all its gradients zero.
void softmax_row(float* p, int t, int T, const uint8_t* m) {
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
      sgemm(false, true, T, T, L.hd, scale, q + L.q_off(b, h), int(L.ldq), k + L.k_off(b, g),
            int(L.ldk), 0.0f, P, T);
      for (int t = 0; t < T; ++t) softmax_row(P + size_t(t) * T, t, T, m);
      sgemm(false, false, T, L.hd, T, 1.0f, P, T, v + L.k_off(b, g), int(L.ldk), 0.0f,
            out + L.q_off(b, h), int(L.ldq));
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
    std::vector<float> dS((dq || dk) ? size_t(T) * T : 0);
    for (size_t u = u0; u < u1; ++u) {
      const int b = int(u / L.Hkv), g = int(u % L.Hkv);
      const float* kb = k + L.k_off(b, g);
      const float* vb = v + L.k_off(b, g);
      for (int h = g * L.group; h < (g + 1) * L.group; ++h) {
        const float* P = saved + L.p_off(b, h);
        const float* dO = dout + L.q_off(b, h);
        if (dv)
          sgemm(true, false, T, L.hd, T, 1.0f, P, T, dO, int(L.ldq), 1.0f, dv + L.k_off(b, g),
                int(L.ldk));
        if (!dq && !dk) continue;
        float* dP = dS.data();
        sgemm(false, true, T, T, L.hd, 1.0f, dO, int(L.ldq), vb, int(L.ldk), 0.0f, dP, T);
        for (int t = 0; t < T; ++t) {
          const float* p = P + size_t(t) * T;
          float* r = dP + size_t(t) * T;
          // Only s <= t can be non-zero in a causal row.
          double acc = 0.0;
          for (int j = 0; j <= t; ++j) acc += double(r[j] * p[j]);
          const float c = float(acc);
          for (int j = 0; j <= t; ++j) r[j] = p[j] * (r[j] - c);
          for (int j = t + 1; j < T; ++j) r[j] = 0.0f;
        }
        if (dq)
          sgemm(false, false, T, L.hd, T, scale, dP, T, kb, int(L.ldk), 1.0f, dq + L.q_off(b, h),
                int(L.ldq));
        if (dk)
          sgemm(true, false, T, L.hd, T, scale, dP, T, q + L.q_off(b, h), int(L.ldq), 1.0f,
                dk + L.k_off(b, g), int(L.ldk));
      }
    }
  });
}

}  // namespace bl::cpu
