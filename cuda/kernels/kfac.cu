// See kfac.cuh. The GEMM-shaped steps go through CudaBackend::gemm / dgemm /
// gemm_strided_batched (cuBLAS); the reshaping steps are small kernels here.
#include <cuda_runtime.h>

#include "core/error.h"
#include "cuda_backend.h"
#include "kernels/common.cuh"
#include "kernels/kfac.cuh"

namespace bl::cuda::kfac {
namespace {

// out[b, c] = (sum_t m_bt X[b*T+t, c]) / (mean ? max(count_b, 1) : 1)
__global__ void reduce_tokens_k(float* __restrict__ out, const float* __restrict__ X, const uint8_t* __restrict__ mask,
                                int B, int T, int d, bool mean) {
  for (int b = blockIdx.y; b < B; b += gridDim.y) {
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < d; c += gridDim.x * blockDim.x) {
      float acc = 0.f;
      int count = 0;
      for (int t = 0; t < T; ++t) {
        const int64_t row = int64_t(b) * T + t;
        if (mask && !mask[row]) continue;
        acc += X[row * d + c];
        ++count;
      }
      out[int64_t(b) * d + c] = mean ? (count ? acc / float(count) : 0.f) : acc;
    }
  }
}

// M[i, j] = j < k ? L[i, j] : X[j - k, i]   (i < d, j < k+m)
__global__ void concat_k(double* __restrict__ M, const double* __restrict__ L, const float* __restrict__ X, int d, int k,
                         int m) {
  const int km = k + m;
  const int64_t total = int64_t(d) * km;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = e / km;
    const int j = int(e - i * km);
    M[e] = j < k ? L[i * k + j] : double(X[int64_t(j - k) * d + i]);
  }
}

cudaStream_t stream_of(CudaBackend& be) { return be.stream(); }

}  // namespace

void factor_update(CudaBackend& be, float* S, const float* X, int n, int d, int ldx, float alpha, float beta) {
  BL_CHECK(n >= 0 && d >= 0 && ldx >= d, code::kInvalidArgument, "kfac factor_update: bad sizes n=", n, " d=", d,
           " ldx=", ldx);
  // S[d x d] = alpha * X^T X + beta * S: op(A) = X^T (A = X is n x d, ta).
  be.gemm(true, false, d, d, n, alpha, X, ldx, X, ldx, beta, S, d);
}

void reduce_tokens(CudaBackend& be, float* out, const float* X, const uint8_t* mask, int B, int T, int d, bool mean) {
  BL_CHECK(B >= 0 && T >= 0 && d >= 0, code::kInvalidArgument, "kfac reduce_tokens: bad sizes");
  if (B == 0 || d == 0) return;
  auto lk = be.lock();
  be.enter();
  dim3 grid(unsigned((d + 255) / 256), unsigned(B < 65535 ? B : 65535));
  reduce_tokens_k<<<grid, 256, 0, stream_of(be)>>>(out, X, mask, B, T, d, mean);
  check_launch("kfac reduce_tokens");
}

void lowrank_concat(CudaBackend& be, double* M, const double* L, const float* X, int d, int k, int m) {
  BL_CHECK(d >= 0 && k >= 0 && m >= 0, code::kInvalidArgument, "kfac lowrank_concat: bad sizes");
  if (d == 0 || k + m == 0) return;
  auto lk = be.lock();
  be.enter();
  concat_k<<<grid_1d(int64_t(d) * (k + m), 256), 256, 0, stream_of(be)>>>(M, L, X, d, k, m);
  check_launch("kfac lowrank_concat");
}

void lowrank_gram(CudaBackend& be, double* G, const double* M, int d, int km) {
  // G[km x km] = M^T M, M is d x km.
  be.dgemm(true, false, km, km, d, 1.0, M, km, M, km, 0.0, G, km);
}

void lowrank_apply(CudaBackend& be, double* L_new, const double* M, const double* Vk, int d, int km, int k) {
  be.dgemm(false, false, d, k, km, 1.0, M, km, Vk, k, 0.0, L_new, k);
}

void jacobian_project(CudaBackend& be, float* P, const float* G, const float* X, const float* Ug, const float* Ua,
                      int C, int Bn, int T, int dout, int din, int kg, int ka) {
  BL_CHECK(C >= 0 && Bn >= 0 && T >= 0 && dout > 0 && din > 0 && kg >= 0 && ka >= 0, code::kInvalidArgument,
           "kfac jacobian_project: bad sizes");
  const int64_t rows = int64_t(Bn) * T, grows = rows * C;
  BL_CHECK(grows < (int64_t(1) << 31), code::kUnsupported, "kfac jacobian_project: C*Bn*T too large");
  if (C == 0 || Bn == 0 || kg == 0 || ka == 0) return;
  auto lk = be.lock();
  // Scratch: Gp [C*Bn*T x kg] then Xp [Bn*T x ka].
  auto* Gp = static_cast<float*>(be.scratch(sizeof(float) * size_t(grows * kg + rows * ka)));
  float* Xp = Gp + grows * kg;
  be.gemm(false, false, int(rows), ka, din, 1.f, X, din, Ua, ka, 0.f, Xp, ka);    // Xp = X Ua
  be.gemm(false, false, int(grows), kg, dout, 1.f, G, dout, Ug, kg, 0.f, Gp, kg);  // Gp = G Ug
  for (int c = 0; c < C; ++c) {
    // P[n, c] = Gp[c, n]^T Xp[n]: (kg x T) (T x ka), batched over n.
    be.gemm_strided_batched(true, false, kg, ka, T, 1.f, Gp + int64_t(c) * rows * kg, kg, int64_t(T) * kg, Xp, ka,
                            int64_t(T) * ka, 0.f, P + int64_t(c) * kg * ka, ka, int64_t(C) * kg * ka, Bn);
  }
}

}  // namespace bl::cuda::kfac
