// PEFT's regex form of target_modules ("a string is re.fullmatch'ed against
// each module path"), compiled so that a hostile pattern from an
// adapter_config.json or the API is a typed error, never a crash or a hang.
//
// std::regex alone is not safe for that: its default (backtracking) matcher
// takes exponential time on patterns like "(.*)*x" against a module path
// (a hang), its compiler recurses once per pattern element (a long pattern
// overflows the stack) and parses repeat counts into a signed long without
// an overflow check ("a{99999999999999999999}" is undefined behaviour).
// TargetRegex therefore checks the pattern first (length, nesting, repeat
// counts, an upper bound on the automaton size, no back-references or
// lookaheads), then compiles it for libstdc++'s polynomial-time matcher.
#pragma once
#include <memory>
#include <regex>
#include <string>

namespace bl {

// Limits on a target_modules regex (PEFT's are a few dozen characters).
constexpr size_t kTargetRegexMaxBytes = 1024;
constexpr int kTargetRegexMaxDepth = 32;       // nested groups
constexpr int kTargetRegexMaxRepeat = 1000;    // n in {n}, {n,}, {n,m}
constexpr double kTargetRegexMaxSize = 4096;   // estimated automaton states

class TargetRegex {
 public:
  // Throws `syntax_code` when std::regex rejects the pattern (INVALID_ARGUMENT
  // for API input; UNSUPPORTED for a file, whose Python regex may simply not
  // be ECMAScript), and UNSUPPORTED when it is beyond the limits above or uses
  // a feature the polynomial matcher lacks. `what` names its origin.
  TargetRegex(const std::string& pattern, const std::string& what, const char* syntax_code);
  // True when the whole of `path` matches (PEFT's re.fullmatch).
  bool full_match(const std::string& path) const;

 private:
  std::shared_ptr<const std::regex> re_;
};

// TargetRegex(pattern, what, syntax_code).full_match(path), compiled once per
// pattern and thread: callers ask for every module path of a model in turn.
bool target_regex_full_match(const std::string& pattern, const std::string& path, const std::string& what,
                             const char* syntax_code);

}  // namespace bl
