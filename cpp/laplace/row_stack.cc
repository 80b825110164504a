// Dense factor sides held as their rows while few (see row_stack.h).
#include "laplace/row_stack.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace bl::laplace {

RowStack::RowStack(int d, int max_rows, MemCounter* mc) : d_(d), max_(std::max(max_rows, 0)), X_(TrackedAlloc<float>(mc)) {
  BL_CHECK(d > 0, code::kInvalidArgument, "row stack: d must be positive");
}

void RowStack::add(const float* X, int n, double scale) {
  if (n <= 0 || scale == 0) return;
  const size_t D = size_t(d_);
  if (std::all_of(X, X + size_t(n) * D, [](float v) { return v == 0; })) return;
  BL_CHECK(fits(n), code::kInternal, "row stack: ", n_, " + ", n, " rows exceed ", max_);
  // Grow by at least doubling, never past max_ rows.
  const size_t need = size_t(n_ + n) * D;
  if (X_.capacity() < need) X_.reserve(std::min(size_t(max_) * D, std::max(need, 2 * X_.capacity())));
  X_.insert(X_.end(), X, X + size_t(n) * D);
  starts_.push_back(n_);
  scales_.push_back(scale);
  n_ += n;
}

void RowStack::append(const RowStack& o) {
  BL_CHECK(o.d_ == d_, code::kShapeMismatch, "row stack: sides differ (", d_, " vs ", o.d_, ")");
  BL_CHECK(fits(o.n_), code::kInternal, "row stack: append exceeds ", max_, " rows");
  // Copies first: `o` may be this object.
  const std::vector<float> X(o.X_.begin(), o.X_.end());
  const std::vector<int> st(o.starts_);
  const std::vector<double> sc(o.scales_);
  X_.insert(X_.end(), X.begin(), X.end());
  for (size_t b = 0; b < st.size(); ++b) {
    starts_.push_back(n_ + st[b]);
    scales_.push_back(sc[b]);
  }
  n_ += int(X.size() / size_t(d_));
}

void RowStack::for_each_batch(const std::function<void(const float*, int, double)>& f) const {
  for (size_t b = 0; b < starts_.size(); ++b) {
    const int end = b + 1 < starts_.size() ? starts_[b + 1] : n_;
    f(X_.data() + size_t(starts_[b]) * size_t(d_), end - starts_[b], scales_[b]);
  }
}

void RowStack::scaled_rows(double* Y) const {
  const size_t D = size_t(d_);
  for_each_batch([&](const float* X, int n, double s) {
    for (size_t i = 0; i < size_t(n) * D; ++i) *Y++ = s * double(X[i]);
  });
}

void RowStack::set(const float* X, int n, const std::vector<int>& starts, const std::vector<double>& scales) {
  BL_CHECK(n >= 0 && n <= max_, code::kInvalidArgument, "row stack: ", n, " rows exceed ", max_);
  BL_CHECK(starts.size() == scales.size() && (n == 0) == starts.empty(), code::kInvalidArgument,
           "row stack: batch table does not match the rows");
  for (size_t b = 0; b < starts.size(); ++b) {
    BL_CHECK(starts[b] < n && (b == 0 ? starts[b] == 0 : starts[b] > starts[b - 1]), code::kInvalidArgument,
             "row stack: batch starts must increase from 0 below ", n);
    BL_CHECK(std::isfinite(scales[b]), code::kInvalidArgument, "row stack: batch scales must be finite");
  }
  X_.assign(X, X + size_t(n) * size_t(d_));
  starts_ = starts;
  scales_ = scales;
  n_ = n;
}

}  // namespace bl::laplace
