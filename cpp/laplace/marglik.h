// Laplace marginal likelihood and the prior precision (spec section 7):
//   log p(D | delta) ~= sum_n log p(y_n | x_n, theta*)
//                       + sum_l [ -delta_l/2 ||theta*_l||^2 + (D_l/2) log delta_l
//                                 - 1/2 log|P_l(delta_l)| ].
// With f_ij = la_i lg_j / Z the Fisher eigenvalues of layer l, its derivative
// in rho_l = log delta_l simplifies to
//   d/d rho_l = 1/2 sum_ij f_ij / (f_ij + delta_l) - delta_l ||theta*_l||^2 / 2
// (the "effective number of parameters" against the prior's pull), and
//   d2/d rho_l^2 = -1/2 sum_ij f_ij delta_l / (f_ij + delta_l)^2 - delta_l ||theta*_l||^2 / 2 < 0,
// so the objective is strictly concave in log delta (scalar or per layer):
// a unique maximiser, found by safeguarded Newton on the derivative's root.
#pragma once
#include <vector>

#include "laplace/posterior.h"

namespace bl::laplace {

// Value at the posterior's current prior. theta_sq[l] = ||theta*_l||^2.
double log_marglik(const Posterior& p, double log_lik, const std::vector<double>& theta_sq);

// Gradient w.r.t. log delta at the current prior: one entry per layer
// (per_layer) or a single entry for a shared delta (the sum over layers).
std::vector<double> log_marglik_grad(const Posterior& p, const std::vector<double>& theta_sq, bool per_layer);

struct PriorFit {
  std::vector<double> deltas;  // per layer (all equal when shared)
  double log_marglik = 0;
  int iterations = 0;          // Newton/bisection steps, summed over layers
};

// Maximise over log delta within [lo, hi] (a shared delta or one per layer);
// sets the posterior's prior to the maximiser and returns it. A maximiser
// outside the range lands on the nearer bound (e.g. ||theta*||^2 = 0 gives hi).
PriorFit optimize_prior(Posterior& p, double log_lik, const std::vector<double>& theta_sq, bool per_layer,
                        double lo = 1e-8, double hi = 1e8);

}  // namespace bl::laplace
