// SwiGLU activation of the LLaMA MLP: out = silu(gate) * up, silu(g) = g sigmoid(g).
#include <cmath>

#include "backend/cpu/cpu_ops.h"
#include "core/threads.h"

namespace bl::cpu {
namespace {
constexpr size_t kGrain = size_t(1) << 13;

// 1/(1+exp(-g)): for g << 0, exp(-g) overflows to +inf and the result is an
// exact 0 (never NaN), so no branch is needed.
inline float sigmoid(float g) { return 1.0f / (1.0f + std::exp(-g)); }
}  // namespace

void swiglu_fwd(float* out, const float* gate, const float* up, int64_t n) {
  parallel_for(size_t(n), kGrain, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) out[i] = gate[i] * sigmoid(gate[i]) * up[i];
  });
}

// d out / d gate = up * s * (1 + g (1 - s)),  d out / d up = g s   (s = sigmoid(g))
void swiglu_bwd(float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                int64_t n) {
  parallel_for(size_t(n), kGrain, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) {
      float g = gate[i], s = sigmoid(g), go = dout[i];
      if (dgate) dgate[i] += go * up[i] * s * (1.0f + g * (1.0f - s));
      if (dup) dup[i] += go * g * s;
    }
  });
}

}  // namespace bl::cpu
