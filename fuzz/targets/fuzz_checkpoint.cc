// Fuzz target: a sharded checkpoint's model.safetensors.index.json (shard
// names: no path traversal, no absolute paths; weight_map consistency) with
// two valid shards beside it, opened as a checkpoint directory.
#include <sys/stat.h>

#include "harness.h"
#include "io/safetensors.h"

namespace {
// Two small valid shards, written once; the index under test refers to them.
const std::string& dir() {
  static const std::string d = [] {
    std::string root = fuzz::scratch_dir() + "/ckpt";
    mkdir(root.c_str(), 0755);
    float a[4] = {1, 2, 3, 4}, b[2] = {5, 6};
    bl::write_safetensors(root + "/model-00001-of-00002.safetensors", {{"a.weight", bl::DType::F32, {2, 2}, a}}, {});
    bl::write_safetensors(root + "/model-00002-of-00002.safetensors", {{"b.weight", bl::DType::F32, {2}, b}}, {});
    return root;
  }();
  return d;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& d = dir();
  fuzz::write_bytes(d + "/model.safetensors.index.json", data, size);
  fuzz::expect_typed("checkpoint", [&] {
    bl::Checkpoint c = bl::Checkpoint::open_dir(d);
    for (const auto& n : c.names()) {
      const bl::TensorEntry& t = c.get(n);
      const auto* p = static_cast<const unsigned char*>(t.data);
      unsigned s = 0;
      for (size_t i = 0; i < t.nbytes; ++i) s += p[i];
      (void)s;
    }
  });
  return 0;
}
