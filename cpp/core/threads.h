// A small persistent thread pool for CPU kernels. parallel_for splits [0, n)
// into contiguous chunks of at least `grain` items. Safe to call from several
// threads at once (e.g. two models training concurrently): a caller that finds
// the pool busy, or that is itself a pool worker, runs its loop inline.
// Between jobs workers spin briefly before sleeping (BAYESLORA_SPIN_US, read
// when the pool starts or is resized; threads.cc says why).
#pragma once
#include <cstddef>
#include <functional>

namespace bl {

// Number of threads kernels use (BAYESLORA_THREADS, else hardware concurrency).
int num_threads();
// Microseconds a kernel thread spins (yielding) between jobs before it sleeps.
int thread_spin_us();
// Change the pool size (>= 1). Not to be called while kernels run.
void set_num_threads(int n);

// True on a pool worker thread (or a caller inside parallel_for): nested
// parallel work there runs inline, and multi-threaded libraries (OpenBLAS)
// should not be entered, or they oversubscribe the cores.
bool in_pool_worker();

void parallel_for(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn);

}  // namespace bl
