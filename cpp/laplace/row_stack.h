// A dense K-FAC factor side kept as its rows while they are few (memory): for
// a side d <= threshold the sum S = sum_i s_i^2 x_i x_i^T (d x d float64) has
// rank <= n, the number of rows added; while n <= d / 2 the rows themselves
// (n x d float32, as the model produced them, and one float64 scale per batch
// of rows) hold S in a fraction of d^2 doubles. Reduce-mode fits on N examples
// add N input rows and N * C gradient rows per layer, so a fit on a few dozen
// examples never forms a 384 x 384 matrix per side. KfacFactor switches to its
// d x d sum when the next batch would pass d / 2 rows, by replaying the held
// batches through its dense route, so the sum is the one it would have had.
//
// The eigen form of a held side comes from the rows (the n x n Gram of the
// float64 scaled rows Y, as for low-rank factors): at most n eigenpairs, d x
// rank eigenvectors. The d x d route would add float32-Gram rounding in the
// d - rank null directions (eigenvalues ~1e-7 of the largest, zero in exact
// arithmetic); here they are exactly zero (the spec's complement, section 6).
#pragma once
#include <functional>
#include <vector>

#include "laplace/tracked.h"

namespace bl::laplace {

class RowStack {
 public:
  // d: side; max_rows: rows held before the owner switches to a dense sum.
  RowStack(int d, int max_rows, MemCounter* mc);

  int d() const { return d_; }
  int rows() const { return n_; }
  int max_rows() const { return max_; }
  bool fits(int n) const { return n_ + n <= max_; }

  // Append the batch X (n x d float32, row-major) with scale `scale` (S +=
  // scale^2 x x^T per row). A batch of all-zero rows is skipped (it adds
  // exact zeros). INTERNAL error if it does not fit (callers check fits()).
  void add(const float* X, int n, double scale);
  // Append every batch of `o` (same d). o may be this object.
  void append(const RowStack& o);

  // Y (n x d, row-major float64): row i = scale_i * x_i, so Y^T Y = S.
  void scaled_rows(double* Y) const;
  // The held batches in order (rows, count, scale): replay into a dense sum.
  void for_each_batch(const std::function<void(const float*, int, double)>& f) const;

  // Raw state (persistence): rows (n x d float32), batch starts (increasing,
  // first 0) and scales. set() validates and replaces the state.
  const float* data() const { return X_.data(); }
  const std::vector<int>& batch_starts() const { return starts_; }
  const std::vector<double>& batch_scales() const { return scales_; }
  void set(const float* X, int n, const std::vector<int>& starts, const std::vector<double>& scales);

 private:
  int d_, max_, n_ = 0;
  fvec X_;                      // n x d
  std::vector<int> starts_;     // first row of each batch
  std::vector<double> scales_;  // scale of each batch
};

}  // namespace bl::laplace
