// Frozen-weight GEMM with bfloat16 weights on the CPU (Backend::gemm_bf16w).
// The weights are widened to float32 (exact) a column block of C at a time,
// into a bounded thread-local panel, and multiplied by the float32 GEMM: the
// CPU reference never rounds the activations (the CUDA path rounds them to
// bf16 for the tensor cores; see backend.h).
#include <algorithm>
#include <vector>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/gemm.h"
#include "core/dtype.h"

namespace bl::cpu {

void gemm_bf16w(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
                const uint16_t* W, int ldw, float beta, float* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {  // no product: C = beta C, the float32 GEMM's rule
    sgemm(ta, tb, M, N, 0, alpha, A, lda, nullptr, 1, beta, C, ldc);
    return;
  }
  // Columns of C per panel: about 1M weights (4 MB of float32) per block.
  const int nb = std::max(1, std::min(N, (1 << 20) / K));
  thread_local std::vector<float> panel;
  panel.resize(size_t(nb) * size_t(K));
  for (int n0 = 0; n0 < N; n0 += nb) {
    const int n = std::min(nb, N - n0);
    if (tb) {
      // op(W) = W^T, W is N x K: rows n0..n0+n of W, stored n x K.
      for (int i = 0; i < n; ++i) {
        const uint16_t* src = W + size_t(n0 + i) * size_t(ldw);
        float* dst = panel.data() + size_t(i) * size_t(K);
        for (int k = 0; k < K; ++k) dst[k] = bf16_to_f32(src[k]);
      }
      sgemm(ta, true, M, n, K, alpha, A, lda, panel.data(), K, beta, C + n0, ldc);
    } else {
      // W is K x N: columns n0..n0+n, stored K x n.
      for (int k = 0; k < K; ++k) {
        const uint16_t* src = W + size_t(k) * size_t(ldw) + size_t(n0);
        float* dst = panel.data() + size_t(k) * size_t(n);
        for (int j = 0; j < n; ++j) dst[j] = bf16_to_f32(src[j]);
      }
      sgemm(ta, false, M, n, K, alpha, A, lda, panel.data(), n, beta, C + n0, ldc);
    }
  }
}

}  // namespace bl::cpu
