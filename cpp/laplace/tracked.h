// Memory accounting for the Laplace state: a per-object byte counter and an
// allocator that reports to it. Why: the low-rank factors exist so that a
// d x d matrix (d = 4096 and more) is never formed; the accumulator's peak
// byte count makes that property observable and testable, and tells users
// what the Bayesian part costs in memory.
#pragma once
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <vector>

namespace bl::laplace {

struct MemCounter {
  std::atomic<int64_t> current{0};
  std::atomic<int64_t> peak{0};
  void add(int64_t bytes) {
    int64_t now = current.fetch_add(bytes) + bytes;
    int64_t p = peak.load();
    while (now > p && !peak.compare_exchange_weak(p, now)) {
    }
  }
  void sub(int64_t bytes) { current.fetch_sub(bytes); }
  void reset_peak() { peak.store(current.load()); }
};

// std::allocator that reports to a MemCounter (nullptr: untracked).
template <class T>
struct TrackedAlloc {
  using value_type = T;
  MemCounter* counter = nullptr;
  TrackedAlloc() = default;
  explicit TrackedAlloc(MemCounter* c) : counter(c) {}
  template <class U>
  TrackedAlloc(const TrackedAlloc<U>& o) : counter(o.counter) {}
  T* allocate(size_t n) {
    T* p = std::allocator<T>().allocate(n);
    if (counter) counter->add(int64_t(n * sizeof(T)));
    return p;
  }
  void deallocate(T* p, size_t n) {
    if (counter) counter->sub(int64_t(n * sizeof(T)));
    std::allocator<T>().deallocate(p, n);
  }
  // Copies and moves keep the destination's counter: each object accounts for
  // the memory it holds.
  using propagate_on_container_copy_assignment = std::false_type;
  using propagate_on_container_move_assignment = std::false_type;
  using propagate_on_container_swap = std::false_type;
  TrackedAlloc select_on_container_copy_construction() const { return TrackedAlloc(counter); }
};
template <class T, class U>
bool operator==(const TrackedAlloc<T>& a, const TrackedAlloc<U>& b) {
  return a.counter == b.counter;
}
template <class T, class U>
bool operator!=(const TrackedAlloc<T>& a, const TrackedAlloc<U>& b) {
  return a.counter != b.counter;
}

// Hand the heap's free pages back to the OS (glibc: malloc_trim, every
// arena). Why: the Laplace passes run on worker threads, each with its own
// glibc arena; the megabytes a predictive batch or an eigendecomposition
// frees there stay resident (peak RSS grows batch by batch) until trimmed.
// Called after such phases; costs a walk over the free lists (milliseconds).
inline void release_free_heap() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

using dvec = std::vector<double, TrackedAlloc<double>>;
using fvec = std::vector<float, TrackedAlloc<float>>;

}  // namespace bl::laplace
