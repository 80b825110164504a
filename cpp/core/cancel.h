// Cooperative cancellation of long native work (a JS AbortSignal). A
// CancelFlag is shared by the JS thread, which sets it when the signal
// aborts, and the worker thread that runs the operation. The worker installs
// the flag for its thread with a CancelScope; long loops call
// check_cancel(where) at safe points (between backward passes of a batch,
// between layers of an eigendecomposition, between rows of a predictive),
// which throws ABORTED once the flag is set. Safe points are chosen where an
// exception leaves nothing half-updated that the caller keeps (or the caller
// discards the object, as Laplace.fit does with its accumulator).
// parallel_for chunks run on pool threads that do not see the scope: capture
// current_cancel() before the loop and test it inside.
#pragma once
#include <atomic>
#include <memory>

namespace bl {

using CancelFlag = std::atomic<bool>;

class CancelScope {
 public:
  explicit CancelScope(std::shared_ptr<CancelFlag> f);
  ~CancelScope();
  CancelScope(const CancelScope&) = delete;
  CancelScope& operator=(const CancelScope&) = delete;

 private:
  std::shared_ptr<CancelFlag> f_;
  CancelFlag* prev_;
};

// The flag installed on this thread (nullptr when none).
CancelFlag* current_cancel();
// Throws bl::Error ABORTED ("<where>: aborted") when `f` (default: this
// thread's flag) is set.
void check_cancel(const char* where, const CancelFlag* f = current_cancel());

}  // namespace bl
