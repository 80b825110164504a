// Inverted dropout (LoRA dropout). The keep mask is a pure function of
// (seed, element index) via bl::uniform01, so forward and backward (and every
// backend) draw the same mask without storing it.
#include "backend/cpu/cpu_ops.h"
#include "core/threads.h"

namespace bl::cpu {
namespace {
constexpr size_t kGrain = size_t(1) << 13;
}

void dropout_fwd(float* out, const float* x, int64_t n, float p, uint64_t seed) {
  const float keep_scale = 1.0f / (1.0f - p);
  parallel_for(size_t(n), kGrain, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i)
      out[i] = uniform01(seed, i) >= p ? x[i] * keep_scale : 0.0f;  // out may alias x
  });
}

void dropout_bwd(float* dx, const float* dout, int64_t n, float p, uint64_t seed) {
  const float keep_scale = 1.0f / (1.0f - p);
  parallel_for(size_t(n), kGrain, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i)
      if (uniform01(seed, i) >= p) dx[i] += dout[i] * keep_scale;
  });
}

}  // namespace bl::cpu
