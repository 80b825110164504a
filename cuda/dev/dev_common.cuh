// Shared helpers for the cuda/dev harnesses (llm.c style standalone programs:
// CPU reference, kernel versions, checker, timing loop). Not part of the addon.
// Each harness prints human lines and one machine line per measurement:
//   RESULT {"harness": ..., "name": ..., ...}
// which scripts/gpu-check.sh collects into JSON.
#pragma once
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#define DEV_CUDA(call)                                                                               \
  do {                                                                                               \
    cudaError_t e_ = (call);                                                                         \
    if (e_ != cudaSuccess) {                                                                         \
      std::fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
      std::exit(2);                                                                                  \
    }                                                                                                \
  } while (0)

namespace dev {

inline int g_failures = 0;

inline std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

template <class T>
T* to_gpu(const std::vector<T>& h) {
  T* d = nullptr;
  DEV_CUDA(cudaMalloc(&d, h.size() * sizeof(T) + 16));
  if (!h.empty()) DEV_CUDA(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}

template <class T>
std::vector<T> from_gpu(const T* d, size_t n) {
  std::vector<T> h(n);
  DEV_CUDA(cudaDeviceSynchronize());
  if (n) DEV_CUDA(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
  return h;
}

// Passes when |got[i] - ref[i]| <= limit(i, ref[i]) everywhere; prints the
// worst element relative to its limit. NaN fails.
template <class G, class R, class L>
bool check_with(const char* what, const std::vector<G>& got, const std::vector<R>& ref, L&& limit) {
  if (got.size() != ref.size()) {
    std::printf("  FAIL %-34s size %zu vs %zu\n", what, got.size(), ref.size());
    ++g_failures;
    return false;
  }
  double worst = 0, worst_abs = 0;
  size_t at = 0;
  bool ok = true;
  for (size_t i = 0; i < got.size(); ++i) {
    const double r = double(ref[i]), err = std::fabs(double(got[i]) - r), lim = limit(i, r);
    if (!(err <= lim)) ok = false;
    const double ratio = lim > 0 ? err / lim : (err > 0 ? INFINITY : 0.0);
    if (!(ratio <= worst)) {
      worst = ratio;
      worst_abs = err;
      at = i;
    }
  }
  std::printf("  %s %-34s max err %.3g at %zu (%.3g of tolerance)\n", ok ? "ok  " : "FAIL", what, worst_abs, at,
              worst);
  if (!ok) ++g_failures;
  return ok;
}

// Tolerance atol + rtol * |ref|.
template <class G, class R>
bool check(const char* what, const std::vector<G>& got, const std::vector<R>& ref, double atol, double rtol) {
  return check_with(what, got, ref, [&](size_t, double r) { return atol + rtol * std::fabs(r); });
}

// Tolerance bound[i], computed by the caller: for results whose honest error
// bound depends on the summed terms rather than on the result (a sum that
// cancels, n atomic adds in any order).
template <class G, class R>
bool check_bound(const char* what, const std::vector<G>& got, const std::vector<R>& ref,
                 const std::vector<double>& bound) {
  if (bound.size() != ref.size()) {
    std::printf("  FAIL %-34s %zu bounds for %zu values\n", what, bound.size(), ref.size());
    ++g_failures;
    return false;
  }
  return check_with(what, got, ref, [&](size_t i, double) { return bound[i]; });
}

// float32 unit roundoff, for the bounds above.
constexpr double kU32 = 0x1p-24;

// BL_DEV_CHECK_ONLY=1: run every check, skip every timing (time_ms returns
// NaN without calling fn, result() prints nothing, mains skip their bench
// calls). How scripts/cuda-emu-check.sh runs the harnesses on the CPU
// emulator, where timings mean nothing and the timing loops take minutes.
inline bool check_only() {
  const char* e = std::getenv("BL_DEV_CHECK_ONLY");
  return e && *e && std::string(e) != "0";
}

// Mean milliseconds per call of fn over `iters` after `warmup` calls (CUDA
// events). The events go on `stream`, which must be the stream fn enqueues on:
// CudaBackend's stream is created cudaStreamNonBlocking, so events on the
// legacy default stream 0 do not wait for its work and would time only the
// host-side enqueue.
template <class F>
double time_ms(F&& fn, int warmup = 3, int iters = 20, cudaStream_t stream = 0) {
  if (check_only()) return std::nan("");
  for (int i = 0; i < warmup; ++i) fn();
  cudaEvent_t a, b;
  DEV_CUDA(cudaEventCreate(&a));
  DEV_CUDA(cudaEventCreate(&b));
  DEV_CUDA(cudaEventRecord(a, stream));
  for (int i = 0; i < iters; ++i) fn();
  DEV_CUDA(cudaEventRecord(b, stream));
  DEV_CUDA(cudaEventSynchronize(b));
  float ms = 0;
  DEV_CUDA(cudaEventElapsedTime(&ms, a, b));
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return double(ms) / iters;
}

inline void result(const char* harness, const std::string& name, double ms, const char* unit, double rate) {
  if (check_only()) return;
  std::printf("  %-44s %9.3f ms  %9.2f %s\n", name.c_str(), ms, rate, unit);
  std::printf("RESULT {\"harness\":\"%s\",\"name\":\"%s\",\"ms\":%.6f,\"%s\":%.4f}\n", harness, name.c_str(), ms,
              unit, rate);
}

inline void print_device() {
  int dev = 0;
  cudaDeviceProp p;
  DEV_CUDA(cudaGetDevice(&dev));
  DEV_CUDA(cudaGetDeviceProperties(&p, dev));
  std::printf("device: %s (sm_%d%d, %d SMs, %.1f GiB)\n", p.name, p.major, p.minor, p.multiProcessorCount,
              double(p.totalGlobalMem) / double(1ull << 30));
}

inline int finish(const char* harness) {
  std::printf("%s: %s (%d failed checks)\n", harness, g_failures ? "FAILED" : "passed", g_failures);
  return g_failures ? 1 : 0;
}

}  // namespace dev
