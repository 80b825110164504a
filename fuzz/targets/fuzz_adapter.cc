// Fuzz target: loading a PEFT adapter into a model: adapter_config.json
// (rank, alpha, target modules, unknown keys) and adapter_model.safetensors
// (names, shapes, dtypes against the model: the wrong adapter for a model is
// a typed error). Input: the config, fuzz::kSep, the safetensors bytes.
#include <sys/stat.h>

#include "backend/backend.h"
#include "harness.h"
#include "model/llama.h"
#include "model/persist.h"
#include "tiny_model.h"

namespace {
bl::LlamaModel& model() {
  static std::unique_ptr<bl::LlamaModel> m = [] {
    const std::string ck = fuzz::scratch_dir() + "/model";
    fuzz::write_tiny_checkpoint(ck);
    return bl::LlamaModel::load(ck, bl::cpu_backend());
  }();
  return *m;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  bl::LlamaModel& m = model();
  const std::string dir = fuzz::scratch_dir() + "/adapter";
  static const bool made = [&] { return mkdir(dir.c_str(), 0755) == 0; }();
  (void)made;
  std::string cfg, st;
  fuzz::split2(data, size, fuzz::kSep, cfg, st);
  fuzz::write_text(dir + "/adapter_config.json", cfg);
  fuzz::write_text(dir + "/adapter_model.safetensors", st);
  fuzz::expect_typed("adapter", [&] {
    bl::load_adapter(m, dir);
    // Loaded: the LoRA weights must be readable and finite-sized.
    for (int id = 0; id < m.num_lora_matrices(); ++id) (void)m.get_lora_weight(id);
  });
  if (m.has_lora()) m.remove_lora();  // the next input starts from the bare model
  return 0;
}
