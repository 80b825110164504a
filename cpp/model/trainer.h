// One training step per native call: forward in training mode, backward of
// grad_scale * (mean loss), then (optionally) the AdamW step. Gradient
// accumulation = several calls with apply_step false and the same grad_scale
// (e.g. 1/k), then one with apply_step true. NaN/Inf in the loss or the
// gradients throws NUMERICAL_ERROR naming the optimiser step, or, with
// skip_nonfinite, discards the accumulated gradients and reports a skip.
#pragma once
#include "model/llama.h"

namespace bl {

struct StepOutcome {
  bool stepped = false;  // an optimiser update was applied
  bool skipped = false;  // the step was skipped for NaN/Inf
  StepReport report;
};

struct McStepResult {
  McOutput out;
  StepOutcome step;
};

struct LmStepResult {
  LmOutput out;
  StepOutcome step;
};

// apply_step false: accumulate only (opts still says whether to skip non-finite).
McStepResult mc_train_step(LlamaModel& m, const McBatchView& b, float grad_scale, bool apply_step,
                           const AdamWOptions& opts);
LmStepResult lm_train_step(LlamaModel& m, const LmBatchView& b, float grad_scale, bool apply_step,
                           const AdamWOptions& opts);

}  // namespace bl
