// RoPE inverse frequencies for a model config (plain, linear scaling, and the
// llama3 frequency-dependent scaling), computed in float64, stored as f32.
#pragma once
#include <vector>

#include "io/config.h"

namespace bl {

// inv_freq[j] for j < head_dim/2 (HF rotate-half convention).
std::vector<float> rope_inv_freq(const ModelConfig& c);

}  // namespace bl
