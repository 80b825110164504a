// Resizable float64 buffer without copy transients (see remap_buffer.h).
#include "laplace/remap_buffer.h"

#include <cstdlib>
#include <cstring>

#include "core/error.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace bl::laplace {

namespace {

size_t page_round(size_t b) {
  constexpr size_t kPage = 4096;
  return (b + kPage - 1) / kPage * kPage;
}

}  // namespace

RemapBuffer::~RemapBuffer() {
  if (!p_) return;
#if defined(__linux__)
  if (mapped_) {
    munmap(p_, cap_bytes_);
  } else {
    std::free(p_);
  }
#else
  std::free(p_);
#endif
  if (mc_) mc_->sub(int64_t(n_ * sizeof(double)));
}

void RemapBuffer::resize(size_t n) {
  if (n == n_) return;
  const size_t bytes = n * sizeof(double);
  void* q = nullptr;
#if defined(__linux__)
  const bool map = bytes >= kMapBytes;
  if (map && mapped_) {  // mapping -> mapping: move the pages
    const size_t cap = page_round(bytes);
    q = mremap(p_, cap_bytes_, cap, MREMAP_MAYMOVE);
    if (q == MAP_FAILED) fail(code::kOutOfMemory, "low-rank factor: cannot resize a block to ", bytes, " bytes");
    cap_bytes_ = cap;
  } else if (map) {  // heap (or nothing) -> mapping: small copy
    const size_t cap = page_round(bytes);
    q = mmap(nullptr, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (q == MAP_FAILED) fail(code::kOutOfMemory, "low-rank factor: cannot map ", bytes, " bytes");
    if (p_) {
      std::memcpy(q, p_, std::min(n_, n) * sizeof(double));
      std::free(p_);
    }
    cap_bytes_ = cap;
    mapped_ = true;
  } else if (mapped_) {  // mapping -> heap: small copy
    q = bytes ? std::malloc(bytes) : nullptr;
    if (bytes && !q) fail(code::kOutOfMemory, "low-rank factor: cannot allocate ", bytes, " bytes");
    if (q) std::memcpy(q, p_, bytes);
    munmap(p_, cap_bytes_);
    cap_bytes_ = bytes;
    mapped_ = false;
  } else
#endif
  {
    if (bytes == 0) {
      std::free(p_);
      q = nullptr;
    } else {
      q = std::realloc(p_, bytes);
      if (!q) fail(code::kOutOfMemory, "low-rank factor: cannot allocate ", bytes, " bytes");
    }
    cap_bytes_ = bytes;
  }
  p_ = static_cast<double*>(q);
  if (mc_) {
    if (n > n_)
      mc_->add(int64_t((n - n_) * sizeof(double)));
    else
      mc_->sub(int64_t((n_ - n) * sizeof(double)));
  }
  n_ = n;
}

}  // namespace bl::laplace
