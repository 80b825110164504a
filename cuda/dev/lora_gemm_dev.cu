// GEMM / LoRA harness over the whole CudaBackend (cuBLAS via the dlopen
// loader): checks the row-major -> column-major mapping for every (ta, tb),
// leading dimensions, K = 0 and beta = 0 rules, strided batches, the bf16
// frozen-weight path, float64 dgemm, the K-FAC / predictive helpers
// (cuda/kernels/kfac.cuh) and the small backend ops, all against float64 CPU
// references; the LoRA branch ops (lora_fwd / lora_bwd, fused and cuBLAS
// fallback); then times a LoRA layer y = x W^T + s (x A^T) B^T with W in
// float32 (FP32 and TF32 cuBLAS) and in bf16 (tensor cores).
// deps: all
#include <cstring>

#include "core/dtype.h"
#include "core/error.h"
#include "cuda_backend.h"
#include "dev/dev_common.cuh"
#include "kernels/kfac.cuh"

namespace {

using bl::CudaBackend;

// Row-major float64 reference of C = alpha op(A) op(B) + beta C.
template <class TA, class TB>
void ref_gemm(bool ta, bool tb, int M, int N, int K, double alpha, const TA* A, int lda, const TB* B, int ldb,
              double beta, std::vector<double>& C, int ldc) {
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      double acc = 0;
      for (int k = 0; k < K; ++k) {
        double a = ta ? double(A[size_t(k) * lda + i]) : double(A[size_t(i) * lda + k]);
        double b = tb ? double(B[size_t(j) * ldb + k]) : double(B[size_t(k) * ldb + j]);
        acc += a * b;
      }
      double& c = C[size_t(i) * ldc + j];
      c = alpha * acc + (beta == 0 ? 0.0 : beta * c);
    }
}

template <class T>
std::vector<double> widen(const std::vector<T>& v) { return std::vector<double>(v.begin(), v.end()); }

template <class T>
T* up(CudaBackend& be, const std::vector<T>& h) {
  T* d = static_cast<T*>(be.alloc(h.size() * sizeof(T)));
  be.to_device(d, h.data(), h.size() * sizeof(T));
  return d;
}
template <class T>
std::vector<T> down(CudaBackend& be, const T* d, size_t n) {
  std::vector<T> h(n);
  be.to_host(h.data(), d, n * sizeof(T));
  return h;
}

std::vector<float> round_bf16(const std::vector<float>& v) {
  std::vector<float> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = bl::bf16_to_f32(bl::f32_to_bf16(v[i]));
  return r;
}

void check_gemm(CudaBackend& be) {
  std::printf(" gemm mapping\n");
  const int M = 67, N = 45, K = 129;
  for (int t = 0; t < 4; ++t) {
    const bool ta = t & 1, tb = t & 2;
    const int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;
    auto A = dev::randn(size_t(ta ? K : M) * lda, 21 + t), B = dev::randn(size_t(tb ? N : K) * ldb, 31 + t);
    auto C = dev::randn(size_t(M) * ldc, 41 + t);
    auto ref = widen(C);
    ref_gemm(ta, tb, M, N, K, 0.7, A.data(), lda, B.data(), ldb, 0.3, ref, ldc);
    float *dA = up(be, A), *dB = up(be, B), *dC = up(be, C);
    be.gemm(ta, tb, M, N, K, 0.7f, dA, lda, dB, ldb, 0.3f, dC, ldc);
    char what[64];
    std::snprintf(what, sizeof what, "gemm ta=%d tb=%d (padded ld)", int(ta), int(tb));
    dev::check(what, down(be, dC, C.size()), ref, 1e-4, 1e-4);
    // gemm_bf16w: the same product with A and B rounded to bf16.
    auto A16 = round_bf16(A), B16f = round_bf16(B);
    std::vector<uint16_t> B16(B.size());
    for (size_t i = 0; i < B.size(); ++i) B16[i] = bl::f32_to_bf16(B[i]);
    auto ref16 = widen(C);
    ref_gemm(ta, tb, M, N, K, 0.7, A16.data(), lda, B16f.data(), ldb, 0.3, ref16, ldc);
    be.to_device(dC, C.data(), C.size() * 4);
    uint16_t* dB16 = up(be, B16);
    be.gemm_bf16w(ta, tb, M, N, K, 0.7f, dA, lda, dB16, ldb, 0.3f, dC, ldc);
    std::snprintf(what, sizeof what, "gemm_bf16w ta=%d tb=%d", int(ta), int(tb));
    dev::check(what, down(be, dC, C.size()), ref16, 1e-4, 1e-4);
    for (void* p : {(void*)dA, (void*)dB, (void*)dC, (void*)dB16}) be.dealloc(p);
  }
  // K = 0: C = beta C; beta = 0 clears NaNs (C is not read).
  {
    std::vector<float> C(6 * 4, 2.f);
    C[5] = NAN;
    float* dC = up(be, C);
    be.gemm(false, false, 6, 4, 0, 1.f, nullptr, 1, nullptr, 4, 0.5f, dC, 4);
    auto got = down(be, dC, C.size());
    std::vector<double> ref(C.size(), 1.0);
    ref[5] = NAN;
    got[5] = 0;
    ref[5] = 0;
    dev::check("gemm K=0 scales C by beta", got, ref, 0, 0);
    float A[6 * 3], B[3 * 4];
    for (float& x : A) x = 1.f;
    for (float& x : B) x = 1.f;
    float *dA = static_cast<float*>(be.alloc(sizeof A)), *dB = static_cast<float*>(be.alloc(sizeof B));
    be.to_device(dA, A, sizeof A);
    be.to_device(dB, B, sizeof B);
    be.fill(dC, NAN, 24);
    be.gemm(false, false, 6, 4, 3, 1.f, dA, 3, dB, 4, 0.f, dC, 4);
    dev::check("gemm beta=0 ignores NaN in C", down(be, dC, 24), std::vector<double>(24, 3.0), 0, 0);
    for (void* p : {(void*)dA, (void*)dB, (void*)dC}) be.dealloc(p);
  }
  // Strided batch with ta.
  {
    const int b = 3, m = 17, n = 9, k = 33;
    auto A = dev::randn(size_t(b) * k * m, 51), B = dev::randn(size_t(b) * k * n, 52), C = dev::randn(size_t(b) * m * n, 53);
    auto ref = widen(C);
    for (int i = 0; i < b; ++i) {
      std::vector<double> Ci(ref.begin() + size_t(i) * m * n, ref.begin() + size_t(i + 1) * m * n);
      ref_gemm(true, false, m, n, k, 1.0, A.data() + size_t(i) * k * m, m, B.data() + size_t(i) * k * n, n, 1.0, Ci, n);
      std::copy(Ci.begin(), Ci.end(), ref.begin() + size_t(i) * m * n);
    }
    float *dA = up(be, A), *dB = up(be, B), *dC = up(be, C);
    be.gemm_strided_batched(true, false, m, n, k, 1.f, dA, m, int64_t(k) * m, dB, n, int64_t(k) * n, 1.f, dC, n,
                            int64_t(m) * n, b);
    dev::check("gemm_strided_batched ta=1", down(be, dC, C.size()), ref, 1e-4, 1e-4);
    for (void* p : {(void*)dA, (void*)dB, (void*)dC}) be.dealloc(p);
  }
  // dgemm, tb.
  {
    const int m = 23, n = 31, k = 40;
    std::vector<double> A(size_t(m) * k), B(size_t(n) * k), C(size_t(m) * n, 0.0);
    auto ra = dev::randn(A.size(), 61), rb = dev::randn(B.size(), 62);
    for (size_t i = 0; i < A.size(); ++i) A[i] = ra[i] / 3.0;
    for (size_t i = 0; i < B.size(); ++i) B[i] = rb[i] / 7.0;
    auto ref = C;
    ref_gemm(false, true, m, n, k, 1.0, A.data(), k, B.data(), k, 0.0, ref, n);
    double *dA = up(be, A), *dB = up(be, B), *dC = up(be, C);
    be.dgemm(false, true, m, n, k, 1.0, dA, k, dB, k, 0.0, dC, n);
    dev::check("dgemm tb=1 (float64)", down(be, dC, C.size()), ref, 1e-12, 1e-12);
    for (void* p : {(void*)dA, (void*)dB, (void*)dC}) be.dealloc(p);
  }
}

// Backend lora_fwd / lora_bwd (fused kernels for r <= 32, cuBLAS fallback
// above) against float64 references from the definitions in backend.h, with
// non-zero starting gradients (they accumulate) and the dropout mask fused
// into dx. Runs first, on a fresh scratch grown to 1.9 MB: at the 7B MLP shape
// lora_bwd then has to grow it (it needs 2 MiB for the dA pass); the old
// max(d_in, d_out) sizing asked for 1.76 MB and wrote past the 1.9 MB buffer,
// which compute-sanitizer reports.
void check_lora(CudaBackend& be, int N, int d_in, int d_out, int r, float p) {
  std::printf(" lora_fwd/lora_bwd N=%d d_in=%d d_out=%d r=%d p=%.2f (%s)\n", N, d_in, d_out, r, p,
              r <= 32 ? "fused kernels" : "cuBLAS fallback");
  const float s = 2.f / float(r);
  const uint64_t seed = 7;
  auto x = dev::randn(size_t(N) * d_in, 401), A = dev::randn(size_t(r) * d_in, 402, 0.05f);
  auto B = dev::randn(size_t(d_out) * r, 403, 0.05f), y = dev::randn(size_t(N) * d_out, 404);
  auto g = dev::randn(size_t(N) * d_out, 405), dA0 = dev::randn(A.size(), 406), dB0 = dev::randn(B.size(), 407);
  auto dx0 = dev::randn(x.size(), 408);
  float *dx_ = up(be, x), *dA_ = up(be, A), *dB_ = up(be, B), *dy = up(be, y), *dg = up(be, g);
  float *gA = up(be, dA0), *gB = up(be, dB0), *gx = up(be, dx0);
  auto* du = static_cast<float*>(be.alloc(size_t(N) * r * 4));
  auto* dgu = static_cast<float*>(be.alloc(size_t(N) * r * 4));
  auto* work = static_cast<float*>(be.alloc(x.size() * 4));
  be.lora_fwd(dy, du, dx_, dA_, dB_, N, d_in, d_out, r, s);
  const auto u = down(be, du, size_t(N) * r);
  std::vector<double> uref(size_t(N) * r), yref(y.begin(), y.end());
  for (int n = 0; n < N; ++n)
    for (int j = 0; j < r; ++j) {
      double acc = 0;
      for (int k = 0; k < d_in; ++k) acc += double(x[size_t(n) * d_in + k]) * A[size_t(j) * d_in + k];
      uref[size_t(n) * r + j] = acc;
    }
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < d_out; ++c) {
      double acc = 0;
      for (int j = 0; j < r; ++j) acc += double(u[size_t(n) * r + j]) * B[size_t(c) * r + j];
      yref[size_t(n) * d_out + c] += s * acc;
    }
  const double tk = 1e-5 * std::sqrt(double(d_in)), tn = 1e-5 * std::sqrt(double(N));
  dev::check("lora_fwd u = x A^T", u, uref, tk, 1e-4);
  dev::check("lora_fwd y += s u B^T", down(be, dy, y.size()), yref, 1e-5, 1e-4);
  be.lora_bwd(dgu, gA, gB, gx, work, dg, dx_, du, dA_, dB_, N, d_in, d_out, r, s, p, seed);
  std::vector<double> gu(size_t(N) * r), rA(dA0.begin(), dA0.end()), rB(dB0.begin(), dB0.end());
  std::vector<double> rx(dx0.begin(), dx0.end());
  for (int n = 0; n < N; ++n)
    for (int j = 0; j < r; ++j) {
      double acc = 0;
      for (int c = 0; c < d_out; ++c) acc += double(g[size_t(n) * d_out + c]) * B[size_t(c) * r + j];
      gu[size_t(n) * r + j] = s * acc;
    }
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < d_out; ++c) {
      const double gv = s * double(g[size_t(n) * d_out + c]);
      for (int j = 0; j < r; ++j) rB[size_t(c) * r + j] += gv * u[size_t(n) * r + j];
    }
  for (int n = 0; n < N; ++n)
    for (int j = 0; j < r; ++j) {
      const double gj = gu[size_t(n) * r + j];
      for (int k = 0; k < d_in; ++k) {
        rA[size_t(j) * d_in + k] += gj * x[size_t(n) * d_in + k];
      }
    }
  const double keep_scale = p > 0.f ? double(1.0f / (1.0f - p)) : 1.0;
  for (int n = 0; n < N; ++n)
    for (int k = 0; k < d_in; ++k) {
      const uint64_t e = uint64_t(n) * d_in + k;
      if (p > 0.f && !(bl::uniform01(seed, e) >= p)) continue;
      double acc = 0;
      for (int j = 0; j < r; ++j) acc += gu[size_t(n) * r + j] * A[size_t(j) * d_in + k];
      rx[e] += acc * keep_scale;
    }
  dev::check("lora_bwd gu = s g B", down(be, dgu, gu.size()), gu, 1e-5 * std::sqrt(double(d_out)), 1e-4);
  dev::check("lora_bwd dB += s g^T u", down(be, gB, rB.size()), rB, tn, 1e-4);
  dev::check("lora_bwd dA += gu^T x", down(be, gA, rA.size()), rA, tn, 1e-4);
  dev::check(p > 0.f ? "lora_bwd dx += mask(gu A)" : "lora_bwd dx += gu A", down(be, gx, rx.size()), rx, 1e-5,
             1e-4);
  for (void* q : {(void*)dx_, (void*)dA_, (void*)dB_, (void*)dy, (void*)dg, (void*)gA, (void*)gB, (void*)gx,
                  (void*)du, (void*)dgu, (void*)work})
    be.dealloc(q);
}

void check_kfac(CudaBackend& be) {
  namespace kfac = bl::cuda::kfac;
  std::printf(" K-FAC helpers\n");
  // factor_update: S = 1*S + 2 X^T X
  {
    const int n = 50, d = 24;
    auto X = dev::randn(size_t(n) * d, 71), S = dev::randn(size_t(d) * d, 72);
    auto ref = widen(S);
    ref_gemm(true, false, d, d, n, 2.0, X.data(), d, X.data(), d, 1.0, ref, d);
    float *dX = up(be, X), *dS = up(be, S);
    kfac::factor_update(be, dS, dX, n, d, d, 2.f, 1.f);
    dev::check("factor_update S += 2 X^T X", down(be, dS, S.size()), ref, 1e-4, 1e-4);
    be.dealloc(dX);
    be.dealloc(dS);
  }
  // reduce_tokens with a mask (mean and sum).
  {
    const int B = 3, T = 5, d = 7;
    auto X = dev::randn(size_t(B) * T * d, 73);
    std::vector<uint8_t> m = {1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0};
    std::vector<double> rmean(size_t(B) * d, 0), rsum(size_t(B) * d, 0);
    for (int b = 0; b < B; ++b) {
      int cnt = 0;
      for (int t = 0; t < T; ++t)
        if (m[size_t(b) * T + t]) {
          ++cnt;
          for (int c = 0; c < d; ++c) rsum[size_t(b) * d + c] += X[(size_t(b) * T + t) * d + c];
        }
      for (int c = 0; c < d; ++c) rmean[size_t(b) * d + c] = cnt ? rsum[size_t(b) * d + c] / cnt : 0;
    }
    float *dX = up(be, X), *dO = static_cast<float*>(be.alloc(size_t(B) * d * 4));
    uint8_t* dm = up(be, m);
    kfac::reduce_tokens(be, dO, dX, dm, B, T, d, true);
    dev::check("reduce_tokens mean (masked)", down(be, dO, size_t(B) * d), rmean, 1e-6, 1e-6);
    kfac::reduce_tokens(be, dO, dX, dm, B, T, d, false);
    dev::check("reduce_tokens sum (masked)", down(be, dO, size_t(B) * d), rsum, 1e-6, 1e-6);
    for (void* p : {(void*)dX, (void*)dO, (void*)dm}) be.dealloc(p);
  }
  // low-rank: M = [L | X^T], G = M^T M, L_new = M Vk.
  {
    const int d = 40, k = 4, m = 6, km = k + m;
    auto Lf = dev::randn(size_t(d) * k, 74), X = dev::randn(size_t(m) * d, 75), Vf = dev::randn(size_t(km) * k, 76);
    std::vector<double> L(Lf.begin(), Lf.end()), V(Vf.begin(), Vf.end());
    std::vector<double> M(size_t(d) * km);
    for (int i = 0; i < d; ++i)
      for (int j = 0; j < km; ++j) M[size_t(i) * km + j] = j < k ? L[size_t(i) * k + j] : double(X[size_t(j - k) * d + i]);
    std::vector<double> G(size_t(km) * km, 0), Ln(size_t(d) * k, 0);
    ref_gemm(true, false, km, km, d, 1.0, M.data(), km, M.data(), km, 0.0, G, km);
    ref_gemm(false, false, d, k, km, 1.0, M.data(), km, V.data(), k, 0.0, Ln, k);
    double *dL = up(be, L), *dV = up(be, V);
    float* dX = up(be, X);
    double *dM = static_cast<double*>(be.alloc(M.size() * 8)), *dG = static_cast<double*>(be.alloc(G.size() * 8)),
           *dLn = static_cast<double*>(be.alloc(Ln.size() * 8));
    kfac::lowrank_concat(be, dM, dL, dX, d, k, m);
    dev::check("lowrank_concat [L | X^T]", down(be, dM, M.size()), M, 0, 0);
    kfac::lowrank_gram(be, dG, dM, d, km);
    dev::check("lowrank_gram M^T M (float64)", down(be, dG, G.size()), G, 1e-11, 1e-11);
    kfac::lowrank_apply(be, dLn, dM, dV, d, km, k);
    dev::check("lowrank_apply M Vk (float64)", down(be, dLn, Ln.size()), Ln, 1e-11, 1e-11);
    for (void* p : {(void*)dL, (void*)dV, (void*)dX, (void*)dM, (void*)dG, (void*)dLn}) be.dealloc(p);
  }
  // jacobian_project: P[n, c] = sum_t (Ug^T g)(Ua^T x)^T
  {
    const int C = 3, Bn = 2, T = 5, dout = 12, din = 10, kg = 4, ka = 3;
    auto G = dev::randn(size_t(C) * Bn * T * dout, 77), X = dev::randn(size_t(Bn) * T * din, 78);
    auto Ug = dev::randn(size_t(dout) * kg, 79), Ua = dev::randn(size_t(din) * ka, 80);
    std::vector<double> P(size_t(Bn) * C * kg * ka, 0);
    for (int n = 0; n < Bn; ++n)
      for (int c = 0; c < C; ++c)
        for (int t = 0; t < T; ++t) {
          const float* g = &G[((size_t(c) * Bn + n) * T + t) * dout];
          const float* x = &X[(size_t(n) * T + t) * din];
          for (int j = 0; j < kg; ++j) {
            double gj = 0;
            for (int o = 0; o < dout; ++o) gj += double(Ug[size_t(o) * kg + j]) * g[o];
            for (int i = 0; i < ka; ++i) {
              double xi = 0;
              for (int q = 0; q < din; ++q) xi += double(Ua[size_t(q) * ka + i]) * x[q];
              P[((size_t(n) * C + c) * kg + j) * ka + i] += gj * xi;
            }
          }
        }
    float *dG = up(be, G), *dX = up(be, X), *dUg = up(be, Ug), *dUa = up(be, Ua);
    float* dP = static_cast<float*>(be.alloc(P.size() * 4));
    kfac::jacobian_project(be, dP, dG, dX, dUg, dUa, C, Bn, T, dout, din, kg, ka);
    dev::check("jacobian_project Ug^T J Ua", down(be, dP, P.size()), P, 1e-4, 1e-4);
    for (void* p : {(void*)dG, (void*)dX, (void*)dUg, (void*)dUa, (void*)dP}) be.dealloc(p);
  }
}

void check_small_ops(CudaBackend& be) {
  std::printf(" small backend ops\n");
  const int64_t n = 100003;
  auto x = dev::randn(n, 91), y = dev::randn(n, 92);
  float *dx = up(be, x), *dy = up(be, y), *dz = static_cast<float*>(be.alloc(n * 4));
  double ss = 0;
  for (float v : x) ss += double(v) * v;
  dev::check("sum_squares (float64 accumulate)", std::vector<double>{be.sum_squares(n, dx)}, std::vector<double>{ss},
             1e-9, 1e-9);
  std::vector<double> r(n);
  for (int64_t i = 0; i < n; ++i) r[i] = y[i] + 0.25 * x[i];
  be.axpy(n, 0.25f, dx, dy);
  dev::check("axpy", down(be, dy, n), r, 1e-6, 1e-6);
  for (int64_t i = 0; i < n; ++i) r[i] = double(x[i]) + (y[i] + 0.25f * x[i]);
  be.add(n, dx, dy, dz);
  dev::check("add", down(be, dz, n), r, 1e-6, 1e-6);
  be.add(n, dz, dx, dz);  // aliasing out == a
  for (int64_t i = 0; i < n; ++i) r[i] += x[i];
  dev::check("add (out aliases a)", down(be, dz, n), r, 1e-5, 1e-6);
  be.scale(n, -2.f, dz);
  for (auto& v : r) v *= -2;
  dev::check("scale", down(be, dz, n), r, 1e-5, 1e-6);
  be.fill(dz, 3.5f, n);
  dev::check("fill", down(be, dz, n), std::vector<double>(n, 3.5), 0, 0);
  bool fin = be.all_finite(n, dx);
  float bad = INFINITY;
  be.to_device(dz + n - 1, &bad, 4);
  bool fin2 = be.all_finite(n, dz);
  bad = NAN;
  be.to_device(dz, &bad, 4);
  bool fin3 = be.all_finite(1, dz);
  const bool ok = fin && !fin2 && !fin3 && be.all_finite(0, dz);
  std::printf("  %s all_finite (finite, +Inf, NaN, empty)\n", ok ? "ok  " : "FAIL");
  if (!ok) ++dev::g_failures;
  // copy with overlapping ranges behaves like memmove
  be.to_device(dz, x.data(), n * 4);
  be.copy(dz + 7, dz, (n - 7) * 4);
  std::vector<double> mv(n);
  for (int64_t i = 0; i < n; ++i) mv[i] = i < 7 ? x[i] : x[i - 7];
  dev::check("copy (overlapping, memmove)", down(be, dz, n), mv, 0, 0);
  be.zero(dz, n * 4);
  dev::check("zero", down(be, dz, n), std::vector<double>(n, 0.0), 0, 0);
  // An impossible allocation is a typed CUDA_OOM, and the backend keeps working.
  bool oom = false;
  try {
    be.alloc(size_t(1) << 50);
  } catch (const bl::Error& e) {
    oom = e.code() == "CUDA_OOM";
    std::printf("    (alloc 1 PiB -> %s: %s)\n", e.code().c_str(), e.what());
  }
  const bool alive = be.sum_squares(n, dx) > 0;
  std::printf("  %s alloc(1 PiB) throws CUDA_OOM and the context stays usable\n", oom && alive ? "ok  " : "FAIL");
  if (!(oom && alive)) ++dev::g_failures;
  for (void* p : {(void*)dx, (void*)dy, (void*)dz}) be.dealloc(p);
}

void bench_lora(CudaBackend& be, int tokens, int d, int r) {
  // y[tokens x d] = x W^T + s (x A^T) B^T; W [d x d], A [r x d], B [d x r].
  float* x = static_cast<float*>(be.alloc(size_t(tokens) * d * 4));
  float* W = static_cast<float*>(be.alloc(size_t(d) * d * 4));
  uint16_t* W16 = static_cast<uint16_t*>(be.alloc(size_t(d) * d * 2));
  float* A = static_cast<float*>(be.alloc(size_t(r) * d * 4));
  float* B = static_cast<float*>(be.alloc(size_t(d) * r * 4));
  float* u = static_cast<float*>(be.alloc(size_t(tokens) * r * 4));
  float* y = static_cast<float*>(be.alloc(size_t(tokens) * d * 4));
  auto hx = dev::randn(size_t(tokens) * d, 3, 0.1f);
  be.to_device(x, hx.data(), hx.size() * 4);
  be.to_device(W, hx.data(), std::min(hx.size(), size_t(d) * d) * 4);
  be.f32_to_bf16(W16, W, int64_t(d) * d);
  be.fill(A, 0.01f, int64_t(r) * d);
  be.fill(B, 0.01f, int64_t(d) * r);
  be.synchronize();
  const double base = 2.0 * tokens * double(d) * d, lora = 2.0 * 2.0 * tokens * double(d) * r;
  auto lora_part = [&] {
    be.gemm(false, true, tokens, r, d, 1.f, x, d, A, d, 0.f, u, r);
    be.gemm(false, true, tokens, d, r, 2.f, u, r, B, r, 1.f, y, d);
  };
  char name[128];
  auto run = [&](const char* mode, auto&& frozen) {
    std::snprintf(name, sizeof name, "lora %s tokens%d d%d r%d", mode, tokens, d, r);
    // Events on the backend's (non-blocking) stream, see dev::time_ms.
    double ms = dev::time_ms([&] { frozen(); lora_part(); }, 3, 20, be.stream());
    dev::result("lora_gemm", name, ms, "TFLOPs", (base + lora) / ms / 1e9);
  };
  be.set_tf32(false);
  run("fp32-W fp32", [&] { be.gemm(false, true, tokens, d, d, 1.f, x, d, W, d, 0.f, y, d); });
  be.set_tf32(true);
  run("fp32-W tf32", [&] { be.gemm(false, true, tokens, d, d, 1.f, x, d, W, d, 0.f, y, d); });
  be.set_tf32(false);
  run("bf16-W tensor-core", [&] { be.gemm_bf16w(false, true, tokens, d, d, 1.f, x, d, W16, d, 0.f, y, d); });
  for (void* p : {(void*)x, (void*)W, (void*)W16, (void*)A, (void*)B, (void*)u, (void*)y}) be.dealloc(p);
}

}  // namespace

int main() {
  try {
    bool usable = false;
    std::printf("probe: %s\n", bl::cuda_probe(&usable).c_str());
    auto* be = bl::as_cuda(bl::cuda_backend());
    if (!be) {
      std::printf("error: cuda_backend() is not a CudaBackend\n");
      return 2;
    }
    std::printf("backend: %s\n", be->describe().c_str());
    be->scratch(700000);  // -> 1.9 MB, see check_lora
    check_lora(*be, 1024, 4096, 11008, 8, 0.1f);
    check_lora(*be, 1024, 11008, 4096, 8, 0.f);
    check_lora(*be, 37, 131, 67, 5, 0.25f);
    check_lora(*be, 64, 96, 80, 40, 0.25f);
    check_gemm(*be);
    check_kfac(*be);
    check_small_ops(*be);
    if (!dev::check_only()) bench_lora(*be, 8192, 4096, 16);
  } catch (const bl::Error& e) {
    std::printf("error: [%s] %s\n", e.code().c_str(), e.what());
    return 2;
  }
  return dev::finish("lora_gemm_dev");
}
