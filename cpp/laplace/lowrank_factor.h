// An incrementally updated low-rank K-FAC factor (spec section 5): for a
// factor side d above the threshold keep L (d x k) with L L^T ~= S = sum of
// the added column outer products, never a d x d matrix.
//
// Storage is one row-major d x (k + chunk) float64 block M = [L | pending]:
// new columns are appended to the pending part; when it is full (or on
// flush) the block is compressed with the Gram route
//     G = M^T M  ((k+m) x (k+m)),  G = V diag(w) V^T,  L <- M V[:, :k]
// so that L's columns are orthogonal with squared norms w (= Sigma^2 of the
// thin SVD of M). Cost O(d (k+m)^2) per flush; the chunk bounds m so long
// sequences in `expand` mode are processed in column chunks. With k >= rank
// the update is exact (V V^T = I), the test of section 5.
// Memory: the block holds only the columns in use. Its row stride grows (at
// least doubling, up to k + chunk) as columns arrive and shrinks to the rank
// on flush(), so a flushed factor (what the posterior and a saved file read)
// costs d x rank, not d x (k + chunk). The stride never changes the numbers;
// rows move in place inside a RemapBuffer, so a change never holds two blocks.
#pragma once
#include <cstdint>

#include "laplace/remap_buffer.h"
#include "laplace/tracked.h"

namespace bl::laplace {

class LowRankFactor {
 public:
  // d: side, k: retained rank (n_kfac), chunk: pending columns per flush (>= 1).
  LowRankFactor(int d, int k, int chunk, MemCounter* mc);

  int d() const { return d_; }
  int k() const { return k_; }
  int rank() const { return kcur_; }       // columns of L currently held (<= k)
  int pending() const { return npend_; }

  // Append the column scale * x (x has d entries). Zero columns are skipped.
  void add_column(const double* x, double scale = 1.0);
  void add_column_f32(const float* x, double scale = 1.0);

  // Compress pending columns into L. Idempotent.
  void flush();

  // L after flush: column j of row r is L(r, j) = data()[r * ld() + j], j < rank().
  const double* data() const { return M_.data(); }
  int ld() const { return ld_; }

  // Copy L (d x rank, row-major, dense) out; flushes first.
  void copy_L(double* out);
  // Replace the state by L (d x r, r <= k); pending columns are dropped.
  void set_L(const double* L, int r);
  // Add every column of other's L (other is flushed first), then flush.
  void merge_from(LowRankFactor& other);

 private:
  void compress();
  void reserve_cols(int n);  // stride >= n columns, keeping the held ones
  void set_stride(int ld);
  int d_, k_, chunk_, ld_ = 0;
  int kcur_ = 0, npend_ = 0;
  MemCounter* mc_;
  RemapBuffer M_;  // d x ld_, columns [0, kcur_ + npend_) in use
};

}  // namespace bl::laplace
