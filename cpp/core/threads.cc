// Thread pool implementation: one job at a time; chunks are claimed with an
// atomic counter. Between jobs a worker first spins for a short while (pause,
// then yield), and only then sleeps on a condition variable; the caller waits
// for the workers the same way. Why: a training step or Fisher pass issues
// hundreds of short parallel jobs (norms, RoPE, attention, GEMM blocks) with
// microseconds of serial work between them. Sleeping after each one cost a
// futex wake, a context switch and a futex wait per job and thread: 7-11% of
// a 2-thread 20m training step or Fisher pass went to the scheduler. The spin
// is short (BAYESLORA_SPIN_US, default 50 microseconds, at most 100000;
// 0 = always sleep; read when the pool starts or is resized) and yields the
// core, so another runnable thread (an OpenBLAS worker, libuv) still gets it,
// as OpenBLAS's own threads do while they wait. Measured paired in one process
// by bench/pool.ts; with 4 threads on the 2 cores it was no slower either.
#include "core/threads.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <immintrin.h>
#define BL_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define BL_CPU_RELAX() asm volatile("yield" ::: "memory")
#else
#define BL_CPU_RELAX() ((void)0)
#endif

namespace bl {
namespace {

thread_local bool tl_in_pool = false;

int spin_us_setting() {
  if (const char* e = std::getenv("BAYESLORA_SPIN_US")) {
    char* end = nullptr;
    long v = std::strtol(e, &end, 10);
    if (end != e && *end == '\0' && v >= 0 && v <= 100000) return int(v);
  }
  return 50;
}

// Spin until pred() holds or `us` microseconds pass: true if it held.
template <class Pred>
bool spin_until(int us, Pred pred) {
  if (us <= 0) return pred();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(us);
  for (unsigned i = 1;; ++i) {
    if (pred()) return true;
    if ((i & 63) == 0) {
      if (std::chrono::steady_clock::now() >= deadline) return pred();
      std::this_thread::yield();
    } else {
      BL_CPU_RELAX();
    }
  }
}

class Pool {
 public:
  explicit Pool(int n) { start(n); }
  ~Pool() { stop(); }

  int size() const { return n_; }
  int spin_us() const { return spin_us_; }

  void resize(int n) {
    std::lock_guard<std::mutex> job(job_mu_);
    stop();
    start(n);
  }

  // Returns false when the pool is busy (caller runs inline).
  bool run(size_t n, size_t chunk, const std::function<void(size_t, size_t)>& fn) {
    std::unique_lock<std::mutex> job(job_mu_, std::try_to_lock);
    if (!job.owns_lock()) return false;
    size_t nchunks = (n + chunk - 1) / chunk;
    {
      std::lock_guard<std::mutex> lk(mu_);
      fn_ = &fn;
      n_items_ = n;
      chunk_ = chunk;
      nchunks_ = nchunks;
      next_.store(0);
      done_.store(0);
      error_ = nullptr;
      // Published last: a spinning worker that sees the new generation sees
      // the fields above (written before this store in this thread).
      generation_.fetch_add(1);
    }
    cv_.notify_all();  // no system call when no worker sleeps
    work();            // the caller works too
    const int nw = int(workers_.size());
    if (!spin_until(spin_us_, [&] { return done_.load() == nw; })) {
      std::unique_lock<std::mutex> lk(mu_);
      done_cv_.wait(lk, [&] { return done_.load() == nw; });
    }
    std::lock_guard<std::mutex> lk(mu_);
    fn_ = nullptr;
    if (error_) std::rethrow_exception(error_);
    return true;
  }

 private:
  void start(int n) {
    n_ = std::max(1, n);
    spin_us_ = spin_us_setting();  // read when the pool (re)starts
    quit_.store(false);
    // A new worker starts at the current generation: after a resize it is not
    // 0 (stop() advanced it), and a worker starting from 0 would take that for
    // a job, run a stale work() and count itself done, possibly inside the next
    // real job, which could then return while a chunk still ran.
    const uint64_t g0 = generation_.load();
    for (int i = 1; i < n_; ++i) workers_.emplace_back([this, g0] { loop(g0); });
  }
  void stop() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      quit_.store(true);
      generation_.fetch_add(1);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }
  void work() {
    bool was = tl_in_pool;
    tl_in_pool = true;
    for (;;) {
      size_t c = next_.fetch_add(1);
      if (c >= nchunks_) break;
      size_t b = c * chunk_, e = std::min(n_items_, b + chunk_);
      try {
        (*fn_)(b, e);
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu_);
        if (!error_) error_ = std::current_exception();
      }
    }
    tl_in_pool = was;
  }
  void loop(uint64_t seen) {
    tl_in_pool = true;
    for (;;) {
      if (!spin_until(spin_us_, [&] { return generation_.load() != seen; })) {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return generation_.load() != seen; });
      }
      {
        // The job's fields were written under mu_ before the generation
        // changed; taking mu_ here (uncontended) orders this worker after them
        // on every path, and reads quit_ consistently with the generation.
        std::lock_guard<std::mutex> lk(mu_);
        seen = generation_.load();
        if (quit_.load()) return;
      }
      work();
      {
        std::lock_guard<std::mutex> lk(mu_);
        done_.fetch_add(1);
      }
      done_cv_.notify_one();
    }
  }

  int spin_us_ = 0;
  int n_ = 1;
  std::vector<std::thread> workers_;
  std::mutex job_mu_, mu_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(size_t, size_t)>* fn_ = nullptr;
  size_t n_items_ = 0, chunk_ = 1, nchunks_ = 0;
  std::atomic<size_t> next_{0};
  std::atomic<int> done_{0};
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> quit_{false};
  std::exception_ptr error_;
};

int default_threads() {
  if (const char* e = std::getenv("BAYESLORA_THREADS")) {
    int n = std::atoi(e);
    if (n >= 1 && n <= 1024) return n;
  }
  unsigned h = std::thread::hardware_concurrency();
  return h ? int(h) : 1;
}

Pool& pool() {
  static Pool* p = new Pool(default_threads());  // leaked on purpose: no join at exit
  return *p;
}

}  // namespace

int num_threads() { return pool().size(); }
int thread_spin_us() { return pool().spin_us(); }
bool in_pool_worker() { return tl_in_pool; }
void set_num_threads(int n) { pool().resize(n); }

void parallel_for(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn) {
  if (n == 0) return;
  grain = std::max<size_t>(grain, 1);
  Pool& p = pool();
  int nt = p.size();
  if (nt <= 1 || tl_in_pool || n <= grain) {
    fn(0, n);
    return;
  }
  // A few chunks per thread for balance, never smaller than grain.
  size_t chunk = std::max(grain, (n + size_t(nt) * 4 - 1) / (size_t(nt) * 4));
  if (!p.run(n, chunk, fn)) fn(0, n);
}

}  // namespace bl
