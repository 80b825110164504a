// The model-facing Laplace passes (spec sections 3, 4, 8): Fisher passes of a
// multiple-choice batch into a K-FAC accumulator, and the linearised
// predictive of a batch through the Jacobian projector. Each runs ONE forward
// (eval mode: no dropout) and then repeated backward passes whose seeds pick
// the curvature:
//   exact      C passes, seed_c = sqrt(p_c) (e_c - p)   (sum_c = the GGN/Fisher)
//              run as C - 1 passes whose seeds are a rank-(C-1) square root of
//              diag(p) - p p^T (same sum of seed outer products; 'aligned' keeps C)
//   sampled    m passes, y ~ p, seed = e_y - p, weight 1/m
//   empirical  1 pass, y = the label, seed = e_y - p      (biased; for comparison)
//   predictive C passes, seed e_c: J_c = df_c / dtheta per layer, projected
// The input factor is accumulated in the first pass of each batch only.
// Memory: a batch of B >= 2 runs as two chunks of ceil(B / 2) examples (each
// its own forward and passes) in a workspace re-made for the chunk when the
// model holds a larger one (after training); see laplace_chunk in fit.cc.
// Fisher rows are staged so they reach the factors as from the whole batch.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "laplace/jacobian_projector.h"
#include "laplace/kfac.h"
#include "laplace/posterior.h"
#include "model/batch.h"
#include "model/llama.h"

namespace bl::laplace {

enum class FisherType { kExact = 0, kSampled = 1, kEmpirical = 2 };
FisherType parse_fisher(const std::string& s);  // "exact" | "sampled" | "empirical"
const char* fisher_name(FisherType t);

struct FisherOptions {
  FisherType type = FisherType::kExact;
  int samples = 1;        // m for `sampled`
  uint64_t seed = 0;      // label sampling for `sampled`
};

// Layer specs of every LoRA matrix of the model (name = module path +
// ".lora_A"/".lora_B", id = the matrix id), or only the LM head's
// (last-layer Laplace). INVALID_ARGUMENT when the model has no (such) LoRA.
std::vector<KfacLayerSpec> model_lora_layers(const LlamaModel& m, bool last_layer_only);

struct FisherBatchStats {
  double log_lik = 0;  // sum over labelled examples of log p(y | x, theta*), float64 log-softmax
  int n_labelled = 0;
  int n_examples = 0;
};

// Fisher passes of one batch into acc. batch_index keys the label sampling so
// that runs are reproducible. `empirical` needs every example labelled.
FisherBatchStats fisher_batch(LlamaModel& m, const McBatchView& b, KfacAccumulator& acc, const FisherOptions& o,
                              uint64_t batch_index);

struct PredictBatchOut {
  int B = 0, C = 0;
  std::vector<float> logits;   // B x C mean logits mu
  std::vector<double> lambda;  // B x C x C logit covariance
  // With prior_scales: scales x B x C x C, Lambda for the posterior's prior
  // precisions times each scale (JacobianProjector::set_prior_scales).
  std::vector<double> lambda_grid;
  double log_lik = 0;          // of labelled examples under the MAP
  int n_labelled = 0;
};
PredictBatchOut predict_batch(LlamaModel& m, const McBatchView& b, std::shared_ptr<const Posterior> post,
                              const std::vector<double>& prior_scales = {});

// Per LoRA matrix id: ||theta*||^2; and the adapter identity (persist.h) over
// all LoRA matrices (names, shapes, values).
struct AdapterState {
  std::vector<std::string> names;  // by matrix id
  std::vector<double> theta_sq;    // by matrix id
  std::string identity;
};
AdapterState adapter_state(const LlamaModel& m);

}  // namespace bl::laplace
