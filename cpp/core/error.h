// bl::Error: the one exception type native code throws on user-facing failure.
// Every error carries a stable machine-readable code (mapped to JS `err.code`)
// and a human message. N-API glue converts it to a typed JS error; nothing in
// the library calls abort/exit or asserts on user input.
#pragma once
#include <stdexcept>
#include <string>
#include <sstream>

namespace bl {

// Stable error codes (keep in sync with ts/errors.ts).
namespace code {
inline constexpr const char* kInvalidArgument = "INVALID_ARGUMENT";
inline constexpr const char* kShapeMismatch = "SHAPE_MISMATCH";
inline constexpr const char* kBadFile = "BAD_FILE";          // malformed user file
inline constexpr const char* kIo = "IO_ERROR";               // open/read/write failed
inline constexpr const char* kUnsupported = "UNSUPPORTED";   // valid but not supported
inline constexpr const char* kOutOfMemory = "OUT_OF_MEMORY";
inline constexpr const char* kDisposed = "DISPOSED";          // use after dispose()
inline constexpr const char* kBusy = "BUSY";                  // object in use by another async call
inline constexpr const char* kNumerical = "NUMERICAL_ERROR";  // NaN/Inf, not PD, ...
inline constexpr const char* kNotImplemented = "NOT_IMPLEMENTED";
inline constexpr const char* kCuda = "CUDA_ERROR";
inline constexpr const char* kCudaOom = "CUDA_OOM";
inline constexpr const char* kAborted = "ABORTED";
inline constexpr const char* kInternal = "INTERNAL";
}  // namespace code

class Error : public std::runtime_error {
 public:
  Error(std::string code, const std::string& msg) : std::runtime_error(msg), code_(std::move(code)) {}
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

// Stream-style message builder: throw_error(code::kBadFile, "x: ", n, " bytes").
template <class... Args>
[[noreturn]] inline void fail(const char* code, const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  throw Error(code, os.str());
}

// Checked condition on user-controlled data; never compiled out.
#define BL_CHECK(cond, code, ...)                 \
  do {                                            \
    if (!(cond)) ::bl::fail(code, __VA_ARGS__);   \
  } while (0)

}  // namespace bl
