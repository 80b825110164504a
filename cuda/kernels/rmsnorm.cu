// See rmsnorm.cuh.
#include "kernels/common.cuh"
#include "kernels/reduce.cuh"
#include "kernels/rmsnorm.cuh"

namespace bl::cuda {
namespace {

inline int row_threads(int d) { return d <= 128 ? 32 : (d <= 1024 ? 128 : 256); }
inline unsigned row_blocks(int N) { return unsigned(N < 65535 * 4 ? N : 65535 * 4); }

__global__ void rmsnorm_fwd_k(float* __restrict__ out, float* __restrict__ rstd, const float* __restrict__ x,
                              const float* __restrict__ w, int N, int d, float eps) {
  __shared__ float sh[32];
  for (int i = blockIdx.x; i < N; i += gridDim.x) {
    const float* xr = x + int64_t(i) * d;
    float acc = 0.f;
    for (int c = threadIdx.x; c < d; c += blockDim.x) acc += xr[c] * xr[c];
    acc = block_sum(acc, sh);
    const float r = rsqrtf(acc / float(d) + eps);
    if (threadIdx.x == 0) rstd[i] = r;
    float* o = out + int64_t(i) * d;
    for (int c = threadIdx.x; c < d; c += blockDim.x) o[c] = xr[c] * r * w[c];
  }
}

// dx_j += r * g_j w_j - x_j * r^3 / d * sum_k g_k w_k x_k
__global__ void rmsnorm_bwd_dx_k(float* __restrict__ dx, const float* __restrict__ dout,
                                 const float* __restrict__ x, const float* __restrict__ w,
                                 const float* __restrict__ rstd, int N, int d) {
  __shared__ float sh[32];
  for (int i = blockIdx.x; i < N; i += gridDim.x) {
    const float* xr = x + int64_t(i) * d;
    const float* gr = dout + int64_t(i) * d;
    float acc = 0.f;
    for (int c = threadIdx.x; c < d; c += blockDim.x) acc += gr[c] * w[c] * xr[c];
    acc = block_sum(acc, sh);
    const float r = rstd[i];
    const float k = r * r * r * acc / float(d);
    float* o = dx + int64_t(i) * d;
    for (int c = threadIdx.x; c < d; c += blockDim.x) o[c] += r * gr[c] * w[c] - xr[c] * k;
  }
}
}  // namespace

void rmsnorm_fwd(cudaStream_t s, float* out, float* rstd, const float* x, const float* w, int N, int d,
                 float eps) {
  if (N <= 0 || d <= 0) return;
  rmsnorm_fwd_k<<<row_blocks(N), row_threads(d), 0, s>>>(out, rstd, x, w, N, d, eps);
  check_launch("rmsnorm_fwd");
}

size_t rmsnorm_bwd_scratch_floats(int N, int d) { return column_sums_scratch_floats(N, d); }

void rmsnorm_bwd(cudaStream_t s, float* dx, float* dw, const float* dout, const float* x, const float* w,
                 const float* rstd, int N, int d, float* scratch) {
  if (N <= 0 || d <= 0) return;
  if (dx) {
    rmsnorm_bwd_dx_k<<<row_blocks(N), row_threads(d), 0, s>>>(dx, dout, x, w, rstd, N, d);
    check_launch("rmsnorm_bwd");
  }
  // dw_c += sum_i g_ic * x_ic * rstd_i
  if (dw) column_sums(s, dw, dout, x, rstd, N, d, scratch);
}

}  // namespace bl::cuda
