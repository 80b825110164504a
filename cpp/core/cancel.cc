// Cooperative cancellation (see cancel.h).
#include "core/cancel.h"

#include "core/error.h"

namespace bl {

namespace {
thread_local CancelFlag* tl_flag = nullptr;
}

CancelScope::CancelScope(std::shared_ptr<CancelFlag> f) : f_(std::move(f)), prev_(tl_flag) {
  if (f_) tl_flag = f_.get();
}

CancelScope::~CancelScope() {
  if (f_) tl_flag = prev_;
}

CancelFlag* current_cancel() { return tl_flag; }

void check_cancel(const char* where, const CancelFlag* f) {
  if (f && f->load(std::memory_order_relaxed)) fail(code::kAborted, where, ": aborted");
}

}  // namespace bl
