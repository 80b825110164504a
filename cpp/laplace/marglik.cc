// Laplace marginal likelihood, its log-delta gradient and maximisation (see marglik.h).
#include "laplace/marglik.h"

#include <cmath>
#include <functional>

#include "core/error.h"

namespace bl::laplace {

namespace {

void check_theta(const Posterior& p, const std::vector<double>& theta_sq) {
  BL_CHECK(theta_sq.size() == size_t(p.num_layers()), code::kShapeMismatch, "thetaNormSq has ",
           theta_sq.size(), " entries for ", p.num_layers(), " layers");
  for (double t : theta_sq)
    BL_CHECK(std::isfinite(t) && t >= 0, code::kInvalidArgument, "thetaNormSq entries must be finite and >= 0");
}

// First and second derivative of layer l's term w.r.t. rho = log delta.
void layer_derivs(const LayerEigen& e, double delta, double theta_sq, double& g, double& h) {
  double s1 = 0, s2 = 0;
  for (int i = 0; i < e.ka; ++i)
    for (int j = 0; j < e.kg; ++j) {
      const double f = e.fisher_eig(i, j);
      if (f == 0) continue;
      const double q = f + delta;
      s1 += f / q;
      s2 += f * delta / (q * q);
    }
  g = 0.5 * s1 - 0.5 * delta * theta_sq;
  h = -0.5 * s2 - 0.5 * delta * theta_sq;
}

// Root in [a, b] of a strictly decreasing g(rho) with derivative h (< 0):
// Newton steps kept inside the bracket, bisection otherwise.
double find_root(const std::function<void(double, double&, double&)>& gh, double a, double b, double start,
                 int& iters) {
  double g, h;
  gh(a, g, h);
  ++iters;
  if (g <= 0) return a;
  gh(b, g, h);
  ++iters;
  if (g >= 0) return b;
  double x = std::min(std::max(start, a), b);
  for (int it = 0; it < 200; ++it) {
    gh(x, g, h);
    ++iters;
    if (g == 0) return x;
    if (g > 0)
      a = x;
    else
      b = x;
    double nx = (h < 0) ? x - g / h : 0.5 * (a + b);
    if (!(nx > a && nx < b)) nx = 0.5 * (a + b);
    if (std::fabs(nx - x) <= 1e-13 * (1 + std::fabs(x)) || b - a <= 1e-13 * (1 + std::fabs(x))) return nx;
    x = nx;
  }
  return x;
}

}  // namespace

double log_marglik(const Posterior& p, double log_lik, const std::vector<double>& theta_sq) {
  check_theta(p, theta_sq);
  BL_CHECK(std::isfinite(log_lik), code::kInvalidArgument, "logLik must be finite");
  double v = log_lik;
  for (int l = 0; l < p.num_layers(); ++l) {
    const double d = p.prior()[size_t(l)];
    v += -0.5 * d * theta_sq[size_t(l)] + 0.5 * double(p.layer(l).D()) * std::log(d) - 0.5 * p.log_det_layer(l);
  }
  return v;
}

std::vector<double> log_marglik_grad(const Posterior& p, const std::vector<double>& theta_sq, bool per_layer) {
  check_theta(p, theta_sq);
  std::vector<double> g(size_t(p.num_layers()));
  for (int l = 0; l < p.num_layers(); ++l) {
    double h;
    layer_derivs(p.layer(l), p.prior()[size_t(l)], theta_sq[size_t(l)], g[size_t(l)], h);
  }
  if (per_layer) return g;
  double s = 0;
  for (double v : g) s += v;
  return {s};
}

PriorFit optimize_prior(Posterior& p, double log_lik, const std::vector<double>& theta_sq, bool per_layer,
                        double lo, double hi) {
  check_theta(p, theta_sq);
  BL_CHECK(std::isfinite(log_lik), code::kInvalidArgument, "logLik must be finite");
  BL_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo > 0 && hi >= lo, code::kInvalidArgument,
           "prior bounds must satisfy 0 < lo <= hi < inf");
  // The search stays inside the posterior's safe range of prior precisions.
  lo = std::min(std::max(lo, kMinPriorPrecision), kMaxPriorPrecision);
  hi = std::min(std::max(hi, kMinPriorPrecision), kMaxPriorPrecision);
  const double a = std::log(lo), b = std::log(hi);
  // A maximiser on a bound is that bound exactly (exp(log(x)) may differ from x).
  auto to_delta = [&](double rho) { return rho <= a ? lo : rho >= b ? hi : std::min(std::max(std::exp(rho), lo), hi); };
  PriorFit fit;
  const int L = p.num_layers();
  if (per_layer) {
    fit.deltas.resize(size_t(L));
    for (int l = 0; l < L; ++l) {
      auto gh = [&](double rho, double& g, double& h) {
        layer_derivs(p.layer(l), std::exp(rho), theta_sq[size_t(l)], g, h);
      };
      fit.deltas[size_t(l)] = to_delta(find_root(gh, a, b, std::log(p.prior()[size_t(l)]), fit.iterations));
    }
  } else {
    auto gh = [&](double rho, double& g, double& h) {
      g = h = 0;
      const double d = std::exp(rho);
      for (int l = 0; l < L; ++l) {
        double gl, hl;
        layer_derivs(p.layer(l), d, theta_sq[size_t(l)], gl, hl);
        g += gl;
        h += hl;
      }
    };
    const double d = to_delta(find_root(gh, a, b, std::log(p.prior()[0]), fit.iterations));
    fit.deltas.assign(size_t(L), d);
  }
  p.set_prior(fit.deltas);
  fit.log_marglik = log_marglik(p, log_lik, theta_sq);
  return fit;
}

}  // namespace bl::laplace
