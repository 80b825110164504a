// Checked compilation and polynomial-time matching of target_modules regexes
// (see target_regex.h for why std::regex alone is not enough).
#include "model/target_regex.h"

#include <algorithm>
#include <vector>

#include "core/error.h"

namespace bl {

namespace {

std::string shown(const std::string& p) {
  std::string out;
  for (char ch : p.substr(0, 80)) out.push_back(ch >= 0x20 && ch < 0x7f ? ch : '?');
  return "'" + out + (p.size() > 80 ? "...'" : "'");
}

// Reads a repeat count at p[i..]; returns -1 when there are no digits, and
// fails when the count has more digits or is larger than the limit.
int read_count(const std::string& p, size_t& i, const std::string& what) {
  size_t j = i;
  while (j < p.size() && p[j] >= '0' && p[j] <= '9') ++j;
  if (j == i) return -1;
  const int v = j - i > 4 ? kTargetRegexMaxRepeat + 1 : std::stoi(p.substr(i, j - i));
  if (v > kTargetRegexMaxRepeat)
    fail(code::kUnsupported, what, " regex ", shown(p), ": repeat count above ", kTargetRegexMaxRepeat);
  i = j;
  return v;
}

// One pass over the pattern: limits, unsupported features, and an upper
// bound on the automaton's size (each atom 1 state; a group the sum of its
// alternatives; a repeat {n,m} copies its operand max(n, m) + 1 times).
// Malformed syntax is left to std::regex, which reports it.
void check_pattern(const std::string& p, const std::string& what) {
  if (p.size() > kTargetRegexMaxBytes)
    fail(code::kUnsupported, what, " regex is ", p.size(), " bytes; at most ", kTargetRegexMaxBytes,
         " are accepted");
  // Per open group: the size so far, and the size of the last atom (what a
  // following quantifier applies to).
  struct Frame {
    double total = 0, last = 0;
  };
  std::vector<Frame> st(1);
  auto atom = [&](double size) {
    st.back().total += size;
    st.back().last = size;
  };
  auto too_big = [&] {
    fail(code::kUnsupported, what, " regex ", shown(p), ": its automaton would exceed ",
         kTargetRegexMaxSize, " states");
  };
  for (size_t i = 0; i < p.size(); ++i) {
    const char ch = p[i];
    if (ch == '\\') {
      if (i + 1 < p.size() && p[i + 1] >= '1' && p[i + 1] <= '9')
        fail(code::kUnsupported, what, " regex ", shown(p), ": back-references are not supported");
      ++i;
      atom(1);
    } else if (ch == '[') {
      // A class is one atom; in ECMAScript the first unescaped ']' ends it.
      ++i;
      while (i < p.size() && p[i] != ']') i += p[i] == '\\' ? 2 : 1;
      atom(1);
    } else if (ch == '(') {
      if (p.compare(i, 3, "(?=") == 0 || p.compare(i, 3, "(?!") == 0 || p.compare(i, 3, "(?<") == 0)
        fail(code::kUnsupported, what, " regex ", shown(p), ": lookaround assertions are not supported");
      if (int(st.size()) > kTargetRegexMaxDepth)
        fail(code::kUnsupported, what, " regex ", shown(p), ": groups nested deeper than ",
             kTargetRegexMaxDepth);
      st.emplace_back();
      if (p.compare(i, 3, "(?:") == 0) i += 2;
    } else if (ch == ')') {
      if (st.size() == 1) continue;  // unbalanced: std::regex reports it
      const double g = st.back().total + 1;
      st.pop_back();
      atom(g);
    } else if (ch == '|') {
      st.back().total += 1;
      st.back().last = 0;
    } else if (ch == '*' || ch == '+' || ch == '?') {
      st.back().total += 1;
    } else if (ch == '{') {
      size_t j = i + 1;
      const int lo = read_count(p, j, what);
      int hi = lo;
      if (j < p.size() && p[j] == ',') {
        ++j;
        hi = read_count(p, j, what);
        if (hi < 0) hi = lo;  // {n,}: n copies and a loop
      }
      if (lo >= 0 && j < p.size() && p[j] == '}') {
        const double copies = double(std::max(lo, hi)) + 1;
        st.back().total += st.back().last * (copies - 1);
        st.back().last *= copies;
        i = j;
      } else {
        atom(1);  // not a repeat; std::regex decides whether it is legal
      }
    } else {
      atom(1);
    }
    if (st.back().total > kTargetRegexMaxSize) too_big();
  }
  double total = 0;
  for (const Frame& f : st) total += f.total;
  if (total > kTargetRegexMaxSize) too_big();
}

}  // namespace

TargetRegex::TargetRegex(const std::string& pattern, const std::string& what, const char* syntax_code) {
  check_pattern(pattern, what);
  auto flags = std::regex::ECMAScript;
#ifdef __GLIBCXX__
  // libstdc++'s breadth-first executor: time linear in the path length times
  // the automaton size, instead of the backtracking executor's exponential
  // worst case. It rejects back-references (checked above).
  flags |= std::regex_constants::__polynomial;
#endif
  try {
    re_ = std::make_shared<const std::regex>(pattern, flags);
  } catch (const std::regex_error& e) {
    const bool space = e.code() == std::regex_constants::error_space ||
                       e.code() == std::regex_constants::error_complexity;
    fail(space ? code::kUnsupported : syntax_code, what, " regex ", shown(pattern),
         space ? " is too complex: " : " cannot be compiled here (ECMAScript syntax): ", e.what());
  }
}

bool TargetRegex::full_match(const std::string& path) const { return std::regex_match(path, *re_); }

bool target_regex_full_match(const std::string& pattern, const std::string& path, const std::string& what,
                             const char* syntax_code) {
  thread_local std::string cached_pattern;
  thread_local std::unique_ptr<TargetRegex> cached;
  if (!cached || cached_pattern != pattern) {
    cached = std::make_unique<TargetRegex>(pattern, what, syntax_code);
    cached_pattern = pattern;
  }
  return cached->full_match(path);
}

}  // namespace bl
