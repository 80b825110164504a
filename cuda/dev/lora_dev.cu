// Harness for the rank-r LoRA kernels (cuda/kernels/lora.cu: down, up with
// the fused dropout mask, the deterministic outer product) and the K-FAC
// factor helpers (cuda/kernels/kfac_factor.cu: token reduction, float64
// accumulation, mirroring). Each is checked against a float64 CPU reference
// restated here from the op's definition (backend/backend.h), including
// strided (transposed) weight views and odd tails. The down projection is
// also timed against a naive version 0 (one thread per output element, so X
// is read r times): the production kernel's point is to read X once, and its
// bandwidth should approach the HBM rate. The outer product is run twice to
// check it is bit-for-bit deterministic (no atomics). The scratch that lora_bwd
// shares between its two outer products is checked for size (host sweep, then
// a guard zone on the device).
// deps: cuda/kernels/lora.cu cuda/kernels/kfac_factor.cu cuda/kernels/reduce.cu
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>

#include "backend/backend.h"
#include "dev/dev_common.cuh"
#include "kernels/kfac_factor.cuh"
#include "kernels/lora.cuh"

namespace {

constexpr double kGB = 1e9;

__global__ void naive_down_k(float* out, const float* X, const float* W, int64_t sj, int64_t sk, int N, int K, int r,
                             float alpha) {
  const int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (e >= int64_t(N) * r) return;
  const int n = int(e / r), j = int(e % r);
  float acc = 0.f;
  for (int k = 0; k < K; ++k) acc += X[int64_t(n) * K + k] * W[j * sj + k * sk];
  out[e] = alpha * acc;
}

// W is stored either as [r x K] (sj = K, sk = 1) or transposed [K x r] (sj = 1, sk = r).
void check_down(int N, int K, int r, bool transposed, bool time_it) {
  std::printf(" lora_down N=%d K=%d r=%d%s\n", N, K, r, transposed ? " (W transposed view)" : "");
  const float alpha = 0.75f;
  auto X = dev::randn(size_t(N) * K, 101), W = dev::randn(size_t(r) * K, 102, 0.1f);
  const int64_t sj = transposed ? 1 : K, sk = transposed ? r : 1;
  std::vector<double> ref(size_t(N) * r);
  for (int n = 0; n < N; ++n)
    for (int j = 0; j < r; ++j) {
      double acc = 0;
      for (int k = 0; k < K; ++k) acc += double(X[size_t(n) * K + k]) * W[j * sj + k * sk];
      ref[size_t(n) * r + j] = alpha * acc;
    }
  float *dX = dev::to_gpu(X), *dW = dev::to_gpu(W), *dout = nullptr;
  DEV_CUDA(cudaMalloc(&dout, size_t(N) * r * 4));
  const double tol = 1e-6 * std::sqrt(double(K));
  bl::cuda::lora_down(0, dout, dX, dW, sj, sk, N, K, r, alpha);
  dev::check("lora_down", dev::from_gpu(dout, size_t(N) * r), ref, tol, 1e-5);
  naive_down_k<<<unsigned((int64_t(N) * r + 255) / 256), 256>>>(dout, dX, dW, sj, sk, N, K, r, alpha);
  DEV_CUDA(cudaGetLastError());
  dev::check("lora_down v0 naive", dev::from_gpu(dout, size_t(N) * r), ref, tol, 1e-5);
  if (time_it) {
    const double bytes = 4.0 * (double(N) * K + double(N) * r);
    const double t0 = dev::time_ms([&] {
      naive_down_k<<<unsigned((int64_t(N) * r + 255) / 256), 256>>>(dout, dX, dW, sj, sk, N, K, r, alpha);
    });
    dev::result("lora_dev", "lora_down_v0_naive", t0, "GB/s", bytes / (t0 * 1e-3) / kGB);
    const double t1 = dev::time_ms([&] { bl::cuda::lora_down(0, dout, dX, dW, sj, sk, N, K, r, alpha); });
    dev::result("lora_dev", "lora_down", t1, "GB/s", bytes / (t1 * 1e-3) / kGB);
  }
  for (float* p : {dX, dW, dout}) cudaFree(p);
}

void check_up(int N, int C, int r, float p, bool time_it) {
  std::printf(" lora_up N=%d C=%d r=%d p=%.2f\n", N, C, r, p);
  const float alpha = 1.25f;
  const uint64_t seed = 77;
  auto U = dev::randn(size_t(N) * r, 111), W = dev::randn(size_t(C) * r, 112, 0.1f), Y = dev::randn(size_t(N) * C, 113);
  std::vector<double> ref(Y.begin(), Y.end());
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c) {
      double acc = 0;
      for (int j = 0; j < r; ++j) acc += double(U[size_t(n) * r + j]) * W[size_t(c) * r + j];
      const uint64_t e = uint64_t(n) * C + c;
      const bool keep = p <= 0.f || bl::uniform01(seed, e) >= p;
      ref[e] += keep ? alpha * acc / (p > 0.f ? 1.0 - p : 1.0) : 0.0;
    }
  float *dU = dev::to_gpu(U), *dW = dev::to_gpu(W), *dY = dev::to_gpu(Y);
  bl::cuda::lora_up(0, dY, dU, dW, r, 1, N, C, r, alpha, p, seed);
  dev::check(p > 0 ? "lora_up (dropout mask fused)" : "lora_up", dev::from_gpu(dY, size_t(N) * C), ref, 1e-5, 1e-5);
  if (time_it) {
    const double t = dev::time_ms([&] { bl::cuda::lora_up(0, dY, dU, dW, r, 1, N, C, r, alpha, p, seed); });
    dev::result("lora_dev", p > 0 ? "lora_up_dropout" : "lora_up", t, "GB/s", 8.0 * N * C / (t * 1e-3) / kGB);
  }
  for (float* q : {dU, dW, dY}) cudaFree(q);
}

void check_outer(int N, int dc, int r, bool time_it) {
  std::printf(" lora_outer N=%d dc=%d r=%d\n", N, dc, r);
  const float alpha = 0.5f;
  auto Y = dev::randn(size_t(N) * dc, 121), Z = dev::randn(size_t(N) * r, 122), D = dev::randn(size_t(dc) * r, 123);
  std::vector<double> ref(D.begin(), D.end());
  for (int c = 0; c < dc; ++c)
    for (int j = 0; j < r; ++j) {
      double acc = 0;
      for (int n = 0; n < N; ++n) acc += double(Y[size_t(n) * dc + c]) * Z[size_t(n) * r + j];
      ref[size_t(c) * r + j] += alpha * acc;
    }
  float *dY = dev::to_gpu(Y), *dZ = dev::to_gpu(Z), *dD = dev::to_gpu(D), *scratch = nullptr;
  DEV_CUDA(cudaMalloc(&scratch, std::max<size_t>(1, bl::cuda::lora_outer_scratch_floats(N, dc, r)) * 4));
  bl::cuda::lora_outer(0, dD, r, 1, dY, dZ, N, dc, r, alpha, scratch);
  const auto first = dev::from_gpu(dD, size_t(dc) * r);
  dev::check("lora_outer", first, ref, 1e-6 * std::sqrt(double(N)), 1e-5);
  // Determinism: the same inputs from the same start give the same bits.
  float* dD2 = dev::to_gpu(D);
  bl::cuda::lora_outer(0, dD2, r, 1, dY, dZ, N, dc, r, alpha, scratch);
  const auto second = dev::from_gpu(dD2, size_t(dc) * r);
  const bool same = std::memcmp(first.data(), second.data(), first.size() * 4) == 0;
  std::printf("  %s lora_outer run twice: %s\n", same ? "ok  " : "FAIL", same ? "bit-identical" : "bits differ");
  if (!same) ++dev::g_failures;
  if (time_it) {
    const double t = dev::time_ms([&] { bl::cuda::lora_outer(0, dD, r, 1, dY, dZ, N, dc, r, alpha, scratch); });
    dev::result("lora_dev", "lora_outer", t, "GB/s", 4.0 * (double(N) * dc + double(N) * r) / (t * 1e-3) / kGB);
  }
  for (float* q : {dY, dZ, dD, dD2, scratch}) cudaFree(q);
}

// lora_bwd runs lora_outer twice (dB over d_out columns, dA over d_in) on one
// backend scratch sized by lora_bwd_scratch_floats. It must cover both calls;
// sizing it for max(d_in, d_out) alone did not (fewer column tiles give more
// row chunks), and the dA pass wrote past the buffer. Host-only sweep over the
// shapes that matter (LLaMA/Qwen2 projections, small odd ones), then a device
// run of both passes on one buffer of exactly that size plus a guard zone.
void check_bwd_scratch_sizing() {
  std::printf(" lora_bwd scratch sizing (host)\n");
  const int Ns[] = {1, 63, 64, 1000, 1024, 4096, 32768, 65536};
  const int ds[] = {1, 2, 63, 64, 65, 100, 128, 129, 192, 896, 1024, 4096, 4864, 11008, 14336};
  const int rs[] = {1, 8, 32};
  int bad = 0, under_dmax = 0;
  for (int N : Ns)
    for (int a : ds)
      for (int b : ds)
        for (int r : rs) {
          const size_t got = bl::cuda::lora_bwd_scratch_floats(N, a, b, r);
          const size_t need = std::max(bl::cuda::lora_outer_scratch_floats(N, a, r),
                                       bl::cuda::lora_outer_scratch_floats(N, b, r));
          if (got < need) {
            if (bad++ < 5) std::printf("    N=%d d_in=%d d_out=%d r=%d: %zu < %zu floats\n", N, a, b, r, got, need);
          }
          if (bl::cuda::lora_outer_scratch_floats(N, std::max(a, b), r) < need) ++under_dmax;
        }
  std::printf("  %s lora_bwd_scratch_floats covers both outer passes (%d shapes where max(d_in, d_out) alone "
              "would not)\n", bad ? "FAIL" : "ok  ", under_dmax);
  if (bad) ++dev::g_failures;
}

void check_bwd_scratch_device(int N, int d_in, int d_out, int r) {
  std::printf(" lora_outer x2 on one lora_bwd scratch N=%d d_in=%d d_out=%d r=%d\n", N, d_in, d_out, r);
  const size_t need = bl::cuda::lora_bwd_scratch_floats(N, d_in, d_out, r), guard = size_t(1) << 20;
  std::vector<float> fill(need + guard, 12345.f);
  float* sc = dev::to_gpu(fill);
  auto G = dev::randn(size_t(N) * d_out, 151), U = dev::randn(size_t(N) * r, 152);
  auto X = dev::randn(size_t(N) * d_in, 153), GU = dev::randn(size_t(N) * r, 154);
  std::vector<float> zB(size_t(d_out) * r, 0.f), zA(size_t(r) * d_in, 0.f);
  float *dG = dev::to_gpu(G), *dU = dev::to_gpu(U), *dX = dev::to_gpu(X), *dGU = dev::to_gpu(GU);
  float *dB = dev::to_gpu(zB), *dA = dev::to_gpu(zA);
  bl::cuda::lora_outer(0, dB, r, 1, dG, dU, N, d_out, r, 1.f, sc);
  bl::cuda::lora_outer(0, dA, 1, d_in, dX, dGU, N, d_in, r, 1.f, sc);
  const auto after = dev::from_gpu(sc, need + guard);
  size_t touched = 0;
  for (size_t i = need; i < after.size(); ++i) touched += after[i] != 12345.f;
  std::printf("  %s guard zone after the scratch untouched (%zu floats written past it)\n", touched ? "FAIL" : "ok  ",
              touched);
  if (touched) ++dev::g_failures;
  // dA(j, k) = sum_n gu[n, j] x[n, k], spot-checked on a few elements.
  const auto gA = dev::from_gpu(dA, zA.size());
  std::vector<double> refA, gotA;
  for (int j = 0; j < r; j += std::max(1, r / 3))
    for (int k = 0; k < d_in; k += std::max(1, d_in / 7)) {
      double acc = 0;
      for (int n = 0; n < N; ++n) acc += double(GU[size_t(n) * r + j]) * X[size_t(n) * d_in + k];
      refA.push_back(acc);
      gotA.push_back(gA[size_t(j) * d_in + k]);
    }
  dev::check("dA through the shared scratch", gotA, refA, 1e-6 * std::sqrt(double(N)), 1e-5);
  for (float* q : {sc, dG, dU, dX, dGU, dB, dA}) cudaFree(q);
}

void check_token_reduce(int B, int T, int d, bool mean) {
  std::printf(" token_reduce B=%d T=%d d=%d %s\n", B, T, d, mean ? "mean" : "sum");
  auto X = dev::randn(size_t(B) * T * d, 131);
  std::vector<uint8_t> mask(size_t(B) * T);
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t) mask[size_t(b) * T + t] = (b == 1) ? 0 : uint8_t(t < T - (b % 5));  // example 1: no real token
  std::vector<int32_t> ex;
  for (int b = B - 1; b >= 0; b -= 2) ex.push_back(b);  // a subset, out of order
  const int n = int(ex.size());
  std::vector<double> ref(size_t(n) * d, 0.0);
  for (int i = 0; i < n; ++i) {
    int cnt = 0;
    for (int t = 0; t < T; ++t) {
      if (!mask[size_t(ex[i]) * T + t]) continue;
      ++cnt;
      for (int c = 0; c < d; ++c) ref[size_t(i) * d + c] += X[(size_t(ex[i]) * T + t) * d + c];
    }
    if (mean && cnt)
      for (int c = 0; c < d; ++c) ref[size_t(i) * d + c] /= cnt;
  }
  float* dX = dev::to_gpu(X);
  uint8_t* dm = dev::to_gpu(mask);
  int32_t* dex = dev::to_gpu(ex);
  float* dout = nullptr;
  DEV_CUDA(cudaMalloc(&dout, size_t(n) * d * 4));
  bl::cuda::token_reduce(0, dout, dX, dm, dex, n, T, d, mean);
  // float64 sums rounded once: within one float32 rounding of the reference.
  dev::check(mean ? "token_reduce mean" : "token_reduce sum", dev::from_gpu(dout, size_t(n) * d), ref, 1e-7, 1.2e-7);
  for (void* p : {(void*)dX, (void*)dm, (void*)dex, (void*)dout}) cudaFree(p);
}

void check_f64_helpers(int n) {
  std::printf(" add_scaled_f64 / mirror_upper_f64 n=%d\n", n);
  auto G = dev::randn(size_t(n) * n, 141);
  std::vector<double> S(size_t(n) * n), ref(size_t(n) * n);
  for (size_t i = 0; i < S.size(); ++i) {
    S[i] = 0.001 * double(i % 97);
    ref[i] = S[i] + 0.3 * double(G[i]);
  }
  double* dS = dev::to_gpu(S);
  float* dG = dev::to_gpu(G);
  bl::cuda::add_scaled_f64(0, dS, dG, int64_t(n) * n, 0.3);
  // nvcc contracts S + scale*G into one fma (one rounding), the host reference
  // rounds the product first: they may differ by half an ulp of the product
  // plus one ulp of the result (|0.3 G| < 2 and |result| < 2 here, so
  // < 3.4e-16), which is large relative to a result that nearly cancels
  // (S ~ -0.3 G). Hence an absolute bound, no relative one; an indexing error
  // is off by ~0.1.
  const auto added = dev::from_gpu(dS, size_t(n) * n);
  dev::check("add_scaled_f64", added, ref, 1e-15, 0);
  // The mirror is an exact copy: compare with the device's own sums, bitwise.
  std::vector<double> mref(added);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < i; ++j) mref[size_t(i) * n + j] = mref[size_t(j) * n + i];
  bl::cuda::mirror_upper_f64(0, dS, n);
  dev::check("mirror_upper_f64", dev::from_gpu(dS, size_t(n) * n), mref, 0, 0);
  cudaFree(dS);
  cudaFree(dG);
}

}  // namespace

int main() {
  check_bwd_scratch_sizing();  // host only: runs before any device call
  dev::print_device();
  // Odd shapes for the tails, then LLaMA2-7B shapes (8 x 512 tokens, d 4096, r 8).
  check_down(37, 129, 3, false, false);
  check_down(37, 129, 8, true, false);
  check_down(50, 200, 32, false, false);
  check_down(4096, 4096, 8, false, true);
  check_up(37, 131, 5, 0.f, false);
  check_up(37, 131, 8, 0.1f, false);
  check_up(4096, 4096, 8, 0.f, true);
  check_up(4096, 4096, 8, 0.1f, true);
  check_outer(37, 131, 5, false);
  check_outer(1000, 64, 32, false);
  check_outer(4096, 4096, 8, true);
  // 7B MLP (up/gate: 4096 -> 11008) and a small shape where the old sizing
  // was off by about 2x (d_in = 64: 1024 chunks; d_out = 65: 512).
  check_bwd_scratch_device(1024, 4096, 11008, 8);
  check_bwd_scratch_device(65536, 64, 65, 8);
  check_token_reduce(7, 13, 33, false);
  check_token_reduce(7, 13, 33, true);
  check_token_reduce(8, 512, 4096, true);
  check_f64_helpers(37);
  check_f64_helpers(300);
  return dev::finish("lora_dev");
}
