// Fuzz target: a model's config.json (architecture, sizes, heads, RoPE,
// limits on dimensions so that a hostile file cannot ask for terabytes).
#include "harness.h"
#include "io/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::expect_typed("config", [&] {
    bl::ModelConfig c = bl::parse_model_config_text(std::string(reinterpret_cast<const char*>(data), size), "config.json");
    // A config that parses must serialise and parse back.
    bl::parse_model_config_text(bl::model_config_to_json(c), "config.json (re-parsed)");
  });
  return 0;
}
