// Eigen form of the K-FAC Laplace posterior: log-det and quadratic forms (see posterior.h).
#include "laplace/posterior.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <sstream>

#include "core/cancel.h"
#include "core/error.h"
#include "laplace/linalg64.h"

namespace bl::laplace {

static std::string fmt_num(double v) {  // short form for warnings (1e-15, not 0.000000)
  std::ostringstream o;
  o.precision(4);
  o << v;
  return o.str();
}


void factor_eigen(const KfacFactor& F, std::vector<double>& U, std::vector<double>& lam, int& k,
                  double* most_negative) {
  const int d = F.d();
  const size_t D = size_t(d);
  if (most_negative) *most_negative = 0;
  if (F.stacked()) {  // S = Y^T Y from n rows: eigen of the n x n Gram Y Y^T
    const RowStack& rs = F.rows();
    const int n = rs.rows();
    const size_t N = size_t(n);
    if (n == 0) {
      U.clear();
      lam.clear();
      k = 0;
      return;
    }
    std::vector<double> Y(N * D), Yt(D * N), G(N * N), V(N * N), w(N);
    rs.scaled_rows(Y.data());
    for (size_t i = 0; i < N; ++i)
      for (size_t j = 0; j < D; ++j) Yt[j * N + i] = Y[i * D + j];
    std::vector<double>().swap(Y);
    la::gram_cols(d, n, Yt.data(), n, G.data());  // Y Y^T
    la::sym_eig(n, G.data(), w.data(), V.data());
    // The low-rank branch's rule: eigenvalues at the Gram's float64 rounding
    // level are zero directions of S (PSD by construction: nothing to clamp).
    const double tol = std::max(0.0, w[0]) * double(n) * 4 * DBL_EPSILON;
    int kk = 0;
    while (kk < n && w[size_t(kk)] > tol) ++kk;
    // U = Y^T V diag(1/sqrt(w)): orthonormal columns spanning the rows.
    std::vector<double> Vk(N * size_t(kk));
    for (size_t i = 0; i < N; ++i)
      for (size_t j = 0; j < size_t(kk); ++j) Vk[i * size_t(kk) + j] = V[i * N + j] / std::sqrt(w[j]);
    U.assign(D * size_t(kk), 0.0);
    if (kk > 0) la::gemm_nn(d, n, kk, Yt.data(), Vk.data(), U.data());
    lam.assign(w.begin(), w.begin() + kk);
    k = kk;
    return;
  }
  if (!F.lowrank()) {
    U.assign(D * D, 0.0);
    lam.assign(D, 0.0);
    la::sym_eig(d, F.dense().data(), lam.data(), U.data());
    // Sums of outer products are PSD: negatives are rounding (or a damaged
    // loaded factor); clamping them is the smallest jitter that makes it PSD.
    for (auto& v : lam) {
      if (most_negative) *most_negative = std::min(*most_negative, v);
      v = std::max(v, 0.0);
    }
    // Keep only the span (the low-rank branch's rule): eigenvalues at float64
    // rounding level of the largest are the complement, whose eigenvalue is 0
    // in the eigen form anyway. An exactly rank-deficient sum (a side that got
    // no gradient, rows that are exact in float32) then costs d x rank, not
    // d x d. Float32 Gram rounding of generic rows stays above this level.
    const double tol = std::max(0.0, lam.empty() ? 0.0 : lam[0]) * double(d) * 4 * DBL_EPSILON;
    int kk = 0;
    while (kk < d && lam[size_t(kk)] > tol) ++kk;
    if (kk < d) {
      for (size_t i = 0; i < D; ++i)  // row-major d x d -> d x kk, in place (destinations never pass sources)
        for (size_t j = 0; j < size_t(kk); ++j) U[i * size_t(kk) + j] = U[i * D + j];
      U.resize(D * size_t(kk));
      U.shrink_to_fit();
      lam.resize(size_t(kk));
      lam.shrink_to_fit();
    }
    k = kk;
    return;
  }
  const LowRankFactor& lr = F.lr();
  BL_CHECK(lr.pending() == 0, code::kInternal, "factor_eigen: low-rank factor not flushed");
  const int r = lr.rank();
  const size_t R = size_t(r), ld = size_t(lr.ld());
  if (r == 0) {
    U.clear();
    lam.clear();
    k = 0;
    return;
  }
  std::vector<double> G(R * R), V(R * R), w(R);
  la::gram_cols(d, r, lr.data(), int(ld), G.data());
  la::sym_eig(r, G.data(), w.data(), V.data());
  const double tol = std::max(0.0, w[0]) * double(r) * 4 * DBL_EPSILON;
  int kk = 0;
  while (kk < r && w[size_t(kk)] > tol) ++kk;
  U.assign(D * size_t(kk), 0.0);
  lam.assign(w.begin(), w.begin() + kk);
  // U = L V diag(1/sqrt(w)): orthonormal columns spanning L's range.
  for (size_t i = 0; i < D; ++i) {
    const double* Li = lr.data() + i * ld;
    for (int j = 0; j < kk; ++j) {
      double s = 0;
      for (size_t c = 0; c < R; ++c) s += Li[c] * V[c * R + size_t(j)];
      U[i * size_t(kk) + size_t(j)] = s / std::sqrt(w[size_t(j)]);
    }
  }
  k = kk;
}

std::shared_ptr<Posterior> Posterior::from_kfac(KfacAccumulator& acc, double delta) {
  acc.flush();
  auto p = std::make_shared<Posterior>();
  p->options = acc.options();
  for (int l = 0; l < acc.num_layers(); ++l) {
    check_cancel("Laplace posterior");  // between layers' eigendecompositions
    const KfacLayer& L = acc.layer(l);
    double neg_a = 0, neg_g = 0;
    LayerEigen e;
    e.name = L.spec.name;
    e.id = L.spec.id;
    e.d_in = L.spec.d_in;
    e.d_out = L.spec.d_out;
    e.Z = L.Z;
    if (L.Z > 0) {  // no data: the posterior of this layer is its prior
      factor_eigen(L.A, e.Ua, e.la, e.ka, &neg_a);
      factor_eigen(L.G, e.Ug, e.lg, e.kg, &neg_g);
      // Beyond rounding (relative to the largest eigenvalue) the factor is not
      // PSD; say so. The sums come from float32 activations and gradients, so
      // rounding reaches ~ d * FLT_EPSILON of the largest eigenvalue.
      const auto check = [&](double neg, const std::vector<double>& lam, const char* side, int d) {
        const double top = lam.empty() ? 0.0 : lam.front();
        const double rel = std::max(1e-6, 8.0 * double(d) * double(FLT_EPSILON));
        if (neg < 0 && -neg > rel * std::max(top, DBL_MIN))
          p->warn("layer '" + L.spec.name + "' " + side + " factor is not positive semidefinite (eigenvalue " +
                  fmt_num(neg) + " vs largest " + fmt_num(top) +
                  "); negative eigenvalues clamped to 0 (diagonal jitter in its eigenbasis)");
      };
      check(neg_a, e.la, "input", e.d_in);
      check(neg_g, e.lg, "output-gradient", e.d_out);
    }
    p->layers_.push_back(std::move(e));
  }
  p->set_prior(delta);
  release_free_heap();  // the eigendecompositions' working copies
  return p;
}

int Posterior::layer_of_id(int id) const {
  for (int l = 0; l < num_layers(); ++l)
    if (layers_[size_t(l)].id == id) return l;
  return -1;
}

int64_t Posterior::num_params() const {
  int64_t n = 0;
  for (auto& l : layers_) n += l.D();
  return n;
}

void Posterior::warn(std::string w) {
  if (warnings.size() < kMaxWarnings) warnings.push_back(std::move(w));
}

void Posterior::set_prior(double delta) {
  set_prior(std::vector<double>(layers_.size(), delta));
}

void Posterior::set_prior(const std::vector<double>& deltas) {
  BL_CHECK(deltas.size() == layers_.size(), code::kShapeMismatch, "got ", deltas.size(),
           " prior precisions for ", layers_.size(), " layers");
  for (double d : deltas)
    BL_CHECK(std::isfinite(d) && d > 0, code::kInvalidArgument, "prior precision must be finite and > 0, got ", d);
  std::vector<double> v(deltas);
  for (size_t l = 0; l < v.size(); ++l) {
    const double c = std::min(std::max(v[l], kMinPriorPrecision), kMaxPriorPrecision);
    if (c != v[l])
      warn("prior precision " + fmt_num(v[l]) + " of layer '" + layers_[l].name + "' clamped to " +
           fmt_num(c) + " (safe range [1e-12, 1e12])");
    v[l] = c;
  }
  delta_ = std::move(v);
}

double Posterior::log_det_layer(int l) const {
  const LayerEigen& e = layers_[size_t(l)];
  const double delta = delta_[size_t(l)];
  double s = 0;
  for (int i = 0; i < e.ka; ++i)
    for (int j = 0; j < e.kg; ++j) s += std::log(e.fisher_eig(i, j) + delta);
  return s + double(e.D() - int64_t(e.ka) * e.kg) * std::log(delta);
}

double Posterior::log_det() const {
  double s = 0;
  for (int l = 0; l < num_layers(); ++l) s += log_det_layer(l);
  return s;
}

void Posterior::project(int l, const double* J, double* out) const {
  const LayerEigen& e = layers_[size_t(l)];
  if (e.ka == 0 || e.kg == 0) return;
  std::vector<double> JU(size_t(e.d_out) * size_t(e.ka));
  la::gemm_nn(e.d_out, e.d_in, e.ka, J, e.Ua.data(), JU.data());     // J Ua
  la::gemm_tn(e.d_out, e.kg, e.ka, e.Ug.data(), JU.data(), out);       // Ug^T (J Ua)
}

namespace {
// 1/(f + delta) - 1/delta = -quad_weight(f, delta), without cancellation.
double quad_weight(double f, double delta) { return f == 0 ? 0.0 : f / (delta * (f + delta)); }
}  // namespace

void Posterior::quad_weights(int l, double prior_scale, double* w) const {
  const LayerEigen& e = layers_[size_t(l)];
  const double delta = prior_at(l, prior_scale);
  for (int j = 0; j < e.kg; ++j)
    for (int i = 0; i < e.ka; ++i) w[size_t(j) * size_t(e.ka) + size_t(i)] = quad_weight(e.fisher_eig(i, j), delta);
}

double Posterior::quad_from_projections(int l, const double* PJ, const double* PJ2, double frob) const {
  const LayerEigen& e = layers_[size_t(l)];
  const double delta = delta_[size_t(l)];
  double s = frob / delta;
  for (int j = 0; j < e.kg; ++j)
    for (int i = 0; i < e.ka; ++i) {
      const size_t idx = size_t(j) * size_t(e.ka) + size_t(i);
      s -= quad_weight(e.fisher_eig(i, j), delta) * PJ[idx] * PJ2[idx];
    }
  return s;
}

double Posterior::quad_form(int l, const double* J, const double* J2) const {
  BL_CHECK(l >= 0 && l < num_layers(), code::kInvalidArgument, "layer index ", l, " out of range");
  const LayerEigen& e = layers_[size_t(l)];
  if (!J2) J2 = J;
  double frob = 0;
  for (int64_t i = 0; i < e.D(); ++i) frob += J[i] * J2[i];
  const size_t np = size_t(e.ka) * size_t(e.kg);
  std::vector<double> P1(np), P2(np);
  project(l, J, P1.data());
  if (J2 == J)
    P2 = P1;
  else
    project(l, J2, P2.data());
  return quad_from_projections(l, P1.data(), P2.data(), frob);
}

}  // namespace bl::laplace
