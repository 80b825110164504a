// Fuzz target: a Laplace posterior sidecar (safetensors with K-FAC factors,
// counts, priors and metadata: format tag, Fisher, tokens, threshold,
// n_kfac, layer list, adapter identity). Loading rebuilds the eigen form, so
// hostile factors reach the float64 eigen solver too.
#include "harness.h"
#include "laplace/persist.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::scratch_dir() + "/posterior.safetensors";
  fuzz::write_bytes(path, data, size);
  fuzz::expect_typed("posterior", [&] {
    bl::laplace::LoadedLaplace ld = bl::laplace::load_laplace(path, "");
    if (ld.post) (void)ld.post->log_det();
  });
  return 0;
}
