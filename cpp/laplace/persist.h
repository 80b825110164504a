// Persistence of a fitted Laplace posterior as a safetensors sidecar:
// the K-FAC factors as accumulated (dense float64 sums S as their lower
// triangle, which is what the eigen form reads; rows; or low-rank L with
// L L^T ~= S),
// per-layer counts Z and prior precisions, and in `__metadata__`
// the format tag, Fisher type, token handling, threshold, n_kfac, chunk, the
// layer list and an adapter identity. Saving factors (not eigen forms) keeps
// the file mergeable with more data; the eigen form is rebuilt on load
// (cheap: dense sides are at most `threshold`, low-rank sides k x k Grams).
//
// Loading validates everything (format, dtypes, shapes against the options,
// finiteness, counts >= 0, priors > 0: BAD_FILE naming the path) and, when an
// expected adapter identity is given, refuses a posterior fitted for another
// adapter (INVALID_ARGUMENT "adapter mismatch").
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "laplace/kfac.h"
#include "laplace/posterior.h"

namespace bl::laplace {

// Identity of an adapter: a 64-bit FNV-1a hash over every tensor's name,
// shape and float32 values, in the given order, as 16 hex digits.
struct AdapterTensorRef {
  std::string name;
  std::vector<int64_t> shape;
  const float* data = nullptr;  // host, numel(shape) values
};
std::string adapter_identity(const std::vector<AdapterTensorRef>& tensors);

void save_laplace(const std::string& path, KfacAccumulator& acc, const std::vector<double>& priors,
                  const std::string& fisher, const std::string& adapter_id);

struct LoadedLaplace {
  std::shared_ptr<KfacAccumulator> acc;
  std::shared_ptr<Posterior> post;  // eigen form with the saved priors
  std::string fisher;
  std::string adapter_id;
};
LoadedLaplace load_laplace(const std::string& path, const std::string& expected_adapter_id);

}  // namespace bl::laplace
