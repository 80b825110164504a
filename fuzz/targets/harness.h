// Shared by the C++ fuzz targets (fuzz/targets/*.cc): the contract every
// reader of user files must keep, and small helpers.
//
// Contract: for ANY input bytes a reader either succeeds or throws bl::Error
// (a typed error that becomes a JS error with a code). Anything else is a
// crash: another exception type (abort below), a sanitizer report (ASan,
// UBSan), a signal, or running past the per-input time limit (a hang).
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

#include "core/error.h"

namespace fuzz {

// Runs `f`; bl::Error is an expected outcome, any other exception aborts
// (which the fuzzer records as a crash with the input that caused it).
template <class F>
inline void expect_typed(const char* target, F&& f) {
  try {
    f();
  } catch (const bl::Error&) {
    // the contract: a typed error
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz %s: untyped exception: %s\n", target, e.what());
    std::abort();
  } catch (...) {
    std::fprintf(stderr, "fuzz %s: unknown exception\n", target);
    std::abort();
  }
}

// A private scratch directory per process (tmpfs when available: the
// readers under test take paths, and writing the input there is cheap).
inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    const char* base = std::getenv("FUZZ_SCRATCH");
    std::string tmpl = std::string(base ? base : (access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp")) +
                       "/bl-fuzz-XXXXXX";
    if (!mkdtemp(tmpl.data())) {
      std::perror("mkdtemp");
      std::abort();
    }
    return tmpl;
  }();
  return dir;
}

inline void write_bytes(const std::string& path, const uint8_t* data, size_t size) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) {
    std::perror(path.c_str());
    std::abort();
  }
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
}

// Splits an input into two parts at the first occurrence of `sep` (e.g. a
// JSON file and a binary file); without it, all bytes are the first part.
inline void split2(const uint8_t* data, size_t size, const char* sep, std::string& a, std::string& b) {
  const std::string s(reinterpret_cast<const char*>(data), size);
  const size_t at = s.find(sep);
  if (at == std::string::npos) {
    a = s;
    b.clear();
  } else {
    a = s.substr(0, at);
    b = s.substr(at + std::strlen(sep));
  }
}

// The separator the seed generator and the targets agree on.
constexpr const char* kSep = "\n--8<--bl-fuzz--8<--\n";

}  // namespace fuzz
