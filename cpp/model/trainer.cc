// Training steps (see trainer.h).
#include "model/trainer.h"

#include <cmath>

#include "core/cancel.h"
#include "core/error.h"

namespace bl {

namespace {

// Shared tail: NaN handling for the loss, then the optional optimiser step.
StepOutcome finish(LlamaModel& m, bool loss_finite, bool apply_step, const AdamWOptions& o) {
  StepOutcome r;
  const int step = m.optimizer().steps() + 1;
  if (!loss_finite) {
    if (!o.skip_nonfinite)
      fail(code::kNumerical, "training step ", step, ": loss is not finite (NaN/Inf)");
    m.zero_grads();  // discard this step's accumulated gradients
    m.invalidate_forward();
    r.skipped = true;
    r.report.step = m.optimizer().steps();
    r.report.grad_norm = std::nan("");
    return r;
  }
  if (!apply_step) return r;
  check_cancel("training step");  // before the update: an aborted step changes no weight
  r.report = m.optimizer_step(o);
  r.stepped = !r.report.skipped;
  r.skipped = r.report.skipped;
  return r;
}

}  // namespace

McStepResult mc_train_step(LlamaModel& m, const McBatchView& b, float grad_scale, bool apply_step,
                           const AdamWOptions& o) {
  o.validate();
  BL_CHECK(std::isfinite(grad_scale) && grad_scale > 0, code::kInvalidArgument,
           "gradScale must be a positive finite number, got ", grad_scale);
  BL_CHECK(m.num_trainable() > 0, code::kInvalidArgument,
           "the model has no trainable parameters (add LoRA or enable full training)");
  McStepResult res;
  res.out = m.forward_mc(b, /*train=*/true);
  BL_CHECK(res.out.n_labelled > 0, code::kInvalidArgument,
           "training batch has no labelled example (all labels are -1)");
  const bool finite = std::isfinite(res.out.loss);
  if (finite) {
    std::vector<float> seed(res.out.dloss);
    for (auto& v : seed) v *= grad_scale;
    m.backward_mc(seed.data(), nullptr, /*accumulate_grads=*/true, /*param_grads=*/true);
  }
  res.step = finish(m, finite, apply_step, o);
  return res;
}

LmStepResult lm_train_step(LlamaModel& m, const LmBatchView& b, float grad_scale, bool apply_step,
                           const AdamWOptions& o) {
  o.validate();
  BL_CHECK(std::isfinite(grad_scale) && grad_scale > 0, code::kInvalidArgument,
           "gradScale must be a positive finite number, got ", grad_scale);
  BL_CHECK(m.num_trainable() > 0, code::kInvalidArgument,
           "the model has no trainable parameters (add LoRA or enable full training)");
  LmStepResult res;
  res.out = m.forward_lm(b, /*train=*/true, grad_scale);
  BL_CHECK(res.out.n_targets > 0, code::kInvalidArgument, "lm batch has no target (all -1)");
  const bool finite = std::isfinite(res.out.loss);
  if (finite) m.backward_lm(nullptr, /*accumulate_grads=*/true, /*param_grads=*/true);
  res.step = finish(m, finite, apply_step, o);
  return res;
}

}  // namespace bl
