// The Laplace posterior in eigen form (spec section 6). Per layer l (one LoRA
// matrix, W laid out d_out x d_in, gradient side left, input side right):
//   SA = Ua diag(la) Ua^T,  SG = Ug diag(lg) Ug^T  (low-rank side: Ua = U,
//   la = Sigma^2, its orthogonal complement has eigenvalue 0), and
//   eig(P_l) = la_i lg_j / Z + delta_l   on span(ua_i (x) ug_j),
//            = delta_l                    on the complement.
// From this: log|P_l| and quadratic forms vec(J)^T P_l^-1 vec(J') through the
// projections Ug^T J Ua only. Nothing of size D_l x D_l is formed.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "laplace/kfac.h"

namespace bl::laplace {

struct LayerEigen {
  std::string name;
  int id = 0;               // LoRA matrix id it observes (KfacLayerSpec::id)
  int d_in = 0, d_out = 0;
  double Z = 0;             // count the factors were summed over
  int ka = 0, kg = 0;       // retained eigenpairs (input side, gradient side)
  std::vector<double> Ua;   // d_in x ka, row-major, orthonormal columns
  std::vector<double> la;   // ka, descending, >= 0
  std::vector<double> Ug;   // d_out x kg
  std::vector<double> lg;   // kg
  int64_t D() const { return int64_t(d_in) * int64_t(d_out); }
  // la_i lg_j / Z (the Fisher eigenvalue on span(ua_i (x) ug_j)); 0 when Z == 0.
  double fisher_eig(int i, int j) const { return Z > 0 ? la[size_t(i)] * lg[size_t(j)] / Z : 0.0; }
};

// Safe range of the prior precision: set_prior clamps into it (with a
// warning) so that log delta, 1/delta and the eigenvalues la lg / Z + delta
// stay far from overflow, underflow and cancellation.
inline constexpr double kMinPriorPrecision = 1e-12;
inline constexpr double kMaxPriorPrecision = 1e12;

// Eigen form of one factor side: dense d x d sums (eigendecomposition;
// negative eigenvalues clamped to 0, i.e. the factor is made PSD by the
// smallest diagonal jitter in its eigenbasis) or a low-rank L (Gram eigen of
// L^T L; only positive directions kept). *most_negative (when given) gets the
// most negative eigenvalue clamped (0 when none).
void factor_eigen(const KfacFactor& F, std::vector<double>& U, std::vector<double>& lam, int& k,
                  double* most_negative = nullptr);

class Posterior {
 public:
  // Eigen form of every layer of `acc` (flushes pending low-rank columns),
  // with prior precision delta for every layer.
  static std::shared_ptr<Posterior> from_kfac(KfacAccumulator& acc, double delta);

  int num_layers() const { return int(layers_.size()); }
  const LayerEigen& layer(int l) const { return layers_[size_t(l)]; }
  int layer_of_id(int id) const;  // -1 when no layer has this LoRA matrix id
  std::vector<LayerEigen>& layers_mut() { return layers_; }
  int64_t num_params() const;

  // Prior precision: one value for all layers, or one per layer (> 0, finite;
  // clamped into [kMinPriorPrecision, kMaxPriorPrecision] with a warning).
  void set_prior(double delta);
  void set_prior(const std::vector<double>& deltas);
  const std::vector<double>& prior() const { return delta_; }

  // log|P_l| = sum_ij log(la_i lg_j / Z + delta) + (D_l - ka kg) log delta.
  double log_det_layer(int l) const;
  double log_det() const;

  // Projection Ug^T J Ua (kg x ka, row-major) of J (d_out x d_in, row-major).
  void project(int l, const double* J, double* out) const;
  // vec(J)^T P_l^-1 vec(J2) from projections and <J, J2>_F (section 6):
  //   frob / delta - sum_m w_m PJ_m PJ2_m,   w_m = f_m / (delta (f_m + delta))
  // (1/(f + delta) - 1/delta without cancellation; f_m = la_i lg_j / Z, m = j ka + i).
  double quad_from_projections(int l, const double* PJ, const double* PJ2, double frob) const;
  // The weights w_m above for layer l with its prior precision times
  // prior_scale (ka * kg values; 0 where f_m = 0), for callers that form many
  // quadratic forms of one layer or for several priors (the projections do
  // not depend on the prior, so one Jacobian pass serves any number of them).
  void quad_weights(int l, double prior_scale, double* w) const;
  double prior_at(int l, double prior_scale) const { return delta_[size_t(l)] * prior_scale; }
  // vec(J)^T P_l^-1 vec(J2) (J2 == nullptr: J2 = J).
  double quad_form(int l, const double* J, const double* J2) const;

  // Which Fisher and options produced it (persisted; informational here).
  std::string fisher = "unknown";
  KfacOptions options;

  // Numerical adjustments made to this posterior, in words: factors that were
  // not positive semidefinite beyond rounding (negative eigenvalues clamped to
  // 0), prior precisions clamped into the safe range. Surfaced to JS as
  // Posterior.warnings() / Laplace.warnings. At most kMaxWarnings are kept.
  std::vector<std::string> warnings;
  static constexpr size_t kMaxWarnings = 64;
  void warn(std::string w);

 private:
  std::vector<LayerEigen> layers_;
  std::vector<double> delta_;
};

}  // namespace bl::laplace
