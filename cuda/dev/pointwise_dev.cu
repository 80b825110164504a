// Harness for the memory-bound kernels of the model: SwiGLU (fwd/bwd),
// softmax cross-entropy (C = 4 answer classes and a vocabulary-sized row),
// RoPE (fwd/bwd), embedding (fwd and the atomic backward with repeated ids),
// LoRA dropout (fwd/bwd, the counter-based mask every backend shares) and
// AdamW. Each is checked against a float64 CPU reference written here from
// the op's definition (the cpp/backend/cpu kernels are the addon's reference;
// these loops restate the maths so the harness stands alone), then timed and
// reported as effective bandwidth (bytes the op must move / time): these ops
// should run near the H200's ~4.8 TB/s HBM rate, and a kernel far below it is
// the one to rewrite.
// deps: cuda/kernels/swiglu.cu cuda/kernels/softmax_xent.cu cuda/kernels/rope.cu cuda/kernels/embedding.cu cuda/kernels/dropout.cu cuda/kernels/adamw.cu cuda/kernels/rows.cu cuda/kernels/reduce.cu
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>

#include "backend/backend.h"
#include "dev/dev_common.cuh"
#include "kernels/adamw.cuh"
#include "kernels/dropout.cuh"
#include "kernels/embedding.cuh"
#include "kernels/rope.cuh"
#include "kernels/softmax_xent.cuh"
#include "kernels/swiglu.cuh"

namespace {

constexpr double kGB = 1e9;

void report(const char* name, double ms, double bytes) { dev::result("pointwise_dev", name, ms, "GB/s", bytes / (ms * 1e-3) / kGB); }

// ---- SwiGLU ----------------------------------------------------------------------------------------
void check_swiglu(int64_t n) {
  std::printf(" swiglu n=%lld\n", (long long)n);
  auto gate = dev::randn(size_t(n), 21, 3.f), up = dev::randn(size_t(n), 22), dout = dev::randn(size_t(n), 23);
  gate[0] = 80.f;  // saturated ends: exp must not overflow into NaN
  gate[1] = -80.f;
  std::vector<double> out(n), dg(n), du(n);
  for (int64_t i = 0; i < n; ++i) {
    const double g = gate[i], s = 1.0 / (1.0 + std::exp(-g));
    out[i] = g * s * up[i];
    dg[i] = 0.5 + dout[i] * up[i] * s * (1.0 + g * (1.0 - s));  // accumulates onto 0.5
    du[i] = -0.25 + dout[i] * g * s;                              // accumulates onto -0.25
  }
  float *dgate = dev::to_gpu(gate), *dup_ = dev::to_gpu(up), *ddout = dev::to_gpu(dout);
  float* dout_fwd = dev::to_gpu(std::vector<float>(size_t(n), 0.f));
  float* ddg = dev::to_gpu(std::vector<float>(size_t(n), 0.5f));
  float* ddu = dev::to_gpu(std::vector<float>(size_t(n), -0.25f));
  bl::cuda::swiglu_fwd(0, dout_fwd, dgate, dup_, n);
  bl::cuda::swiglu_bwd(0, ddg, ddu, ddout, dgate, dup_, n);
  dev::check("swiglu fwd", dev::from_gpu(dout_fwd, size_t(n)), out, 1e-6, 1e-5);
  dev::check("swiglu bwd dgate (accumulated)", dev::from_gpu(ddg, size_t(n)), dg, 1e-6, 1e-5);
  dev::check("swiglu bwd dup (accumulated)", dev::from_gpu(ddu, size_t(n)), du, 1e-6, 1e-5);
  report("swiglu_fwd", dev::time_ms([&] { bl::cuda::swiglu_fwd(0, dout_fwd, dgate, dup_, n); }), 12.0 * n);
  report("swiglu_bwd", dev::time_ms([&] { bl::cuda::swiglu_bwd(0, ddg, ddu, ddout, dgate, dup_, n); }), 28.0 * n);
  for (float* p : {dgate, dup_, ddout, dout_fwd, ddg, ddu}) cudaFree(p);
}

// ---- softmax cross-entropy -------------------------------------------------------------------------
// offset > 0: every logit is shifted by `offset` and the label's logit raised
// by 8 (confident rows, loss ~1e-3 on top of logits ~1000): the loss and the
// probabilities must be formed relative to the row max, not from a float
// lse = max + log(sum), whose rounding (half an ulp of 1000 = 3e-5) would
// swamp the 1e-5 tolerance.
void check_xent(int N, int C, float offset = 0.f) {
  std::printf(" softmax_xent N=%d C=%d offset=%g\n", N, C, offset);
  auto logits = dev::randn(size_t(N) * C, 31, offset > 0.f ? 1.f : 4.f);
  std::vector<int32_t> labels(N);
  for (int i = 0; i < N; ++i) labels[i] = (i % 7 == 3) ? -1 : int32_t((i * 7919) % C);  // some ignored rows
  if (offset > 0.f)
    for (int i = 0; i < N; ++i) {
      for (int c = 0; c < C; ++c) logits[size_t(i) * C + c] += offset;
      if (labels[i] >= 0) logits[size_t(i) * C + labels[i]] += 8.f;
    }
  const float dscale = 1.f / N;
  std::vector<double> loss(N), probs(size_t(N) * C), dl(size_t(N) * C);
  for (int i = 0; i < N; ++i) {
    const float* r = &logits[size_t(i) * C];
    double mx = *std::max_element(r, r + C), se = 0;
    for (int c = 0; c < C; ++c) se += std::exp(double(r[c]) - mx);
    const bool valid = labels[i] >= 0 && labels[i] < C;
    loss[i] = valid ? std::log(se) - (double(r[labels[i]]) - mx) : 0.0;
    for (int c = 0; c < C; ++c) {
      const double p = std::exp(double(r[c]) - mx) / se;
      probs[size_t(i) * C + c] = p;
      dl[size_t(i) * C + c] = valid ? (p - (c == labels[i] ? 1.0 : 0.0)) * dscale : 0.0;
    }
  }
  float* dlog = dev::to_gpu(logits);
  int32_t* dlab = dev::to_gpu(labels);
  float *dloss, *dprobs, *ddl;
  DEV_CUDA(cudaMalloc(&dloss, size_t(N) * 4));
  DEV_CUDA(cudaMalloc(&dprobs, size_t(N) * C * 4));
  DEV_CUDA(cudaMalloc(&ddl, size_t(N) * C * 4));
  bl::cuda::softmax_xent(0, dloss, dprobs, ddl, dlog, dlab, N, C, dscale);
  dev::check("xent loss", dev::from_gpu(dloss, size_t(N)), loss, 1e-5, 1e-5);
  dev::check("xent probs", dev::from_gpu(dprobs, size_t(N) * C), probs, 1e-7, 1e-5);
  dev::check("xent dlogits", dev::from_gpu(ddl, size_t(N) * C), dl, 1e-9, 1e-5);
  const std::string name = "softmax_xent_C" + std::to_string(C) + (offset > 0.f ? "_offset" : "");
  report(name.c_str(), dev::time_ms([&] { bl::cuda::softmax_xent(0, dloss, nullptr, ddl, dlog, dlab, N, C, dscale); }),
         8.0 * double(N) * C);
  for (void* p : {(void*)dlog, (void*)dlab, (void*)dloss, (void*)dprobs, (void*)ddl}) cudaFree(p);
}

// ---- RoPE ------------------------------------------------------------------------------------------
void check_rope(int N, int H, int hd) {
  std::printf(" rope N=%d H=%d hd=%d\n", N, H, hd);
  const int half = hd / 2;
  auto x = dev::randn(size_t(N) * H * hd, 41);
  std::vector<int32_t> pos(N);
  for (int i = 0; i < N; ++i) pos[i] = (i * 37) % 4096;  // positions up to 4095: angle precision matters
  std::vector<float> inv(half);
  for (int j = 0; j < half; ++j) inv[j] = float(std::pow(10000.0, -2.0 * j / hd));
  std::vector<double> fwd(x.size()), back(x.size());
  for (int i = 0; i < N; ++i)
    for (int h = 0; h < H; ++h)
      for (int j = 0; j < half; ++j) {
        const size_t o = (size_t(i) * H + h) * hd;
        const double a = double(pos[i]) * double(inv[j]), c = std::cos(a), s = std::sin(a);
        const double x1 = x[o + j], x2 = x[o + j + half];
        fwd[o + j] = x1 * c - x2 * s;
        fwd[o + j + half] = x2 * c + x1 * s;
        back[o + j] = x1 * c + x2 * s;  // the inverse rotation
        back[o + j + half] = x2 * c - x1 * s;
      }
  float *d1 = dev::to_gpu(x), *d2 = dev::to_gpu(x), *dinv = dev::to_gpu(inv);
  int32_t* dpos = dev::to_gpu(pos);
  bl::cuda::rope_fwd(0, d1, dpos, dinv, N, H, hd);
  bl::cuda::rope_bwd(0, d2, dpos, dinv, N, H, hd);
  dev::check("rope fwd", dev::from_gpu(d1, x.size()), fwd, 1e-5, 1e-5);
  dev::check("rope bwd (inverse rotation)", dev::from_gpu(d2, x.size()), back, 1e-5, 1e-5);
  report("rope_fwd", dev::time_ms([&] { bl::cuda::rope_fwd(0, d1, dpos, dinv, N, H, hd); }), 8.0 * x.size());
  for (void* p : {(void*)d1, (void*)d2, (void*)dinv, (void*)dpos}) cudaFree(p);
}

// ---- embedding -------------------------------------------------------------------------------------
void check_embedding(int N, int V, int d) {
  std::printf(" embedding N=%d V=%d d=%d\n", N, V, d);
  auto table = dev::randn(size_t(V) * d, 51), dout = dev::randn(size_t(N) * d, 52);
  std::vector<int32_t> ids(N);
  for (int i = 0; i < N; ++i) ids[i] = (i % 5 == 0) ? 7 : int32_t((i * 104729) % V);  // id 7 repeats often
  std::vector<double> out(size_t(N) * d), dt(size_t(V) * d, 0.0), abs_sum(size_t(V) * d, 0.0);
  std::vector<int> count(size_t(V), 0);
  for (int i = 0; i < N; ++i) {
    ++count[size_t(ids[i])];
    for (int c = 0; c < d; ++c) {
      out[size_t(i) * d + c] = table[size_t(ids[i]) * d + c];
      dt[size_t(ids[i]) * d + c] += dout[size_t(i) * d + c];
      abs_sum[size_t(ids[i]) * d + c] += std::fabs(double(dout[size_t(i) * d + c]));
    }
  }
  // n float adds onto 0 in any order (atomics): |error| <= n u sum|terms|
  // (recursive summation's bound; a row seen once is exact).
  std::vector<double> bound(size_t(V) * d);
  for (size_t e = 0; e < bound.size(); ++e) bound[e] = count[e / size_t(d)] * dev::kU32 * abs_sum[e];
  float *dtab = dev::to_gpu(table), *ddout = dev::to_gpu(dout), *dout_ = nullptr;
  float* dgrad = dev::to_gpu(std::vector<float>(size_t(V) * d, 0.f));
  int32_t* dids = dev::to_gpu(ids);
  DEV_CUDA(cudaMalloc(&dout_, size_t(N) * d * 4));
  bl::cuda::embedding_fwd(0, dout_, dids, dtab, N, d);
  bl::cuda::embedding_bwd(0, dgrad, dids, ddout, N, d);
  dev::check("embedding fwd", dev::from_gpu(dout_, size_t(N) * d), out, 0, 0);
  // Atomic float adds in any order: rounding differs from the sequential sum
  // (a relative bound fails by rounding alone once id 7's 800 rows cancel).
  dev::check_bound("embedding bwd (repeated ids)", dev::from_gpu(dgrad, size_t(V) * d), dt, bound);
  report("embedding_fwd", dev::time_ms([&] { bl::cuda::embedding_fwd(0, dout_, dids, dtab, N, d); }), 8.0 * N * d);
  for (void* p : {(void*)dtab, (void*)ddout, (void*)dout_, (void*)dgrad, (void*)dids}) cudaFree(p);
}

// ---- dropout ---------------------------------------------------------------------------------------
void check_dropout(int64_t n) {
  std::printf(" dropout n=%lld\n", (long long)n);
  const float p = 0.1f;
  const uint64_t seed = 0x5eedULL;
  auto x = dev::randn(size_t(n), 61), g = dev::randn(size_t(n), 62);
  std::vector<double> out(n), dx(n), dx_bound(n);
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    const bool keep = bl::uniform01(seed, uint64_t(i)) >= p;
    kept += keep;
    out[i] = keep ? double(x[i]) / (1.0 - p) : 0.0;
    const double term = keep ? double(g[i]) / (1.0 - p) : 0.0;
    dx[i] = 1.0 + term;  // accumulates onto 1
    // float: inv = 1/(1-p) rounded, g * inv rounded, 1 + that rounded: a few
    // units of roundoff of the summands, not of the sum (which can cancel to 0).
    dx_bound[i] = 4 * dev::kU32 * (1.0 + std::fabs(term));
  }
  std::printf("  kept %.4f of elements (expected %.2f)\n", double(kept) / double(n), 1.0 - p);
  float *dxin = dev::to_gpu(x), *dg = dev::to_gpu(g), *dout_ = nullptr;
  float* ddx = dev::to_gpu(std::vector<float>(size_t(n), 1.f));
  DEV_CUDA(cudaMalloc(&dout_, size_t(n) * 4));
  bl::cuda::dropout_fwd(0, dout_, dxin, n, p, seed);
  bl::cuda::dropout_bwd(0, ddx, dg, n, p, seed);
  dev::check("dropout fwd (same mask as the CPU)", dev::from_gpu(dout_, size_t(n)), out, 1e-7, 1e-6);
  dev::check_bound("dropout bwd (accumulated)", dev::from_gpu(ddx, size_t(n)), dx, dx_bound);
  report("dropout_fwd", dev::time_ms([&] { bl::cuda::dropout_fwd(0, dout_, dxin, n, p, seed); }), 8.0 * n);
  for (float* q : {dxin, dg, dout_, ddx}) cudaFree(q);
}

// ---- AdamW -----------------------------------------------------------------------------------------
void check_adamw(int64_t n) {
  std::printf(" adamw n=%lld\n", (long long)n);
  const float lr = 1e-3f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.01f, gs = 0.5f;
  auto p = dev::randn(size_t(n), 71), g = dev::randn(size_t(n), 72), m = dev::randn(size_t(n), 73, 0.1f);
  auto v = dev::randn(size_t(n), 74, 0.1f);
  for (auto& x : v) x = x * x;  // second moments are non-negative
  const int step = 3;
  std::vector<double> rp(n), rm(n), rv(n);
  const double c1 = 1.0 / (1.0 - std::pow(double(b1), step)), c2 = 1.0 / (1.0 - std::pow(double(b2), step));
  for (int64_t i = 0; i < n; ++i) {
    const double gg = double(g[i]) * gs;
    rm[i] = b1 * double(m[i]) + (1.0 - b1) * gg;
    rv[i] = b2 * double(v[i]) + (1.0 - b2) * gg * gg;
    rp[i] = double(p[i]) - lr * (rm[i] * c1 / (std::sqrt(rv[i] * c2) + eps) + wd * double(p[i]));
  }
  float *dp = dev::to_gpu(p), *dg = dev::to_gpu(g), *dm = dev::to_gpu(m), *dv = dev::to_gpu(v);
  bl::cuda::adamw(0, dp, dg, dm, dv, n, lr, b1, b2, eps, wd, step, gs);
  dev::check("adamw param", dev::from_gpu(dp, size_t(n)), rp, 1e-6, 1e-5);
  dev::check("adamw m", dev::from_gpu(dm, size_t(n)), rm, 1e-7, 1e-5);
  dev::check("adamw v", dev::from_gpu(dv, size_t(n)), rv, 1e-9, 1e-5);
  report("adamw", dev::time_ms([&] { bl::cuda::adamw(0, dp, dg, dm, dv, n, lr, b1, b2, eps, wd, step, gs); }), 28.0 * n);
  for (float* q : {dp, dg, dm, dv}) cudaFree(q);
}

}  // namespace

int main() {
  dev::print_device();
  // Shapes from a LLaMA2-7B LoRA step (batch 8 x 512 tokens): MLP width 11008,
  // 32 heads of 128, vocabulary 32000; small odd sizes check the tails.
  check_swiglu(1001);
  check_swiglu(int64_t(4096) * 11008);
  check_xent(515, 4);
  check_xent(64, 32000);
  check_xent(4096, 4);
  check_xent(515, 4, 1000.f);
  check_xent(64, 32000, 1000.f);
  check_rope(37, 3, 8);
  check_rope(4096, 32, 128);
  check_embedding(333, 1000, 72);
  check_embedding(4096, 32000, 4096);
  check_dropout(1001);
  check_dropout(int64_t(4096) * 4096);
  check_adamw(1001);
  check_adamw(int64_t(8) << 20);
  return dev::finish("pointwise_dev");
}
