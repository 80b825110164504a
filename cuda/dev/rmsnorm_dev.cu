// RMSNorm harness: float64 CPU reference, a naive GPU version (version 0: one
// thread per row), the production kernels (version 1: block per row with
// block reductions, deterministic two-pass weight gradient), checks and
// bandwidth timings.
// deps: cuda/kernels/rmsnorm.cu cuda/kernels/reduce.cu
#include "dev/dev_common.cuh"
#include "kernels/rmsnorm.cuh"

namespace {

__global__ void naive_fwd_k(float* out, float* rstd, const float* x, const float* w, int N, int d, float eps) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= N) return;
  const float* xr = x + int64_t(i) * d;
  float acc = 0.f;
  for (int c = 0; c < d; ++c) acc += xr[c] * xr[c];
  const float r = rsqrtf(acc / d + eps);
  rstd[i] = r;
  for (int c = 0; c < d; ++c) out[int64_t(i) * d + c] = xr[c] * r * w[c];
}

void reference(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& g, int N, int d,
               float eps, std::vector<double>& out, std::vector<double>& rstd, std::vector<double>& dx,
               std::vector<double>& dw) {
  out.assign(size_t(N) * d, 0);
  rstd.assign(N, 0);
  dx.assign(size_t(N) * d, 0);
  dw.assign(d, 0);
  for (int i = 0; i < N; ++i) {
    const float* xr = &x[size_t(i) * d];
    const float* gr = &g[size_t(i) * d];
    double ss = 0, dot = 0;
    for (int c = 0; c < d; ++c) ss += double(xr[c]) * xr[c];
    const double r = 1.0 / std::sqrt(ss / d + eps);
    rstd[i] = r;
    for (int c = 0; c < d; ++c) {
      out[size_t(i) * d + c] = xr[c] * r * w[c];
      dot += double(gr[c]) * w[c] * xr[c];
      dw[c] += double(gr[c]) * xr[c] * r;
    }
    for (int c = 0; c < d; ++c) dx[size_t(i) * d + c] = r * gr[c] * w[c] - xr[c] * r * r * r * dot / d;
  }
}

void check_case(int N, int d) {
  const float eps = 1e-5f;
  auto x = dev::randn(size_t(N) * d, 11), w = dev::randn(d, 12), g = dev::randn(size_t(N) * d, 13);
  std::vector<double> ro, rr, rdx, rdw;
  reference(x, w, g, N, d, eps, ro, rr, rdx, rdw);
  float *dx_ = dev::to_gpu(x), *dw_ = dev::to_gpu(w), *dg = dev::to_gpu(g);
  float *out, *rstd, *gx, *gw, *scratch;
  DEV_CUDA(cudaMalloc(&out, size_t(N) * d * 4));
  DEV_CUDA(cudaMalloc(&rstd, size_t(N) * 4));
  DEV_CUDA(cudaMalloc(&scratch, bl::cuda::rmsnorm_bwd_scratch_floats(N, d) * 4));
  gx = dev::to_gpu(std::vector<float>(size_t(N) * d, 0.f));
  gw = dev::to_gpu(std::vector<float>(d, 0.f));
  std::printf(" case N%d d%d\n", N, d);
  naive_fwd_k<<<(N + 127) / 128, 128>>>(out, rstd, dx_, dw_, N, d, eps);
  DEV_CUDA(cudaGetLastError());
  dev::check("v0 naive fwd out", dev::from_gpu(out, size_t(N) * d), ro, 1e-5, 1e-5);
  bl::cuda::rmsnorm_fwd(0, out, rstd, dx_, dw_, N, d, eps);
  dev::check("v1 fwd out", dev::from_gpu(out, size_t(N) * d), ro, 1e-5, 1e-5);
  dev::check("v1 fwd rstd", dev::from_gpu(rstd, N), rr, 1e-6, 1e-5);
  bl::cuda::rmsnorm_bwd(0, gx, gw, dg, dx_, dw_, rstd, N, d, scratch);
  dev::check("v1 bwd dx", dev::from_gpu(gx, size_t(N) * d), rdx, 1e-5, 1e-4);
  dev::check("v1 bwd dw", dev::from_gpu(gw, d), rdw, 1e-4, 1e-4);
  // Determinism: a second backward from zero gives bit-identical dw.
  auto first = dev::from_gpu(gw, d);
  DEV_CUDA(cudaMemset(gw, 0, d * 4));
  bl::cuda::rmsnorm_bwd(0, nullptr, gw, dg, dx_, dw_, rstd, N, d, scratch);
  auto second = dev::from_gpu(gw, d);
  bool same = first == second;
  std::printf("  %s dw bit-identical across runs\n", same ? "ok  " : "FAIL");
  if (!same) ++dev::g_failures;
  for (void* p : {(void*)dx_, (void*)dw_, (void*)dg, (void*)out, (void*)rstd, (void*)gx, (void*)gw, (void*)scratch})
    cudaFree(p);
}

void bench(int N, int d) {
  float *x, *w, *out, *rstd, *g, *gx, *gw, *scratch;
  for (float** p : {&x, &out, &g, &gx}) DEV_CUDA(cudaMalloc(p, size_t(N) * d * 4));
  for (float** p : {&w, &gw}) DEV_CUDA(cudaMalloc(p, size_t(d) * 4));
  DEV_CUDA(cudaMalloc(&rstd, size_t(N) * 4));
  DEV_CUDA(cudaMalloc(&scratch, bl::cuda::rmsnorm_bwd_scratch_floats(N, d) * 4));
  auto hx = dev::randn(size_t(N) * d, 5);
  DEV_CUDA(cudaMemcpy(x, hx.data(), hx.size() * 4, cudaMemcpyHostToDevice));
  DEV_CUDA(cudaMemcpy(g, hx.data(), hx.size() * 4, cudaMemcpyHostToDevice));
  DEV_CUDA(cudaMemset(w, 0, d * 4));
  const double bytes_f = 2.0 * N * d * 4, bytes_b = 4.0 * N * d * 4;  // fwd: x in, out; bwd: g, x twice-ish, dx rmw
  char name[96];
  std::snprintf(name, sizeof name, "fwd v1 N%d d%d", N, d);
  double ms = dev::time_ms([&] { bl::cuda::rmsnorm_fwd(0, out, rstd, x, w, N, d, 1e-5f); });
  dev::result("rmsnorm", name, ms, "GBps", bytes_f / ms / 1e6);
  std::snprintf(name, sizeof name, "fwd v0 naive N%d d%d", N, d);
  ms = dev::time_ms([&] { naive_fwd_k<<<(N + 127) / 128, 128>>>(out, rstd, x, w, N, d, 1e-5f); });
  dev::result("rmsnorm", name, ms, "GBps", bytes_f / ms / 1e6);
  std::snprintf(name, sizeof name, "bwd v1 N%d d%d (dx+dw)", N, d);
  ms = dev::time_ms([&] { bl::cuda::rmsnorm_bwd(0, gx, gw, g, x, w, rstd, N, d, scratch); });
  dev::result("rmsnorm", name, ms, "GBps", (bytes_b + 2.0 * N * d * 4) / ms / 1e6);
  for (void* p : {(void*)x, (void*)w, (void*)out, (void*)rstd, (void*)g, (void*)gx, (void*)gw, (void*)scratch})
    cudaFree(p);
}

}  // namespace

int main() {
  dev::print_device();
  try {
    for (auto nd : {std::pair{1, 1}, std::pair{7, 33}, std::pair{130, 896}, std::pair{300, 4096}, std::pair{5000, 64}})
      check_case(nd.first, nd.second);
    if (!dev::check_only()) {
      bench(16384, 4096);
      bench(65536, 896);
    }
  } catch (const std::exception& e) {
    std::printf("error: %s\n", e.what());
    return 2;
  }
  return dev::finish("rmsnorm_dev");
}
