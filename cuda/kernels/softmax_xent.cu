// See softmax_xent.cuh. One block per row: max, sum of exp (block reductions),
// then one pass writing probs / dlogits. Works for any C (vocabulary-sized too).
#include "kernels/common.cuh"
#include "kernels/softmax_xent.cuh"

namespace bl::cuda {
namespace {
__global__ void softmax_xent_k(float* __restrict__ loss, float* __restrict__ probs, float* __restrict__ dlogits,
                               const float* __restrict__ logits, const int32_t* __restrict__ labels, int N, int C,
                               float dscale) {
  __shared__ float sh[32];
  for (int i = blockIdx.x; i < N; i += gridDim.x) {
    const float* row = logits + int64_t(i) * C;
    float mx = -INFINITY;
    for (int c = threadIdx.x; c < C; c += blockDim.x) mx = fmaxf(mx, row[c]);
    mx = block_max(mx, sh);
    // The normaliser is summed in float64 (C may be a whole vocabulary), as on the CPU.
    __shared__ double shd[32];
    double se = 0.0;
    for (int c = threadIdx.x; c < C; c += blockDim.x) se += double(expf(row[c] - mx));
    se = block_sum(se, shd);
    // Work relative to the max, as the CPU reference does: never form
    // lse = mx + log(se) in float. Rounding that sum costs half an ulp of |mx|
    // in absolute terms (2e-6 at |mx| ~ 32, 3e-5 at ~1000), and both
    // loss = lse - row[y] and p = exp(row - lse) inherit it: the loss of a
    // confident row (log(se) ~ 1e-4) could come out 0 or off by percents.
    // row[c] - mx is the same float subtraction the CPU makes (exact for
    // logits within a factor 2 of the max); log(se) and 1/se come from the
    // float64 sum.
    const double logse = log(se);
    const float inv = float(1.0 / se);
    const int y = labels[i];
    const bool valid = y >= 0 && y < C;
    if (threadIdx.x == 0) loss[i] = valid ? float(logse - double(row[y] - mx)) : 0.f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
      const float p = expf(row[c] - mx) * inv;
      if (probs) probs[int64_t(i) * C + c] = p;
      if (dlogits) dlogits[int64_t(i) * C + c] = valid ? (p - (c == y ? 1.f : 0.f)) * dscale : 0.f;
    }
  }
}
}  // namespace

void softmax_xent(cudaStream_t s, float* loss, float* probs, float* dlogits, const float* logits,
                  const int32_t* labels, int N, int C, float dscale) {
  if (N <= 0 || C <= 0) return;
  const int threads = C <= 64 ? 32 : (C <= 1024 ? 128 : 512);
  softmax_xent_k<<<unsigned(N < 65535 * 4 ? N : 65535 * 4), threads, 0, s>>>(loss, probs, dlogits, logits, labels, N,
                                                                            C, dscale);
  check_launch("softmax_xent");
}

}  // namespace bl::cuda
