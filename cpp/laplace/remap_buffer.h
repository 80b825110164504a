// A float64 buffer that changes size without holding the old and the new
// storage at once. Why: a low-rank factor's block (d x stride) grows while a
// fit adds columns and shrinks to the rank on flush; with a copying
// reallocation every change briefly needs old + new (for the LM head's
// vocabulary-sized side, megabytes on top of the fit's peak), and the freed
// block may stay resident in an allocator arena. Blocks of 64 KiB and more are
// private anonymous mappings resized with mremap (page tables move, nothing
// is copied, a shrink returns pages at once); smaller ones use realloc.
#pragma once
#include <cstddef>

#include "laplace/tracked.h"

namespace bl::laplace {

class RemapBuffer {
 public:
  explicit RemapBuffer(MemCounter* mc = nullptr) : mc_(mc) {}
  ~RemapBuffer();
  RemapBuffer(const RemapBuffer&) = delete;
  RemapBuffer& operator=(const RemapBuffer&) = delete;

  // New size in doubles; the first min(n, size()) values are kept, new ones
  // are unspecified. Throws OUT_OF_MEMORY when the system refuses.
  void resize(size_t n);
  size_t size() const { return n_; }
  double* data() { return p_; }
  const double* data() const { return p_; }
  double& operator[](size_t i) { return p_[i]; }
  const double& operator[](size_t i) const { return p_[i]; }

 private:
  static constexpr size_t kMapBytes = size_t(64) << 10;
  MemCounter* mc_;
  double* p_ = nullptr;
  size_t n_ = 0;
  size_t cap_bytes_ = 0;  // bytes reserved (page-rounded when mapped)
  bool mapped_ = false;
};

}  // namespace bl::laplace
