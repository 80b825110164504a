// LoRA configuration checks, PEFT-style target matching and initialisation.
#include "model/lora.h"

#include <cmath>

#include "core/error.h"
#include "model/target_regex.h"

namespace bl {

double LoraConfig::scale() const {
  return use_rslora ? alpha / std::sqrt(double(r)) : alpha / double(r);
}

const std::vector<std::string>& lora_module_kinds() {
  static const std::vector<std::string> kinds{"q_proj",    "k_proj",  "v_proj",    "o_proj",
                                              "gate_proj", "up_proj", "down_proj", "lm_head"};
  return kinds;
}

void LoraConfig::validate() const {
  BL_CHECK(r >= 1 && r <= 65536, code::kInvalidArgument, "lora r must be in [1, 65536], got ", r);
  BL_CHECK(std::isfinite(alpha) && alpha > 0, code::kInvalidArgument,
           "lora alpha must be a positive finite number, got ", alpha);
  BL_CHECK(std::isfinite(dropout) && dropout >= 0 && dropout < 1, code::kInvalidArgument,
           "lora dropout must be in [0, 1), got ", dropout);
  if (!target_regex.empty()) {
    TargetRegex(target_regex, "lora target_regex", code::kInvalidArgument);
    return;
  }
  BL_CHECK(!target_modules.empty(), code::kInvalidArgument, "lora target_modules is empty");
  for (const auto& t : target_modules) {
    BL_CHECK(!t.empty(), code::kInvalidArgument, "lora target_modules contains an empty name");
    if (t == "embed_tokens" || (t.size() > 13 && t.compare(t.size() - 13, 13, ".embed_tokens") == 0))
      fail(code::kUnsupported, "LoRA on embed_tokens is not supported (target linear modules)");
  }
}

bool lora_target_matches(const std::string& target, const std::string& path) {
  if (path == target) return true;
  return path.size() > target.size() && path[path.size() - target.size() - 1] == '.' &&
         path.compare(path.size() - target.size(), target.size(), target) == 0;
}

bool lora_targets(const LoraConfig& c, const std::string& path) {
  if (!c.target_regex.empty()) {
    // PEFT: a string target_modules is re.fullmatch'ed against the module path.
    return target_regex_full_match(c.target_regex, path, "lora target_regex", code::kInvalidArgument);
  }
  for (const auto& t : c.target_modules)
    if (lora_target_matches(t, path)) return true;
  return false;
}

static uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : s) {
    h ^= ch;
    h *= 1099511628211ull;
  }
  return h;
}

void lora_init(Backend& be, LoraModule& m, uint64_t seed) {
  // kaiming_uniform_(a=sqrt(5)) as in PEFT: bound = sqrt(6 / ((1 + 5) fan_in)) = 1/sqrt(fan_in).
  const double bound = 1.0 / std::sqrt(double(m.d_in));
  const uint64_t key = mix64(seed ^ fnv1a(m.path));
  std::vector<float> a(static_cast<size_t>(m.numel_a()));
  for (size_t i = 0; i < a.size(); ++i) a[i] = float((2.0 * uniform01(key, i) - 1.0) * bound);
  be.to_device(m.A.data(), a.data(), a.size() * sizeof(float));
  be.zero(m.B.data(), size_t(m.numel_b()) * sizeof(float));
}

}  // namespace bl
