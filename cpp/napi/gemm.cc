// GEMM test and benchmark surface: `gemm(opts)` runs one SGEMM through a chosen
// implementation on JS typed arrays (validated so no access can leave them),
// `gemmBench(opts)` times one on native buffers off the JS thread, and
// `gemmInfo()` reports what the loader and the CPU check found.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "backend/cpu/blas_loader.h"
#include "backend/cpu/cpu_features.h"
#include "backend/cpu/gemm.h"
#include "backend/cpu/gemm_kernel.h"
#include "core/error.h"
#include "napi/modules.h"
#include "napi/util.h"

namespace bl::napi {
namespace {

constexpr int64_t kIntMax = std::numeric_limits<int32_t>::max();

// Which implementation to run, resolved (and checked) on the JS thread.
struct ImplChoice {
  std::string impl;                         // auto | builtin | blas | reference
  const cpu::GemmKernel* kernel = nullptr;  // builtin with a forced kernel
};

ImplChoice read_impl(const Napi::Object& o) {
  ImplChoice c;
  c.impl = opt_string(o, "impl", "auto");
  if (c.impl != "auto" && c.impl != "builtin" && c.impl != "blas" && c.impl != "reference")
    fail(code::kInvalidArgument, "impl must be 'auto', 'builtin', 'blas' or 'reference', got '",
         c.impl, "'");
  if (c.impl == "blas" && !cpu::blas_lib().loaded)
    fail(code::kUnsupported, "impl 'blas': no BLAS library is loaded");
  std::string k = opt_string(o, "kernel", "");
  if (!k.empty()) {
    if (c.impl != "builtin") fail(code::kInvalidArgument, "kernel is only valid with impl 'builtin'");
    if (k != "avx512" && k != "avx2" && k != "avx2_12x32" && k != "scalar")
      fail(code::kInvalidArgument, "kernel must be 'avx512', 'avx2', 'avx2_12x32' or 'scalar', got '", k, "'");
    c.kernel = cpu::gemm_kernel_by_name(k.c_str());
    if (!c.kernel) fail(code::kUnsupported, "kernel '", k, "' is not supported by this CPU");
  }
  return c;
}

void run_impl(const ImplChoice& c, bool ta, bool tb, int M, int N, int K, float alpha,
              const float* A, int lda, const float* B, int ldb, float beta, float* C, int ldc) {
  if (c.impl == "reference") {
    cpu::sgemm_reference(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  } else if (c.impl == "builtin") {
    if (c.kernel)
      cpu::sgemm_with_kernel(*c.kernel, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else
      cpu::sgemm_builtin(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  } else if (c.impl == "blas") {
    // cblas_sgemm itself: degenerate sizes are a no-op by BLAS rules except
    // for the beta scaling, which the built-in path does identically.
    if (M == 0 || N == 0 || K == 0 ||
        !cpu::blas_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc))
      cpu::sgemm_builtin(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  } else {
    cpu::sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }
}

// Elements a rows x cols row-major matrix with leading dimension ld spans.
int64_t span_of(int64_t rows, int64_t cols, int64_t ld) {
  return rows == 0 || cols == 0 ? 0 : (rows - 1) * ld + cols;
}

int64_t read_ld(const Napi::Object& o, const char* key, int64_t width) {
  int64_t ld = opt_int(o, key, std::max<int64_t>(1, width), 1, kIntMax);
  if (ld < width) fail(code::kInvalidArgument, key, " (", ld, ") must be >= the row width ", width);
  return ld;
}

Napi::Value gemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = get_object(info[0], "gemm options");
  const bool ta = opt_bool(o, "ta", false), tb = opt_bool(o, "tb", false);
  const int64_t M = get_int(o.Get("M"), "M", 0, kIntMax);
  const int64_t N = get_int(o.Get("N"), "N", 0, kIntMax);
  const int64_t K = get_int(o.Get("K"), "K", 0, kIntMax);
  const float alpha = float(opt_number(o, "alpha", 1.0));
  const float beta = float(opt_number(o, "beta", 0.0));
  // Stored shapes: A is M x K (K x M when ta), B is K x N (N x K when tb).
  const int64_t a_rows = ta ? K : M, a_cols = ta ? M : K;
  const int64_t b_rows = tb ? N : K, b_cols = tb ? K : N;
  const int64_t lda = read_ld(o, "lda", a_cols), ldb = read_ld(o, "ldb", b_cols);
  const int64_t ldc = read_ld(o, "ldc", N);
  const ImplChoice impl = read_impl(o);

  auto A = get_f32(o.Get("A"), "A");
  auto B = get_f32(o.Get("B"), "B");
  const int64_t need_a = span_of(a_rows, a_cols, lda), need_b = span_of(b_rows, b_cols, ldb);
  const int64_t need_c = span_of(M, N, ldc);
  if (int64_t(A.size) < need_a)
    fail(code::kShapeMismatch, "A has ", A.size, " elements; ", a_rows, " x ", a_cols,
         " with lda ", lda, " needs ", need_a);
  if (int64_t(B.size) < need_b)
    fail(code::kShapeMismatch, "B has ", B.size, " elements; ", b_rows, " x ", b_cols,
         " with ldb ", ldb, " needs ", need_b);

  Napi::Float32Array out;
  Napi::Value cv = o.Get("C");
  if (cv.IsUndefined() || cv.IsNull()) {
    out = Napi::Float32Array::New(env, size_t(need_c));  // zero-filled
  } else {
    auto C = get_f32(cv, "C");
    if (int64_t(C.size) < need_c)
      fail(code::kShapeMismatch, "C has ", C.size, " elements; ", M, " x ", N, " with ldc ", ldc,
           " needs ", need_c);
    out = to_f32(env, C.data, C.size);
  }
  run_impl(impl, ta, tb, int(M), int(N), int(K), alpha, A.data, int(lda), B.data, int(ldb), beta,
           out.Data(), int(ldc));
  return out;
}

Napi::Value gemm_bench(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = get_object(info[0], "gemmBench options");
  const int64_t M = get_int(o.Get("M"), "M", 1, 1 << 20);
  const int64_t N = get_int(o.Get("N"), "N", 1, 1 << 20);
  const int64_t K = get_int(o.Get("K"), "K", 1, 1 << 20);
  const bool ta = opt_bool(o, "ta", false), tb = opt_bool(o, "tb", false);
  const int iters = int(opt_int(o, "iters", 5, 1, 100000));
  const ImplChoice impl = read_impl(o);
  const int64_t floats = M * K + K * N + M * N;
  if (floats > (int64_t(1) << 28))
    fail(code::kInvalidArgument, "gemmBench: ", M, " x ", N, " x ", K, " needs ", floats,
         " floats; at most 2^28 allowed");

  struct Result {
    double seconds = 0, gflops = 0;
  };
  auto res = std::make_shared<Result>();
  Work work = [=] {
    std::vector<float> A(size_t(M * K)), B(size_t(K * N)), C(size_t(M * N), 0.0f);
    uint32_t s = 12345;
    auto next = [&s] {
      s = s * 1664525u + 1013904223u;
      return float(int32_t(s >> 8) - (1 << 23)) / float(1 << 23);
    };
    for (auto& x : A) x = next();
    for (auto& x : B) x = next();
    const int lda = int(ta ? M : K), ldb = int(tb ? K : N);
    auto once = [&] {
      run_impl(impl, ta, tb, int(M), int(N), int(K), 1.0f, A.data(), lda, B.data(), ldb, 0.0f,
               C.data(), int(N));
    };
    once();  // warm-up: page faults, packing buffers, BLAS thread start
    std::vector<double> t(static_cast<size_t>(iters));
    for (int i = 0; i < iters; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      once();
      t[size_t(i)] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    std::sort(t.begin(), t.end());
    res->seconds = t[t.size() / 2];
    res->gflops = 2.0 * double(M) * double(N) * double(K) / res->seconds / 1e9;
  };
  Done done = [res](Napi::Env e) -> Napi::Value {
    Napi::Object r = Napi::Object::New(e);
    r.Set("gflops", res->gflops);
    r.Set("seconds", res->seconds);
    return r;
  };
  return run_async(env, "bayeslora.gemmBench", work, done);
}

Napi::Value gemm_info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto g = cpu::gemm_info();
  const auto& b = cpu::blas_lib();
  const auto& f = cpu::cpu_features();
  Napi::Object o = Napi::Object::New(env);
  o.Set("blas", g.blas);
  o.Set("simd", g.simd);
  o.Set("coretype", g.coretype);
  o.Set("threads", g.threads);
  o.Set("blasLoaded", b.loaded);
  o.Set("blasPath", b.path);
  o.Set("blasConfig", b.config);
  o.Set("blasCorename", b.corename);
  o.Set("blasThreads", cpu::blas_threads());
  o.Set("coretypeEnv", b.coretype_env);
  o.Set("coretypeSetByBayeslora", b.coretype_set_by_us);
  o.Set("threadTimeoutEnv", b.thread_timeout_env);
  o.Set("threadTimeoutSetByBayeslora", b.thread_timeout_set_by_us);
  Napi::Array attempts = Napi::Array::New(env, b.attempts.size());
  for (size_t i = 0; i < b.attempts.size(); ++i) attempts.Set(uint32_t(i), b.attempts[i]);
  o.Set("blasAttempts", attempts);
  auto ks = cpu::gemm_available_kernels();
  Napi::Array kernels = Napi::Array::New(env, ks.size());
  for (size_t i = 0; i < ks.size(); ++i) {
    Napi::Object k = Napi::Object::New(env);
    k.Set("name", ks[i]->name);
    k.Set("mr", ks[i]->mr);
    k.Set("nr", ks[i]->nr);
    k.Set("mc", ks[i]->mc);
    k.Set("kc", ks[i]->kc);
    k.Set("nc", ks[i]->nc);
    kernels.Set(uint32_t(i), k);
  }
  o.Set("kernels", kernels);
  Napi::Object cpu = Napi::Object::New(env);
  cpu.Set("vendor", f.vendor);
  cpu.Set("family", f.family);
  cpu.Set("model", f.model);
  cpu.Set("avx2", f.avx2);
  cpu.Set("fma", f.fma);
  cpu.Set("avx512", f.avx512());
  o.Set("cpu", cpu);
  return o;
}

}  // namespace

void init_gemm(Napi::Env env, Napi::Object exports) {
  exports.Set("gemm", Napi::Function::New(env, BL_NAPI(gemm)));
  exports.Set("gemmBench", Napi::Function::New(env, BL_NAPI(gemm_bench)));
  exports.Set("gemmInfo", Napi::Function::New(env, BL_NAPI(gemm_info)));
}

}  // namespace bl::napi
