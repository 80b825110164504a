// Thread pool implementation: one job at a time, workers sleep on a condition
// variable between jobs; chunks are claimed with an atomic counter.
#include "core/threads.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace bl {
namespace {

thread_local bool tl_in_pool = false;

class Pool {
 public:
  explicit Pool(int n) { start(n); }
  ~Pool() { stop(); }

  int size() const { return n_; }

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
      done_ = 0;
      error_ = nullptr;
      ++generation_;
    }
    cv_.notify_all();
    work();  // the caller works too
    std::unique_lock<std::mutex> lk(mu_);
    done_cv_.wait(lk, [&] { return done_ == int(workers_.size()); });
    fn_ = nullptr;
    if (error_) std::rethrow_exception(error_);
    return true;
  }

 private:
  void start(int n) {
    n_ = std::max(1, n);
    quit_ = false;
    for (int i = 1; i < n_; ++i) workers_.emplace_back([this] { loop(); });
  }
  void stop() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      quit_ = true;
      ++generation_;
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
  void loop() {
    tl_in_pool = true;
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return generation_ != seen; });
        seen = generation_;
        if (quit_) return;
      }
      work();
      {
        std::lock_guard<std::mutex> lk(mu_);
        ++done_;
      }
      done_cv_.notify_one();
    }
  }

  int n_ = 1;
  std::vector<std::thread> workers_;
  std::mutex job_mu_, mu_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(size_t, size_t)>* fn_ = nullptr;
  size_t n_items_ = 0, chunk_ = 1, nchunks_ = 0;
  std::atomic<size_t> next_{0};
  int done_ = 0;
  uint64_t generation_ = 0;
  bool quit_ = false;
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
