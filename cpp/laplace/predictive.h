// Predictive probabilities of the linearised Laplace model (spec section 8)
// from mean logits mu (B x C) and the logit covariance Lambda (B x C x C):
//   mc      E[softmax(mu + L xi)], L L^T = Lambda + eps I (Cholesky with jitter
//           retry), S samples; xi from a counter-based RNG keyed by (seed, row,
//           sample, class), so results are reproducible and independent of
//           threading. PROBABILITIES are averaged, not logits.
//   probit  softmax(mu_c / sqrt(1 + pi/8 Lambda_cc))
//   bridge  Laplace bridge to a Dirichlet (Hobbhahn et al. 2022), returning its
//           mean alpha / sum(alpha); Lambda is first conditioned on a zero logit
//           sum (softmax is shift invariant), as laplace-torch does.
//   map     softmax(mu)
#pragma once
#include <cstdint>
#include <string>

namespace bl::laplace {

enum class LinkApprox { kMc = 0, kProbit = 1, kBridge = 2, kMap = 3 };
LinkApprox parse_link(const std::string& s);  // "mc" | "probit" | "bridge" | "map"

struct PredictiveOptions {
  LinkApprox method = LinkApprox::kMc;
  int samples = 1000;
  uint64_t seed = 0;
  double eps = 0;  // added to Lambda's diagonal before the Cholesky (mc)
};

// What the mc link had to do to Lambda: rows (examples) whose symmetrised
// Lambda + eps I was not positive definite and got diagonal jitter (the
// smallest of 1e-10 * mean diagonal * 10^k that works, see cholesky_jitter).
struct PredictiveReport {
  int jittered_rows = 0;
  double max_jitter = 0;
};

// out: B x C probabilities. Lambda may be nullptr only for map. Throws
// INVALID_ARGUMENT / NUMERICAL_ERROR on bad input (non-finite, negative variances).
void predictive_probs(int B, int C, const double* mu, const double* Lambda, const PredictiveOptions& o,
                      double* out, PredictiveReport* report = nullptr);

// Standard normal number i of stream `seed` (Box-Muller on counter-based uniforms).
double counter_normal(uint64_t seed, uint64_t i);

// Symmetrise each C x C block of Lambda in place: (L + L^T) / 2.
void symmetrize_blocks(int B, int C, double* Lambda);

}  // namespace bl::laplace
