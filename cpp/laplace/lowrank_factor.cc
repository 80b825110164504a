// Incremental low-rank factor via the (k+m) Gram eigenproblem (see lowrank_factor.h).
#include "laplace/lowrank_factor.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <vector>

#include "backend/backend.h"
#include "core/error.h"
#include "core/threads.h"
#include "laplace/linalg64.h"

namespace bl::laplace {

LowRankFactor::LowRankFactor(int d, int k, int chunk, MemCounter* mc)
    : d_(d), k_(k), chunk_(chunk), mc_(mc), M_(mc) {
  BL_CHECK(d > 0 && k > 0 && chunk > 0, code::kInvalidArgument,
           "low-rank factor: d, k and chunk must be positive");
}

void LowRankFactor::set_stride(int ld) {
  if (ld == ld_) return;
  const size_t D = size_t(d_), used = size_t(kcur_ + npend_), from = size_t(ld_), to = size_t(ld);
  // Rows move in place: up from the last row when growing (each destination
  // lies at or past its source and every lower row's), down from the first
  // when shrinking; the buffer grows before and shrinks after.
  if (to > from) {
    M_.resize(D * to);
    for (size_t r = D; r-- > 1;) std::memmove(&M_[r * to], &M_[r * from], used * sizeof(double));
  } else {
    for (size_t r = 1; r < D; ++r) std::memmove(&M_[r * to], &M_[r * from], used * sizeof(double));
    M_.resize(D * to);
  }
  ld_ = ld;
}

void LowRankFactor::reserve_cols(int n) {
  if (n > ld_) set_stride(std::min(k_ + chunk_, std::max({n, 2 * ld_, 8})));
}

void LowRankFactor::add_column(const double* x, double scale) {
  bool nonzero = false;
  for (int r = 0; r < d_ && !nonzero; ++r) nonzero = x[r] != 0;
  if (!nonzero || scale == 0) return;
  if (npend_ == chunk_) compress();
  reserve_cols(kcur_ + npend_ + 1);
  const size_t col = size_t(kcur_ + npend_), ld = size_t(ld_);
  for (int r = 0; r < d_; ++r) M_[size_t(r) * ld + col] = scale * x[r];
  ++npend_;
}

void LowRankFactor::add_column_f32(const float* x, double scale) {
  bool nonzero = false;
  for (int r = 0; r < d_ && !nonzero; ++r) nonzero = x[r] != 0;
  if (!nonzero || scale == 0) return;
  if (npend_ == chunk_) compress();
  reserve_cols(kcur_ + npend_ + 1);
  const size_t col = size_t(kcur_ + npend_), ld = size_t(ld_);
  for (int r = 0; r < d_; ++r) M_[size_t(r) * ld + col] = scale * double(x[r]);
  ++npend_;
}

void LowRankFactor::flush() {
  if (npend_ > 0) compress();
  set_stride(kcur_);  // release the pending columns' space
}

void LowRankFactor::compress() {
  const int n = kcur_ + npend_;
  if (npend_ == 0 || n == 0) return;
  const size_t N = size_t(n), ld = size_t(ld_);
  dvec G(N * N, 0.0, TrackedAlloc<double>(mc_)), V(N * N, 0.0, TrackedAlloc<double>(mc_)),
      w(N, 0.0, TrackedAlloc<double>(mc_));
  // G = M^T M through the seam op; M is host memory, so the CPU backend's.
  cpu_backend().gram64(G.data(), M_.data(), d_, n, int(ld));
  la::sym_eig(n, G.data(), w.data(), V.data());
  // Keep the leading k eigenpairs that are above the Gram's rounding level;
  // the rest are zero directions of S (dropping them changes L L^T by O(eps)).
  const double tol = std::max(0.0, w[0]) * double(n) * 4 * DBL_EPSILON;
  int knew = 0;
  while (knew < std::min(k_, n) && w[size_t(knew)] > tol) ++knew;
  // L <- M V[:, :knew], row by row (each row only needs itself).
  parallel_for(size_t(d_), std::max<size_t>(1, 65536 / (N * size_t(knew + 1))), [&](size_t r0, size_t r1) {
    std::vector<double> tmp(size_t(std::max(knew, 1)));
    for (size_t r = r0; r < r1; ++r) {
      double* Mr = &M_[r * ld];
      for (int j = 0; j < knew; ++j) {
        double s = 0;
        for (size_t i = 0; i < N; ++i) s += Mr[i] * V[i * N + size_t(j)];
        tmp[size_t(j)] = s;
      }
      for (int j = 0; j < knew; ++j) Mr[j] = tmp[size_t(j)];
    }
  });
  kcur_ = knew;
  npend_ = 0;
}

void LowRankFactor::copy_L(double* out) {
  flush();
  const size_t ld = size_t(ld_);
  for (int r = 0; r < d_; ++r)
    for (int j = 0; j < kcur_; ++j) out[size_t(r) * size_t(kcur_) + size_t(j)] = M_[size_t(r) * ld + size_t(j)];
}

void LowRankFactor::set_L(const double* L, int r) {
  BL_CHECK(r >= 0 && r <= k_, code::kInvalidArgument, "low-rank factor: rank ", r, " exceeds k = ", k_);
  kcur_ = npend_ = 0;
  set_stride(r);
  const size_t ld = size_t(ld_);
  for (int i = 0; i < d_; ++i)
    for (int j = 0; j < r; ++j) M_[size_t(i) * ld + size_t(j)] = L[size_t(i) * size_t(r) + size_t(j)];
  kcur_ = r;
  npend_ = 0;
}

void LowRankFactor::merge_from(LowRankFactor& other) {
  BL_CHECK(other.d_ == d_, code::kShapeMismatch, "low-rank merge: sides differ (", d_, " vs ", other.d_, ")");
  other.flush();
  // Copy first: `other` may be this object (merge with itself doubles S).
  const int r = other.kcur_;
  dvec L(size_t(d_) * size_t(r), 0.0, TrackedAlloc<double>(mc_));
  other.copy_L(L.data());
  std::vector<double> col(static_cast<size_t>(d_));
  for (int j = 0; j < r; ++j) {
    for (int i = 0; i < d_; ++i) col[size_t(i)] = L[size_t(i) * size_t(r) + size_t(j)];
    add_column(col.data());
  }
  flush();
}

}  // namespace bl::laplace
