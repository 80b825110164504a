// K-FAC factor building blocks on the CPU (Backend::token_reduce,
// kfac_accumulate, gram64): the arithmetic the Laplace accumulator used to do
// inline, moved behind the seam so that on a GPU the activations and output
// gradients never leave the device. float64 where sums run over many rows.
#include <algorithm>
#include <vector>

#include "backend/cpu/blas_loader.h"
#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/gemm.h"
#include "core/threads.h"

namespace bl::cpu {

void token_reduce(float* out, const float* X, const uint8_t* mask, const int32_t* ex, int n, int T, int d,
                  bool mean) {
  const size_t D = size_t(d), Tn = size_t(T);
  // One example per chunk item; each output element sums its tokens in t
  // order, so the result does not depend on the thread split. Chunks of at
  // least ~1M elements: the loop streams X once (memory-bound), and waking
  // workers for less measured slower than one thread on a busy machine.
  parallel_for(size_t(n), std::max<size_t>(1, (size_t(1) << 20) / (D * Tn + 1)), [&](size_t i0, size_t i1) {
    std::vector<double> acc(D);
    for (size_t i = i0; i < i1; ++i) {
      std::fill(acc.begin(), acc.end(), 0.0);
      const size_t e = size_t(ex[i]);
      int nt = 0;
      for (size_t t = 0; t < Tn; ++t) {
        const size_t row = e * Tn + t;
        if (mask && !mask[row]) continue;
        ++nt;
        const float* xr = X + row * D;
        for (size_t j = 0; j < D; ++j) acc[j] += double(xr[j]);
      }
      const double f = (mean && nt > 0) ? 1.0 / nt : 1.0;
      float* o = out + i * D;
      for (size_t j = 0; j < D; ++j) o[j] = float(acc[j] * f);
    }
  });
}

void kfac_accumulate(double* S, const float* X, int n, int d, int ldx, double scale, float* work) {
  if (n <= 0 || d <= 0 || scale == 0) return;
  // The batch Gram in float32 (BLAS speed; one batch's sum is short), the
  // running sum in float64 (it spans a whole data set).
  sgemm(true, false, d, d, n, 1.0f, X, ldx, X, ldx, 0.0f, work, d);
  const size_t DD = size_t(d) * size_t(d);
  for (size_t i = 0; i < DD; ++i) S[i] += scale * double(work[i]);
}

void gram64(double* G, const double* M, int d, int n, int ldm) {
  if (n <= 0) return;
  const size_t Nn = size_t(n), ld = size_t(ldm);
  // BLAS for products big enough to repay the call (the threshold of the
  // laplace float64 helpers, so both routes give the same bits), loops below.
  const bool big = double(n) * double(n) * double(d) >= 32768.0;
  if (d > 0 && big && blas_dgemm(true, false, n, n, d, 1.0, M, ldm, M, ldm, 0.0, G, n)) {
    // Mirror the upper triangle: the two agree only to rounding.
    for (size_t i = 0; i < Nn; ++i)
      for (size_t j = 0; j < i; ++j) G[i * Nn + j] = G[j * Nn + i];
    return;
  }
  parallel_for(Nn, 1, [&](size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; ++i) {
      double* Gi = G + i * Nn;
      std::fill(Gi + i, Gi + Nn, 0.0);
      for (size_t r = 0; r < size_t(d); ++r) {
        const double* Mr = M + r * ld;
        const double a = Mr[i];
        if (a == 0) continue;
        for (size_t j = i; j < Nn; ++j) Gi[j] += a * Mr[j];
      }
    }
  });
  for (size_t i = 0; i < Nn; ++i)
    for (size_t j = 0; j < i; ++j) G[i * Nn + j] = G[j * Nn + i];
}

}  // namespace bl::cpu
