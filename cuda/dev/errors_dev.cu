// Error-path harness: a kernel that faults (fill through a bogus device
// pointer) must surface as bl::Error CUDA_ERROR at the next synchronising
// call, and every later call must fail fast naming the original error (the
// context is unusable after a sticky error). Runs last, in its own process.
// deps: all
#include <cstdio>
#include <string>

#include "core/error.h"
#include "cuda_backend.h"

int main() {
  int failures = 0;
  auto expect = [&](bool ok, const char* what) {
    std::printf("  %s %s\n", ok ? "ok  " : "FAIL", what);
    if (!ok) ++failures;
  };
  try {
    bl::Backend& be = bl::cuda_backend();
    float* good = static_cast<float*>(be.alloc(1024));
    be.fill(good, 1.f, 256);
    be.synchronize();
    std::string first;
    try {
      be.fill(reinterpret_cast<float*>(0x100), 1.f, int64_t(1) << 24);  // illegal address
      be.synchronize();
    } catch (const bl::Error& e) {
      first = e.code() + ": " + e.what();
    }
    std::printf("    first error: %s\n", first.c_str());
    expect(first.rfind("CUDA_ERROR", 0) == 0, "faulting kernel -> CUDA_ERROR at synchronize");
    std::string later;
    try {
      be.alloc(64);
    } catch (const bl::Error& e) {
      later = e.code() + ": " + e.what();
    }
    std::printf("    later call: %s\n", later.c_str());
    expect(later.rfind("CUDA_ERROR", 0) == 0 && later.find("unusable") != std::string::npos,
           "later calls fail fast: context unusable");
    bool usable = true;
    std::string probe = bl::cuda_probe(&usable);
    std::printf("    probe: %s\n", probe.c_str());
    expect(!usable, "cuda_probe reports the context unusable");
    be.dealloc(good);  // must not throw or crash
    expect(true, "dealloc after a sticky error is a silent no-op");
  } catch (const bl::Error& e) {
    std::printf("error: [%s] %s\n", e.code().c_str(), e.what());
    return 2;
  }
  std::printf("errors_dev: %s (%d failed checks)\n", failures ? "FAILED" : "passed", failures);
  return failures ? 1 : 0;
}
