// Predictive link approximations: mc, probit, Laplace bridge, map (see predictive.h).
#include "laplace/predictive.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <vector>

#include "backend/backend.h"
#include "core/cancel.h"
#include "core/error.h"
#include "core/threads.h"
#include "laplace/linalg64.h"

namespace bl::laplace {

LinkApprox parse_link(const std::string& s) {
  if (s == "mc") return LinkApprox::kMc;
  if (s == "probit") return LinkApprox::kProbit;
  if (s == "bridge") return LinkApprox::kBridge;
  if (s == "map") return LinkApprox::kMap;
  fail(code::kInvalidArgument, "predictive method must be 'mc', 'probit', 'bridge' or 'map', got '", s, "'");
}

static double u01_open(uint64_t seed, uint64_t i) {  // uniform in (0, 1), 53 bits
  return (double(mix64(mix64(seed) + i) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

double counter_normal(uint64_t seed, uint64_t i) {
  const double u1 = u01_open(seed, 2 * i), u2 = u01_open(seed, 2 * i + 1);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

static void softmax_into(int C, const double* f, double* p) {
  double m = f[0];
  for (int c = 1; c < C; ++c) m = std::max(m, f[c]);
  double s = 0;
  for (int c = 0; c < C; ++c) s += (p[c] = std::exp(f[c] - m));
  for (int c = 0; c < C; ++c) p[c] /= s;
}

void symmetrize_blocks(int B, int C, double* Lambda) {
  const size_t Cn = size_t(C);
  for (size_t b = 0; b < size_t(B); ++b) {
    double* L = Lambda + b * Cn * Cn;
    for (size_t i = 0; i < Cn; ++i)
      for (size_t j = 0; j < i; ++j) L[i * Cn + j] = L[j * Cn + i] = 0.5 * (L[i * Cn + j] + L[j * Cn + i]);
  }
}

void predictive_probs(int B, int C, const double* mu, const double* Lambda, const PredictiveOptions& o,
                      double* out, PredictiveReport* report) {
  BL_CHECK(B >= 0 && C >= 1, code::kInvalidArgument, "predictive: need B >= 0 and C >= 1");
  const size_t Cn = size_t(C), Bn = size_t(B);
  for (size_t i = 0; i < Bn * Cn; ++i)
    BL_CHECK(std::isfinite(mu[i]), code::kInvalidArgument, "predictive: mean logits must be finite");
  if (o.method != LinkApprox::kMap) {
    BL_CHECK(Lambda != nullptr, code::kInvalidArgument, "predictive: Lambda is required");
    for (size_t i = 0; i < Bn * Cn * Cn; ++i)
      BL_CHECK(std::isfinite(Lambda[i]), code::kInvalidArgument, "predictive: Lambda must be finite");
    for (size_t b = 0; b < Bn; ++b)
      for (size_t c = 0; c < Cn; ++c)
        BL_CHECK(Lambda[b * Cn * Cn + c * Cn + c] >= 0, code::kNumerical,
                 "predictive: negative logit variance in example ", b);
  }
  BL_CHECK(o.samples >= 1, code::kInvalidArgument, "predictive: samples must be >= 1");
  BL_CHECK(std::isfinite(o.eps) && o.eps >= 0, code::kInvalidArgument, "predictive: eps must be >= 0");

  const CancelFlag* cancel = current_cancel();  // pool threads do not see the caller's scope
  std::mutex rep_mu;
  if (report) *report = PredictiveReport{};
  parallel_for(Bn, 1, [&](size_t b0, size_t b1) {
    PredictiveReport local;
    std::vector<double> L(Cn * Cn), A(Cn * Cn), f(Cn), p(Cn), xi(Cn), m(Cn), var(Cn);
    for (size_t b = b0; b < b1; ++b) {
      check_cancel("predictive", cancel);
      const double* mub = mu + b * Cn;
      const double* Lb = Lambda ? Lambda + b * Cn * Cn : nullptr;
      double* ob = out + b * Cn;
      switch (o.method) {
        case LinkApprox::kMap:
          softmax_into(C, mub, ob);
          break;
        case LinkApprox::kProbit: {
          for (size_t c = 0; c < Cn; ++c) f[c] = mub[c] / std::sqrt(1.0 + M_PI / 8.0 * Lb[c * Cn + c]);
          softmax_into(C, f.data(), ob);
          break;
        }
        case LinkApprox::kMc: {
          for (size_t i = 0; i < Cn * Cn; ++i) A[i] = Lb[i];
          for (size_t c = 0; c < Cn; ++c) A[c * Cn + c] += o.eps;
          // Symmetrised, and jittered only when not positive definite.
          const double jit = la::cholesky_jitter(C, A.data(), L.data());
          if (jit > 0) {
            local.jittered_rows++;
            local.max_jitter = std::max(local.max_jitter, jit);
          }
          std::fill(ob, ob + Cn, 0.0);
          for (int s = 0; s < o.samples; ++s) {
            const uint64_t base = (uint64_t(b) * uint64_t(o.samples) + uint64_t(s)) * uint64_t(C);
            for (size_t c = 0; c < Cn; ++c) xi[c] = counter_normal(o.seed, base + c);
            for (size_t i = 0; i < Cn; ++i) {
              double v = mub[i];
              for (size_t k = 0; k <= i; ++k) v += L[i * Cn + k] * xi[k];
              f[i] = v;
            }
            softmax_into(C, f.data(), p.data());
            for (size_t c = 0; c < Cn; ++c) ob[c] += p[c];
          }
          for (size_t c = 0; c < Cn; ++c) ob[c] /= double(o.samples);
          break;
        }
        case LinkApprox::kBridge: {
          if (C == 1) {
            ob[0] = 1.0;
            break;
          }
          // Condition on a zero logit sum: m = mu - S1 (1'mu)/(1'S1), S -= S1 1'S/(1'S1).
          for (size_t i = 0; i < Cn * Cn; ++i) A[i] = Lb[i];
          std::vector<double> s1(Cn, 0.0);
          double tot = 0, musum = 0;
          for (size_t i = 0; i < Cn; ++i) {
            for (size_t j = 0; j < Cn; ++j) s1[i] += A[i * Cn + j];
            tot += s1[i];
            musum += mub[i];
          }
          for (size_t i = 0; i < Cn; ++i) m[i] = mub[i];
          double maxdiag = 0;
          for (size_t c = 0; c < Cn; ++c) maxdiag = std::max(maxdiag, A[c * Cn + c]);
          if (tot > 1e-12 * maxdiag * double(Cn) && tot > 0) {
            for (size_t i = 0; i < Cn; ++i) m[i] -= s1[i] * musum / tot;
            for (size_t i = 0; i < Cn; ++i) var[i] = A[i * Cn + i] - s1[i] * s1[i] / tot;
          } else {
            for (size_t i = 0; i < Cn; ++i) var[i] = A[i * Cn + i];
          }
          // Zero variance is the limit of a Dirichlet with huge concentration.
          const double floor = std::max(1e-12 * maxdiag, 1e-200);
          double asum = 0;
          for (size_t k = 0; k < Cn; ++k) {
            double se = 0;  // e^{m_k} sum_l e^{-m_l}, shift invariant
            for (size_t l = 0; l < Cn; ++l) se += std::exp(m[k] - m[l]);
            const double alpha =
                (1.0 - 2.0 / double(C) + se / (double(C) * double(C))) / std::max(var[k], floor);
            ob[k] = alpha;
            asum += alpha;
          }
          for (size_t k = 0; k < Cn; ++k) ob[k] /= asum;
          break;
        }
      }
    }
    if (report && local.jittered_rows) {
      std::lock_guard<std::mutex> g(rep_mu);
      report->jittered_rows += local.jittered_rows;
      report->max_jitter = std::max(report->max_jitter, local.max_jitter);
    }
  });
}

}  // namespace bl::laplace
