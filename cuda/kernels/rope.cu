// See rope.cuh. One thread per rotated pair. The angle is formed in float as
// pos * inv_freq (like the CPU reference) and sincosf is the accurate variant:
// no --use_fast_math, so large positions keep their precision.
#include "kernels/common.cuh"
#include "kernels/rope.cuh"

namespace bl::cuda {
namespace {
template <bool kInverse>
__global__ void rope_k(float* x, const int32_t* __restrict__ pos, const float* __restrict__ inv_freq, int N, int H,
                       int hd) {
  const int half = hd / 2;
  const int64_t total = int64_t(N) * H * half;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int j = int(e % half);
    const int64_t rh = e / half;  // row * H + head
    const int64_t i = rh / H;
    float sn, cs;
    sincosf(float(pos[i]) * inv_freq[j], &sn, &cs);
    float* p = x + rh * hd;
    const float a = p[j], b = p[j + half];
    if (kInverse) {
      p[j] = a * cs + b * sn;
      p[j + half] = b * cs - a * sn;
    } else {
      p[j] = a * cs - b * sn;
      p[j + half] = b * cs + a * sn;
    }
  }
}
}  // namespace

void rope_fwd(cudaStream_t s, float* x, const int32_t* pos, const float* inv_freq, int N, int H, int hd) {
  if (N <= 0 || H <= 0 || hd < 2) return;
  rope_k<false><<<grid_1d(int64_t(N) * H * (hd / 2), 256), 256, 0, s>>>(x, pos, inv_freq, N, H, hd);
  check_launch("rope_fwd");
}

void rope_bwd(cudaStream_t s, float* dx, const int32_t* pos, const float* inv_freq, int N, int H, int hd) {
  if (N <= 0 || H <= 0 || hd < 2) return;
  rope_k<true><<<grid_1d(int64_t(N) * H * (hd / 2), 256), 256, 0, s>>>(dx, pos, inv_freq, N, H, hd);
  check_launch("rope_bwd");
}

}  // namespace bl::cuda
