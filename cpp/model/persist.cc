// PEFT adapter and HF model persistence (see persist.h).
#include "model/persist.h"

#include <cmath>
#include <filesystem>
#include <map>
#include <sstream>
#include <system_error>

#include "core/error.h"
#include "io/adapter.h"
#include "io/safetensors.h"

namespace bl {

namespace {

void ensure_dir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  BL_CHECK(!ec, code::kIo, "cannot create directory '", dir, "': ", ec.message());
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}

LoraConfig lora_from_adapter(const AdapterConfig& ac) {
  LoraConfig c;
  c.r = ac.r;
  c.alpha = ac.lora_alpha;
  c.dropout = ac.lora_dropout;
  c.use_rslora = ac.use_rslora;
  c.target_modules = ac.target_modules;
  c.target_regex = ac.target_regex;
  return c;
}

}  // namespace

void save_adapter(const LlamaModel& m, const std::string& dir) {
  BL_CHECK(m.has_lora(), code::kInvalidArgument, "saveAdapter: the model has no LoRA adapters");
  ensure_dir(dir);
  const LoraConfig& c = m.lora_config();
  std::vector<std::vector<float>> host;
  std::vector<TensorToWrite> ts;
  host.reserve(size_t(m.num_lora_matrices()));
  for (int id = 0; id < m.num_lora_matrices(); ++id) {
    const LoraModule& mod = m.lora_module(id / 2);
    const bool is_b = id % 2;
    host.push_back(m.get_lora_weight(id));
    TensorToWrite t;
    t.name = peft_tensor_name(mod.path, is_b);
    t.dtype = DType::F32;
    t.shape = is_b ? std::vector<int64_t>{mod.d_out, mod.r} : std::vector<int64_t>{mod.r, mod.d_in};
    t.data = host.back().data();
    ts.push_back(std::move(t));
  }
  write_safetensors(dir + "/adapter_model.safetensors", ts, {{"format", "pt"}});
  AdapterConfig ac;
  ac.r = c.r;
  ac.lora_alpha = c.alpha;
  ac.lora_dropout = c.dropout;
  ac.use_rslora = c.use_rslora;
  ac.target_modules = c.target_regex.empty() ? c.target_modules : std::vector<std::string>{};
  ac.target_regex = c.target_regex;
  write_adapter_config(dir + "/adapter_config.json", ac);
}

void load_adapter(LlamaModel& m, const std::string& dir) {
  AdapterConfig ac = read_adapter_config(dir + "/adapter_config.json");
  LoraConfig lc = lora_from_adapter(ac);
  lc.validate();
  auto file = SafetensorsFile::open(dir + "/adapter_model.safetensors");

  bool added = false;
  if (m.has_lora()) {
    const LoraConfig& cur = m.lora_config();
    BL_CHECK(cur.r == lc.r, code::kShapeMismatch, "adapter in '", dir, "' has r = ", lc.r,
             " but the model's LoRA has r = ", cur.r);
    BL_CHECK(std::fabs(cur.scale() - lc.scale()) <= 1e-6 * std::fabs(cur.scale()), code::kInvalidArgument,
             "adapter in '", dir, "' has scale ", lc.scale(), " (alpha ", lc.alpha,
             ") but the model's LoRA has scale ", cur.scale());
    // The adapted module set must be the same.
    std::vector<std::string> paths;
    for (int i = 0; i < m.num_lora_modules(); ++i) paths.push_back(m.lora_module(i).path);
    for (const auto& p : paths)
      BL_CHECK(lora_targets(lc, p), code::kInvalidArgument, "adapter in '", dir,
               "' does not adapt module '", p, "' which the model's LoRA adapts");
  } else {
    m.add_lora(lc);
    added = true;
  }
  try {
    std::map<std::string, int> expected;  // name -> matrix id
    for (int id = 0; id < m.num_lora_matrices(); ++id)
      expected[peft_tensor_name(m.lora_module(id / 2).path, id % 2)] = id;
    for (const auto& t : file->tensors())
      BL_CHECK(expected.count(t.name), code::kBadFile, "adapter '", file->path(),
               "' has tensor '", t.name, "' which matches no LoRA matrix of the model");
    std::vector<std::vector<float>> vals(size_t(m.num_lora_matrices()));
    for (const auto& kv : expected) {
      const int id = kv.second;
      const LoraModule& mod = m.lora_module(id / 2);
      const bool is_b = id % 2;
      const std::vector<int64_t> want =
          is_b ? std::vector<int64_t>{mod.d_out, mod.r} : std::vector<int64_t>{mod.r, mod.d_in};
      const TensorEntry* e = file->find(kv.first);
      BL_CHECK(e, code::kBadFile, "adapter '", file->path(), "' is missing tensor '", kv.first,
               "' (shape ", shape_str(want), ")");
      BL_CHECK(e->shape == want, code::kShapeMismatch, "adapter tensor '", kv.first, "' has shape ",
               shape_str(e->shape), ", expected ", shape_str(want));
      BL_CHECK(e->dtype == DType::F32 || e->dtype == DType::F16 || e->dtype == DType::BF16,
               code::kBadFile, "adapter tensor '", kv.first, "' has dtype ", dtype_name(e->dtype),
               " (expected F32, F16 or BF16)");
      auto& v = vals[size_t(id)];
      v.resize(size_t(e->numel()));
      convert_to_f32(v.data(), e->data, e->dtype, v.size());
      for (size_t i = 0; i < v.size(); ++i)
        BL_CHECK(std::isfinite(v[i]), code::kBadFile, "adapter tensor '", kv.first, "' has a non-finite value at ", i);
    }
    for (int id = 0; id < m.num_lora_matrices(); ++id)
      m.set_lora_weight(id, vals[size_t(id)].data(), int64_t(vals[size_t(id)].size()));
  } catch (...) {
    if (added) m.remove_lora();
    throw;
  }
}

void save_model(const LlamaModel& m, const std::string& dir) {
  ensure_dir(dir);
  const LlamaWeights& w = m.weights();
  std::vector<std::vector<float>> host;
  std::vector<TensorToWrite> ts;
  host.reserve(w.params().size());
  for (const auto& p : w.params()) {
    host.emplace_back(size_t(p->numel()));
    LlamaWeights::to_host_f32(m.backend(), *p, host.back().data());  // bf16 store widens exactly
    ts.push_back({p->name, DType::F32, p->shape, host.back().data()});
  }
  write_safetensors(dir + "/model.safetensors", ts, {{"format", "pt"}});
  ModelConfig c = m.config();
  c.torch_dtype = "float32";
  write_file_atomic(dir + "/config.json", model_config_to_json(c));
}

}  // namespace bl
