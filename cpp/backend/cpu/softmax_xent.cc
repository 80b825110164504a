// Row-wise softmax cross-entropy over [N x C] logits with optional probs and
// scaled gradient outputs. Labels < 0 are ignored (loss 0, gradient 0).
#include <cmath>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/reduce.h"
#include "core/threads.h"

namespace bl::cpu {

void softmax_xent(float* loss, float* probs, float* dlogits, const float* logits,
                  const int32_t* labels, int N, int C, float dscale) {
  parallel_for(size_t(N), row_grain(C), [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) {
      const float* x = logits + i * size_t(C);
      // Max subtraction keeps exp() in range; the normaliser is summed in
      // float64 since C may be a full vocabulary.
      float mx = x[0];
      for (int c = 1; c < C; ++c) mx = x[c] > mx ? x[c] : mx;
      double sum = 0.0;
      for (int c = 0; c < C; ++c) sum += std::exp(double(x[c] - mx));
      const double lse = std::log(sum);
      // The caller validates labels < C; checking again here costs nothing and
      // keeps this function from reading outside the row.
      const int32_t lab = labels[i];
      const bool use = lab >= 0 && lab < C;
      loss[i] = use ? float(lse - double(x[lab] - mx)) : 0.0f;
      if (probs || dlogits) {
        const double inv = 1.0 / sum;
        float* p = probs ? probs + i * size_t(C) : nullptr;
        float* dl = dlogits ? dlogits + i * size_t(C) : nullptr;
        for (int c = 0; c < C; ++c) {
          const double pc = std::exp(double(x[c] - mx)) * inv;
          if (p) p[c] = float(pc);
          if (dl) dl[c] = use ? float((pc - (c == lab ? 1.0 : 0.0)) * dscale) : 0.0f;
        }
      }
    }
  });
}

}  // namespace bl::cpu
