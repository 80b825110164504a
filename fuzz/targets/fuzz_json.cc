// Fuzz target: the JSON parser (cpp/io/json) every JSON reader goes through
// (safetensors headers, config.json, shard indexes, adapter configs). A
// parsed document must also serialise and re-parse to the same text.
#include "harness.h"
#include "io/json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::expect_typed("json", [&] {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    bl::json::Value v = bl::json::parse(text, "fuzz.json");
    std::string once;
    try {
      once = bl::json::dump(v);
    } catch (const bl::Error&) {
      return;  // e.g. a number that parses to +-inf cannot be written back: typed error
    }
    const std::string twice = bl::json::dump(bl::json::parse(once, "fuzz.json (re-parsed)"));
    if (once != twice) {
      std::fprintf(stderr, "fuzz json: dump/parse round trip differs\n");
      std::abort();
    }
  });
  return 0;
}
