// See rope.cuh. One thread per (token row, pair index j): the angle is formed
// and reduced in float64 like the CPU reference (at positions in the
// thousands a float32 product already loses ~1e-4 rad), then the same
// cos/sin serve all H heads of the row. Consecutive threads touch consecutive
// j, so the loads of each head coalesce.
#include "kernels/common.cuh"
#include "kernels/rope.cuh"

namespace bl::cuda {
namespace {
template <bool kInverse>
__global__ void rope_k(float* x, const int32_t* __restrict__ pos, const float* __restrict__ inv_freq, int N, int H,
                       int hd) {
  const int half = hd / 2;
  const int64_t total = int64_t(N) * half;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int j = int(e % half);
    const int64_t i = e / half;
    double sd, cd;
    sincos(double(pos[i]) * double(inv_freq[j]), &sd, &cd);
    const float cs = float(cd), sn = kInverse ? -float(sd) : float(sd);
    float* row = x + i * int64_t(H) * hd;
    for (int h = 0; h < H; ++h) {
      float* p = row + int64_t(h) * hd;
      const float a = p[j], b = p[j + half];
      p[j] = a * cs - b * sn;
      p[j + half] = b * cs + a * sn;
    }
  }
}
}  // namespace

void rope_fwd(cudaStream_t s, float* x, const int32_t* pos, const float* inv_freq, int N, int H, int hd) {
  if (N <= 0 || H <= 0 || hd < 2) return;
  rope_k<false><<<grid_1d(int64_t(N) * (hd / 2), 256), 256, 0, s>>>(x, pos, inv_freq, N, H, hd);
  check_launch("rope_fwd");
}

void rope_bwd(cudaStream_t s, float* dx, const int32_t* pos, const float* inv_freq, int N, int H, int hd) {
  if (N <= 0 || H <= 0 || hd < 2) return;
  rope_k<true><<<grid_1d(int64_t(N) * (hd / 2), 256), 256, 0, s>>>(dx, pos, inv_freq, N, H, hd);
  check_launch("rope_bwd");
}

}  // namespace bl::cuda
