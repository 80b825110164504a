// RoPE inverse frequencies (see rope.h). Mirrors the semantics of HF's
// rope-init functions: "linear" divides positions (i.e. frequencies) by the
// factor; "llama3" leaves high frequencies alone, divides low frequencies by the
// factor and blends linearly (in wavelength ratio) in between.
#include "model/rope.h"

#include <cmath>

#include "core/error.h"

namespace bl {

std::vector<float> rope_inv_freq(const ModelConfig& c) {
  const int hd = c.head_dim;
  BL_CHECK(hd >= 2 && hd % 2 == 0, code::kBadFile, "config: head_dim must be even, got ", hd);
  const int half = hd / 2;
  const auto& rs = c.rope_scaling;
  std::vector<float> out(static_cast<size_t>(half));
  const double pi = 3.14159265358979323846;
  for (int j = 0; j < half; ++j) {
    double f = 1.0 / std::pow(c.rope_theta, double(2 * j) / double(hd));
    if (rs.type == "linear") {
      f /= rs.factor;
    } else if (rs.type == "llama3") {
      const double low_wavelen = rs.original_max_position_embeddings / rs.low_freq_factor;
      const double high_wavelen = rs.original_max_position_embeddings / rs.high_freq_factor;
      const double wavelen = 2.0 * pi / f;
      if (wavelen > low_wavelen) {
        f = f / rs.factor;
      } else if (wavelen >= high_wavelen) {
        const double smooth = (rs.original_max_position_embeddings / wavelen - rs.low_freq_factor) /
                              (rs.high_freq_factor - rs.low_freq_factor);
        f = (1.0 - smooth) * f / rs.factor + smooth * f;
      }
    } else if (rs.type != "none" && !rs.type.empty()) {
      fail(code::kUnsupported, "rope_scaling type '", rs.type, "' is not supported (none, linear, llama3)");
    }
    out[size_t(j)] = float(f);
  }
  return out;
}

}  // namespace bl
