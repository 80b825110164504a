// dlopen-based BLAS loading (see blas_loader.h). The few entry points used are
// declared here by hand: no BLAS headers and no link-time dependency.
#include "backend/cpu/blas_loader.h"

#include <dlfcn.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <vector>

#include "backend/cpu/cpu_features.h"
#include "core/threads.h"

namespace bl::cpu {
namespace {

// CBLAS enum values (stable ABI constants of the CBLAS interface).
constexpr int kCblasRowMajor = 101, kCblasNoTrans = 111, kCblasTrans = 112;

using SgemmFn = void (*)(int order, int ta, int tb, int M, int N, int K, float alpha,
                         const float* A, int lda, const float* B, int ldb, float beta, float* C,
                         int ldc);
using DgemmFn = void (*)(int order, int ta, int tb, int M, int N, int K, double alpha,
                         const double* A, int lda, const double* B, int ldb, double beta, double* C,
                         int ldc);
// Fortran LAPACK: every argument by pointer, column-major.
using DsyevdFn = void (*)(const char* jobz, const char* uplo, const int* n, double* A, const int* lda, double* w,
                          double* work, const int* lwork, int* iwork, const int* liwork, int* info);
using SetThreadsFn = void (*)(int);
using GetThreadsFn = int (*)();
using GetStrFn = char* (*)();

struct Loaded {
  BlasLib info;
  SgemmFn sgemm = nullptr;
  DgemmFn dgemm = nullptr;  // optional
  DsyevdFn dsyevd = nullptr;  // optional (OpenBLAS built with LAPACK)
  SetThreadsFn set_threads = nullptr;
  GetThreadsFn get_threads = nullptr;
  std::atomic<int> threads_set{0};  // last count given to set_threads
  std::mutex threads_mu;
  // One caller inside the library at a time, and no fork() while a call
  // runs. OpenBLAS registers a pthread_atfork handler that shuts its thread
  // server down before every fork(): a fork from any thread (child_process
  // in Node, on the main thread or a worker) while another thread was inside
  // a threaded GEMM left that caller spinning forever on a worker that was
  // gone, and two threads forking at once deadlocked inside the handler
  // (both seen; test/api/fork.test.ts). fork_prepare
  // (registered after the library loads, so it runs before OpenBLAS's own
  // handler) takes this lock; the call in flight finishes first. Also,
  // 0.3.21 serialises level-3 calls only per compiled variant (a static lock
  // in each of sgemm_nn, sgemm_nt, dgemm_nn, ...) and LAPACK calls not at
  // all; each call uses every core anyway, so serialising loses little.
  std::mutex call_mu;
};

Loaded& state() {
  static Loaded* s = new Loaded();  // never destroyed: the library is never dlclosed
  return *s;
}

// OpenBLAS reads OPENBLAS_CORETYPE in its load-time constructor, so this must
// run before the first dlopen. Only when the user has not chosen one.
void choose_coretype(BlasLib& info) {
  if (const char* e = std::getenv("OPENBLAS_CORETYPE"); e && *e) {
    info.coretype_env = e;
    return;
  }
  // OpenBLAS 0.3.21 does not know several AVX-512 CPU models (e.g. Sapphire
  // Rapids, Zen 4) and falls back to much slower kernels; SkylakeX kernels
  // run on any CPU with AVX-512 F/BW/DQ/VL. AVX2-only CPUs are detected
  // correctly (checked on Zen 3: "Zen", same speed as a forced "Haswell").
  if (cpu_features().avx512()) {
    setenv("OPENBLAS_CORETYPE", "SkylakeX", 0);
    info.coretype_env = "SkylakeX";
    info.coretype_set_by_us = true;
  }
}

// OpenBLAS worker threads spin (sched_yield) for 2^OPENBLAS_THREAD_TIMEOUT
// cycles after each call before sleeping; the default 2^28 is about 0.1 s.
// The model calls GEMMs between its own pool's work (attention, RMSNorm,
// SwiGLU, RoPE), so on a 2-thread run the spinning threads took the cores
// from that work: 20m / 120m LoRA training steps at 2 threads ran 9-10%
// faster with 16 (5 and 4 interleaved rounds, session 5), with about half
// the system time. Read in OpenBLAS's load-time constructor, like the
// core type; a value the user set is kept.
void choose_thread_timeout(BlasLib& info) {
  if (const char* e = std::getenv("OPENBLAS_THREAD_TIMEOUT"); e && *e) {
    info.thread_timeout_env = e;
    return;
  }
  setenv("OPENBLAS_THREAD_TIMEOUT", "16", 0);
  info.thread_timeout_env = "16";
  info.thread_timeout_set_by_us = true;
}

bool try_open(Loaded& s, const std::string& path) {
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* err = dlerror();
    s.info.attempts.push_back(path + ": " + (err ? err : "dlopen failed"));
    return false;
  }
  auto sgemm = reinterpret_cast<SgemmFn>(dlsym(h, "cblas_sgemm"));
  if (!sgemm) {
    s.info.attempts.push_back(path + ": no cblas_sgemm symbol");
    dlclose(h);
    return false;
  }
  s.sgemm = sgemm;
  s.dgemm = reinterpret_cast<DgemmFn>(dlsym(h, "cblas_dgemm"));
  s.dsyevd = reinterpret_cast<DsyevdFn>(dlsym(h, "dsyevd_"));
  s.set_threads = reinterpret_cast<SetThreadsFn>(dlsym(h, "openblas_set_num_threads"));
  s.get_threads = reinterpret_cast<GetThreadsFn>(dlsym(h, "openblas_get_num_threads"));
  if (auto f = reinterpret_cast<GetStrFn>(dlsym(h, "openblas_get_config")))
    if (const char* c = f()) s.info.config = c;
  if (auto f = reinterpret_cast<GetStrFn>(dlsym(h, "openblas_get_corename")))
    if (const char* c = f()) s.info.corename = c;
  // Record the file actually loaded (the soname resolved by the loader).
  Dl_info where{};
  s.info.path = dladdr(reinterpret_cast<void*>(sgemm), &where) && where.dli_fname ? where.dli_fname : path;
  s.info.loaded = true;
  return true;
}

// pthread_atfork handlers (see Loaded::call_mu). In the child the forking
// thread, which holds the lock, is the only thread, and releases it.
void fork_prepare() { state().call_mu.lock(); }
void fork_parent() { state().call_mu.unlock(); }
void fork_child() { state().call_mu.unlock(); }

void load(Loaded& s) {
  std::vector<std::string> candidates;
  if (const char* e = std::getenv("BAYESLORA_BLAS"); e && *e) {
    if (std::string(e) == "none") {
      s.info.attempts.push_back("disabled by BAYESLORA_BLAS=none");
      return;
    }
    candidates.push_back(e);
  }
  candidates.push_back("libopenblas.so.0");
  candidates.push_back("libopenblas.so");
  choose_coretype(s.info);
  choose_thread_timeout(s.info);
  for (const auto& c : candidates)
    if (try_open(s, c)) break;
  if (s.info.loaded) pthread_atfork(fork_prepare, fork_parent, fork_child);
}

Loaded& loaded() {
  static std::once_flag once;
  Loaded& s = state();
  std::call_once(once, [&] { load(s); });
  return s;
}

// Keep the BLAS thread count equal to the pool size (setThreads may change
// it at any time between calls); cheap when nothing changed.
void sync_threads(Loaded& s) {
  if (!s.set_threads) return;
  int want = num_threads();
  if (s.threads_set.load(std::memory_order_relaxed) == want) return;
  std::lock_guard<std::mutex> lk(s.threads_mu);
  if (s.threads_set.load() == want) return;
  s.set_threads(want);
  s.threads_set.store(want);
}

}  // namespace

const BlasLib& blas_lib() {
  Loaded& s = loaded();
  sync_threads(s);
  return s.info;
}

bool blas_sgemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
                const float* B, int ldb, float beta, float* C, int ldc) {
  Loaded& s = loaded();
  if (!s.sgemm) return false;
  std::lock_guard<std::mutex> one(s.call_mu);
  sync_threads(s);
  s.sgemm(kCblasRowMajor, ta ? kCblasTrans : kCblasNoTrans, tb ? kCblasTrans : kCblasNoTrans, M,
          N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  return true;
}

bool blas_dgemm(bool ta, bool tb, int M, int N, int K, double alpha, const double* A, int lda,
                const double* B, int ldb, double beta, double* C, int ldc) {
  Loaded& s = loaded();
  if (!s.dgemm) return false;
  std::lock_guard<std::mutex> one(s.call_mu);
  sync_threads(s);
  s.dgemm(kCblasRowMajor, ta ? kCblasTrans : kCblasNoTrans, tb ? kCblasTrans : kCblasNoTrans, M,
          N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  return true;
}

bool lapack_dsyevd(int n, double* A, double* w, int* info) {
  Loaded& s = loaded();
  if (!s.dsyevd) return false;
  std::lock_guard<std::mutex> one(s.call_mu);
  sync_threads(s);
  const char jobz = 'V', uplo = 'L';
  // Workspace query first, then the real call.
  int lwork = -1, liwork = -1, iwq = 0;
  double wq = 0;
  s.dsyevd(&jobz, &uplo, &n, A, &n, w, &wq, &lwork, &iwq, &liwork, info);
  if (*info != 0) return true;
  lwork = std::max(1, int(wq));
  liwork = std::max(1, iwq);
  std::vector<double> work(static_cast<size_t>(lwork));
  std::vector<int> iwork(static_cast<size_t>(liwork));
  s.dsyevd(&jobz, &uplo, &n, A, &n, w, work.data(), &lwork, iwork.data(), &liwork, info);
  return true;
}

int blas_threads() {
  Loaded& s = loaded();
  sync_threads(s);
  return s.get_threads ? s.get_threads() : 0;
}

}  // namespace bl::cpu
