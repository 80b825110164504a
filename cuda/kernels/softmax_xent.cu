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
    const float lse = mx + float(log(se));
    const int y = labels[i];
    const bool valid = y >= 0 && y < C;
    if (threadIdx.x == 0) loss[i] = valid ? lse - row[y] : 0.f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
      const float p = expf(row[c] - lse);
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
