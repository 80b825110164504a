// Per-feature bias (Qwen2 q/k/v projections): x[i] += bias, and the bias
// gradient, a column sum over token rows.
#include <algorithm>
#include <vector>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/reduce.h"
#include "core/threads.h"

namespace bl::cpu {

void add_bias(float* x, const float* bias, int N, int d) {
  parallel_for(size_t(N), row_grain(d), [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) {
      float* xi = x + i * size_t(d);
      for (int k = 0; k < d; ++k) xi[k] += bias[k];
    }
  });
}

// Columns are split between threads (each owns its slice of dbias) and summed
// in float64: N is the token count and may be large.
void bias_bwd(float* dbias, const float* dout, int N, int d) {
  if (N <= 0) return;
  size_t grain = std::max<size_t>(64, (size_t(1) << 14) / size_t(N));
  parallel_for(size_t(d), grain, [&](size_t c0, size_t c1) {
    std::vector<double> acc(c1 - c0, 0.0);
    for (int i = 0; i < N; ++i) {
      const float* gi = dout + size_t(i) * size_t(d);
      for (size_t c = c0; c < c1; ++c) acc[c - c0] += gi[c];
    }
    for (size_t c = c0; c < c1; ++c) dbias[c] += float(acc[c - c0]);
  });
}

}  // namespace bl::cpu
