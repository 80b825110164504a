// AdamW over a set of named trainable tensors: global-norm gradient clipping,
// NaN/Inf detection (typed NUMERICAL_ERROR naming the step, or skip the step),
// decoupled weight decay (not applied to norms and biases), moment state kept
// per tensor name in backend memory. The update itself is the backend's adamw.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace bl {

struct TrainTensor {
  std::string name;
  float* p = nullptr;  // backend memory
  float* g = nullptr;  // backend memory
  int64_t n = 0;
  bool decay = true;
};

struct AdamWOptions {
  double lr = 1e-4;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  double max_grad_norm = 0.0;  // 0 = no clipping
  bool skip_nonfinite = false;  // skip (and zero grads) instead of throwing on NaN/Inf
  void validate() const;        // INVALID_ARGUMENT on out-of-range values
};

struct StepReport {
  double grad_norm = 0;  // before clipping (NaN/Inf when not finite)
  bool skipped = false;
  int step = 0;  // optimiser steps taken so far (after this one)
};

class AdamW {
 public:
  // Clips and applies one update to `ts`, then zeroes their gradients.
  StepReport step(Backend& be, const std::vector<TrainTensor>& ts, const AdamWOptions& o);
  // Global L2 norm of the gradients (float64 accumulation).
  static double grad_norm(Backend& be, const std::vector<TrainTensor>& ts);
  void reset() {
    state_.clear();
    t_ = 0;
  }
  int steps() const { return t_; }
  size_t bytes() const;

  // Checkpointing (resume after an interruption): host copies of the first
  // and second moments per tensor name, and their reinstatement. import_state
  // replaces the whole state; every entry must name one of `ts` with the same
  // size (INVALID_ARGUMENT otherwise, and nothing changes).
  struct HostMoments {
    std::string name;
    std::vector<float> m, v;
  };
  std::vector<HostMoments> export_state(Backend& be) const;
  void import_state(Backend& be, const std::vector<TrainTensor>& ts, int steps,
                    const std::vector<HostMoments>& s);

 private:
  struct State {
    Buffer m, v;
    int64_t n = 0;
  };
  std::map<std::string, State> state_;
  int t_ = 0;
};

}  // namespace bl
