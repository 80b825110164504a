// Logit covariance of the linearised predictive (spec section 8):
//   Lambda_b,cc' = sum_l vec(J_bc,l)^T P_l^-1 vec(J_bc',l).
// The model runs one forward pass, then one backward pass per class c seeded
// with e_c; in that pass every LoRA matrix l is observed with its inputs x_t
// and output gradients g_t, so per example J_bc,l = sum_t g_t x_t^T (small:
// r x d_in or d_out x r). The projector forms it, projects it at once to
// Ug^T J Ua (kg x ka, section 6) and adds the pass's contributions to Lambda.
//
// The Frobenius term <J_c, J_c'>_F needs the Jacobians of earlier classes of
// the same example: for a layer whose eigenbases are complete (ka = d_in and
// kg = d_out: both sides dense) it equals the projections' inner product and
// only projections are stored; otherwise the Jacobian itself is kept
// (float32, up to B x (C - 1) x D_l for the batch: the last class's is used
// at once) until the example's last class, then freed with its projections.
//
// Cost (why the code is shaped this way): a pass observes every layer for
// the whole batch at once, so the projections Ug^T J_b Ua of all B examples
// are two float64 products over stacked Jacobians (one call each, not 2B
// small ones). Jacobians are stored by their nonzero rows only: the LM-head
// B matrix (d_out = vocabulary) has output gradients on the C answer rows
// alone, so its J_b has at most C (x T) nonzero rows of d_out; projecting and
// taking inner products over those rows only gives the dense result exactly
// (the skipped terms are exact zeros).
#pragma once
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "laplace/posterior.h"
#include "model/lora_observer.h"

namespace bl::laplace {

class JacobianProjector : public LoraObserver {
 public:
  // `be`: backend whose memory observe() receives (copied to host if needed).
  explicit JacobianProjector(std::shared_ptr<const Posterior> post, Backend* be = nullptr);

  // Also (or instead) form Lambda for the posterior's prior precisions times
  // each of `scales` (finite, > 0, every scaled precision inside the
  // posterior's safe range); lambda(k) is the one for scales[k]. The default
  // is {1}: the posterior's own prior. The Jacobian passes and projections do
  // not depend on the prior, so each extra scale costs only the quadratic
  // forms (O(ka kg) per layer and class pair), not another pass of the model.
  // Set before begin_batch.
  void set_prior_scales(std::vector<double> scales);
  static constexpr int kMaxPriorScales = 257;  // the posterior's own prior + 256
  // INVALID_ARGUMENT unless set_prior_scales would take `scales` for `post`.
  static void check_prior_scales(const Posterior& post, const std::vector<double>& scales);
  int num_scales() const { return int(scales_.size()); }

  // Start a batch of B examples and C classes; Lambda is reset to zero.
  void begin_batch(int B, int C);
  // The class whose backward pass comes next.
  void set_class(int c);

  // LoraObserver: m.id selects the posterior layer with that LoRA matrix id;
  // other matrices are skipped.
  bool observes(int id) const override { return post_->layer_of_id(id) >= 0; }
  // J = sum_t g_t x_t^T: rows with zero gradient add nothing.
  bool needs_every_row() const override { return false; }
  void observe(const LoraMatrixInfo& m, const float* x, const float* g, int B, int T,
               const uint8_t* mask) override;

  // Low-level entry: the Jacobian J (d_out x d_in row-major) of example b,
  // class c, layer l. Each (l, b, c) may be given once per batch.
  void add_jacobian(int l, int b, int c, const float* J);

  // B x C x C, symmetric, for prior scale k (set_prior_scales).
  std::vector<double> lambda(int k = 0) const;
  int batch() const { return B_; }
  int classes() const { return C_; }

 private:
  // One example's Jacobian: its nonzero rows (increasing) and their values.
  struct SparseJ {
    std::vector<int> rows;
    std::vector<float> vals;  // rows.size() x d_in
  };
  // Projections of nb Jacobians of layer l into P (nb x kg*ka).
  void project_many(int l, const SparseJ* J, int nb, double* P);
  void accept(int l, int b, int c, SparseJ&& J, std::vector<double>&& P);
  std::shared_ptr<const Posterior> post_;
  Backend* be_;
  int B_ = 0, C_ = 0, cur_ = 0;
  // Layer l's quadratic-form weights (Posterior::quad_weights), ka*kg x
  // scales (scale index fastest), made on the layer's first Jacobian: a
  // division per eigen-direction and scale once, not per example and class pair.
  const std::vector<double>& weights(int l);
  std::vector<double> scales_{1.0};               // prior scales (set_prior_scales)
  std::vector<std::vector<double>> weights_;      // by layer, empty until first used
  std::vector<double> pp_, qsum_;                 // scratch: PJ_m PJ2_m, per-scale sums
  std::vector<double> lambda_;                    // scales x B x C x C (lower triangles filled)
  std::vector<std::vector<double>> proj_;          // [(l*B + b)*C + c] projections
  std::vector<SparseJ> jac_;                       // same index; kept for low-rank layers
  std::vector<uint8_t> seen_;                      // same index
  std::vector<float> hx_, hg_, rx_, rg_;           // scratch
  std::vector<SparseJ> batchJ_;                    // this pass's Jacobians, by example
  std::vector<double> Jst_, JU_, JUt_, Pt_, Ugs_, Pall_;  // projection scratch
  std::vector<uint8_t> hmask_;
};

}  // namespace bl::laplace
