// Writes the seed corpus of every C++ fuzz target into DIR/<target>/: small
// VALID inputs made by the library's own writers (safetensors, adapters,
// posteriors) plus the committed model's config.json, so mutations start
// from files that pass every check. Usage: seeds DIR [REPO_ROOT]
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "backend/backend.h"
#include "laplace/fit.h"
#include "laplace/persist.h"
#include "model/llama.h"
#include "model/persist.h"
#include "targets/harness.h"
#include "targets/tiny_model.h"

namespace {
std::string slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}
void put(const std::string& dir, const std::string& name, const std::string& bytes) {
  mkdir(dir.c_str(), 0755);
  fuzz::write_text(dir + "/" + name, bytes);
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: seeds DIR [REPO_ROOT]\n");
    return 2;
  }
  const std::string out = argv[1], repo = argc > 2 ? argv[2] : ".";
  mkdir(out.c_str(), 0755);
  const std::string tmp = fuzz::scratch_dir();
  using bl::DType;

  // config.json: the tiny model's and the built-in model's.
  const std::string ck = tmp + "/model";
  fuzz::write_tiny_checkpoint(ck);
  put(out + "/config", "tiny.json", slurp(ck + "/config.json"));
  const std::string builtin = slurp(repo + "/models/wordnet-tiny/config.json");
  if (!builtin.empty()) put(out + "/config", "wordnet-tiny.json", builtin);

  // json: configs plus documents that exercise escapes, nesting, numbers.
  put(out + "/json", "config.json", slurp(ck + "/config.json"));
  put(out + "/json", "misc.json",
      "{\"a\":[1,-2.5e-3,1e300,true,false,null],\"s\":\"\\u00e9\\ud83d\\ude00\\n\\\"\",\"o\":{\"x\":{\"y\":[[],{}]}},"
      "\"big\":9223372036854775807}");
  put(out + "/json", "array.json", "[0, 1.5, \"x\", [1, [2, [3]]], {\"k\": \"v\"}]");

  // safetensors: several dtypes, metadata, an empty tensor, a misaligned layout.
  {
    float f[6] = {1, 2, 3, 4, 5, 6};
    double d[2] = {1.5, -2};
    uint16_t h[4] = {0x3f80, 0x4000, 0x4040, 0x4080};  // bf16 1, 2, 3, 4
    bl::write_safetensors(tmp + "/a.safetensors",
                          {{"w", DType::F32, {2, 3}, f}, {"d", DType::F64, {2}, d}, {"h", DType::BF16, {4}, h},
                           {"e", DType::F32, {0, 3}, f}},
                          {{"format", "pt"}});
    put(out + "/safetensors", "mixed.safetensors", slurp(tmp + "/a.safetensors"));
    bl::write_safetensors(tmp + "/b.safetensors", {{"x", DType::F32, {1}, f}}, {});
    put(out + "/safetensors", "one.safetensors", slurp(tmp + "/b.safetensors"));
    // hand-made: header length 9 (data not 4-byte aligned) -> the realignment path
    std::string hdr = "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    std::string file(8, '\0');
    const uint64_t n = hdr.size();
    for (int i = 0; i < 8; ++i) file[size_t(i)] = char((n >> (8 * i)) & 0xff);
    file += hdr + std::string(reinterpret_cast<const char*>(f), 8);
    put(out + "/safetensors", "misaligned.safetensors", file);
  }

  // checkpoint index: refers to the two shards the target writes.
  put(out + "/checkpoint", "index.json",
      "{\"metadata\":{\"total_size\":24},\"weight_map\":{\"a.weight\":\"model-00001-of-00002.safetensors\","
      "\"b.weight\":\"model-00002-of-00002.safetensors\"}}");

  // adapter and posterior: from a model with LoRA, one Fisher batch.
  {
    bl::Backend& be = bl::cpu_backend();
    auto m = bl::LlamaModel::load(ck, be);
    bl::LoraConfig lc;
    lc.r = 2;
    lc.alpha = 4;
    lc.target_modules = {"q_proj", "v_proj", "lm_head"};
    lc.seed = 3;
    m->add_lora(lc);
    for (int id = 0; id < m->num_lora_matrices(); ++id) {  // non-zero B so factors are not trivial
      auto w = m->get_lora_weight(id);
      for (size_t i = 0; i < w.size(); ++i) w[i] += 0.01f * float(i % 7);
      m->set_lora_weight(id, w.data(), int64_t(w.size()));
    }
    const std::string ad = tmp + "/adapter";
    bl::save_adapter(*m, ad);
    put(out + "/adapter", "qv-head", slurp(ad + "/adapter_config.json") + fuzz::kSep + slurp(ad + "/adapter_model.safetensors"));

    const int B = 3, T = 4, C = 3;
    std::vector<int32_t> ids(B * T), last(B, T - 1), rows, labels;
    std::vector<uint8_t> mask(B * T, 1);
    for (int i = 0; i < B * T; ++i) ids[size_t(i)] = 4 + i % (fuzz::kV - 4);
    for (int b = 0; b < B; ++b) {
      labels.push_back(b % C);
      for (int c = 0; c < C; ++c) rows.push_back(5 + c);
    }
    bl::McBatchView view{B, T, C, ids.data(), mask.data(), last.data(), rows.data(), labels.data()};
    for (int variant = 0; variant < 2; ++variant) {
      bl::laplace::KfacOptions ko;
      ko.threshold = variant == 0 ? 512 : 4;  // variant 1: low-rank sides too
      ko.n_kfac = 3;
      if (variant == 1) ko.tokens = bl::laplace::TokenMode::kExpand;
      bl::laplace::KfacAccumulator acc(bl::laplace::model_lora_layers(*m, false), ko, &be);
      bl::laplace::FisherOptions fo;
      bl::laplace::fisher_batch(*m, view, acc, fo, 0);
      std::vector<double> priors(size_t(acc.num_layers()), 1.0);
      const std::string pf = tmp + "/posterior.safetensors";
      bl::laplace::save_laplace(pf, acc, priors, "exact", "0123456789abcdef");
      put(out + "/posterior", variant == 0 ? "dense.safetensors" : "lowrank.safetensors", slurp(pf));
    }
  }
  std::printf("seeds written to %s\n", out.c_str());
  return 0;
}
