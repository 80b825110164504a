// Fuzz target: a safetensors file (header length, JSON header, dtypes,
// shapes, offsets, overlaps, alignment copy). On success every tensor's bytes
// are read, so a byte range past the mapping is an ASan report.
#include "harness.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::scratch_dir() + "/input.safetensors";
  fuzz::write_bytes(path, data, size);
  fuzz::expect_typed("safetensors", [&] {
    auto f = bl::SafetensorsFile::open(path);
    unsigned sum = 0;
    for (const auto& t : f->tensors()) {
      const auto* p = static_cast<const unsigned char*>(t.data);
      for (size_t i = 0; i < t.nbytes; ++i) sum += p[i];
      if (t.numel() < 0) std::abort();
      if (f->find(t.name) != &t) std::abort();
    }
    (void)sum;
  });
  return 0;
}
