// Strict bounded JSON parser and serializer (see json.h).
#include "io/json.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

#include "core/error.h"

namespace bl::json {

const char* type_name(Type t) {
  switch (t) {
    case Type::Null: return "null";
    case Type::Bool: return "boolean";
    case Type::Number: return "number";
    case Type::String: return "string";
    case Type::Array: return "array";
    case Type::Object: return "object";
  }
  return "?";
}

Value::Value(int64_t v) : type_(Type::Number), int_literal_(true), i_(v), d_(double(v)) {}
Value::Value(double d) : type_(Type::Number), d_(d) {}

Value Value::array() {
  Value v;
  v.type_ = Type::Array;
  return v;
}
Value Value::object() {
  Value v;
  v.type_ = Type::Object;
  return v;
}

bool Value::is_integer() const {
  if (type_ != Type::Number) return false;
  if (int_literal_) return true;
  // 2^53: beyond it a double no longer identifies one integer.
  return std::isfinite(d_) && d_ == std::floor(d_) && std::fabs(d_) <= 9007199254740992.0;
}

int64_t Value::integer() const { return int_literal_ ? i_ : int64_t(d_); }

const Value* Value::find(std::string_view key) const {
  for (const auto& m : o_)
    if (m.key == key) return &m.value;
  return nullptr;
}

Value& Value::push(Value v) {
  a_.push_back(std::move(v));
  return a_.back();
}

Value& Value::set(std::string key, Value v) {
  for (auto& m : o_)
    if (m.key == key) return m.value = std::move(v);
  o_.push_back(Member{std::move(key), std::move(v)});
  return o_.back().value;
}

// ---- UTF-8 -----------------------------------------------------------------------

// Length of the well-formed UTF-8 sequence at s[i] (1..4), or 0 if malformed.
static size_t utf8_seq(const unsigned char* s, size_t i, size_t n) {
  unsigned c = s[i];
  if (c < 0x80) return 1;
  auto cont = [&](size_t k, unsigned lo, unsigned hi) {
    return i + k < n && s[i + k] >= lo && s[i + k] <= hi;
  };
  if (c >= 0xC2 && c <= 0xDF) return cont(1, 0x80, 0xBF) ? 2 : 0;
  if (c == 0xE0) return cont(1, 0xA0, 0xBF) && cont(2, 0x80, 0xBF) ? 3 : 0;
  if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF)
    return cont(1, 0x80, 0xBF) && cont(2, 0x80, 0xBF) ? 3 : 0;
  if (c == 0xED) return cont(1, 0x80, 0x9F) && cont(2, 0x80, 0xBF) ? 3 : 0;  // no surrogates
  if (c == 0xF0) return cont(1, 0x90, 0xBF) && cont(2, 0x80, 0xBF) && cont(3, 0x80, 0xBF) ? 4 : 0;
  if (c >= 0xF1 && c <= 0xF3)
    return cont(1, 0x80, 0xBF) && cont(2, 0x80, 0xBF) && cont(3, 0x80, 0xBF) ? 4 : 0;
  if (c == 0xF4) return cont(1, 0x80, 0x8F) && cont(2, 0x80, 0xBF) && cont(3, 0x80, 0xBF) ? 4 : 0;
  return 0;
}

bool valid_utf8(std::string_view sv) {
  auto* s = reinterpret_cast<const unsigned char*>(sv.data());
  size_t n = sv.size();
  for (size_t i = 0; i < n;) {
    size_t k = utf8_seq(s, i, n);
    if (!k) return false;
    i += k;
  }
  return true;
}

static void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

// ---- parser ----------------------------------------------------------------------

class Parser {
 public:
  Parser(std::string_view text, const std::string& origin, const ParseOptions& opt)
      : s_(reinterpret_cast<const unsigned char*>(text.data())), n_(text.size()), origin_(origin),
        opt_(opt) {}

  Value document() {
    if (n_ > opt_.max_bytes)
      fail(code::kBadFile, origin_, ": JSON text of ", n_, " bytes exceeds the limit of ", opt_.max_bytes,
           " bytes");
    Value v;
    skip_ws();
    value(v, 0);
    skip_ws();
    if (p_ != n_) error("unexpected data after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void error(const char* what) { error_at(p_, what); }
  [[noreturn]] void error_at(size_t at, const char* what) {
    fail(code::kBadFile, origin_, ": invalid JSON at byte ", at + opt_.base_offset, ": ", what);
  }

  void skip_ws() {
    while (p_ < n_ && (s_[p_] == ' ' || s_[p_] == '\t' || s_[p_] == '\n' || s_[p_] == '\r')) ++p_;
  }

  bool literal(const char* word) {
    size_t len = std::strlen(word);
    if (n_ - p_ < len || std::memcmp(s_ + p_, word, len) != 0) return false;
    p_ += len;
    return true;
  }

  void value(Value& out, int depth) {
    if (++count_ > opt_.max_values) error("too many values (document too complex)");
    if (p_ >= n_) error("unexpected end of input, expected a value");
    unsigned char c = s_[p_];
    switch (c) {
      case '{': return object(out, depth + 1);
      case '[': return array(out, depth + 1);
      case '"':
        out.type_ = Type::String;
        return string(out.s_);
      case 't':
        if (!literal("true")) error("invalid literal");
        out.type_ = Type::Bool;
        out.b_ = true;
        return;
      case 'f':
        if (!literal("false")) error("invalid literal");
        out.type_ = Type::Bool;
        out.b_ = false;
        return;
      case 'n':
        if (!literal("null")) error("invalid literal");
        out.type_ = Type::Null;
        return;
      default:
        if (c == '-' || (c >= '0' && c <= '9')) return number(out);
        error("unexpected character, expected a value");
    }
  }

  void object(Value& out, int depth) {
    if (depth > opt_.max_depth) error("nesting too deep");
    out.type_ = Type::Object;
    ++p_;  // '{'
    skip_ws();
    if (p_ < n_ && s_[p_] == '}') {
      ++p_;
      return;
    }
    for (;;) {
      skip_ws();
      if (p_ >= n_ || s_[p_] != '"') error("expected a string key");
      size_t key_at = p_;
      Member m;
      string(m.key);
      key_offsets_.push_back(key_at);
      skip_ws();
      if (p_ >= n_ || s_[p_] != ':') error("expected ':'");
      ++p_;
      skip_ws();
      value(m.value, depth);
      out.o_.push_back(std::move(m));
      skip_ws();
      if (p_ < n_ && s_[p_] == ',') {
        ++p_;
        continue;
      }
      if (p_ < n_ && s_[p_] == '}') {
        ++p_;
        break;
      }
      error("expected ',' or '}'");
    }
    check_duplicates(out);
  }

  // Duplicate keys are ambiguous (which one wins differs between readers), so
  // they are an error. Sorting keeps this O(n log n) for big headers.
  void check_duplicates(const Value& obj) {
    const auto& ms = obj.o_;
    size_t first = key_offsets_.size() - ms.size();
    if (ms.size() <= 8) {
      for (size_t i = 1; i < ms.size(); ++i)
        for (size_t j = 0; j < i; ++j)
          if (ms[i].key == ms[j].key) duplicate(ms[i].key, key_offsets_[first + i]);
    } else {
      std::vector<size_t> idx(ms.size());
      for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
      std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) {
        return ms[a].key != ms[b].key ? ms[a].key < ms[b].key : a < b;
      });
      for (size_t i = 1; i < idx.size(); ++i)
        if (ms[idx[i]].key == ms[idx[i - 1]].key) duplicate(ms[idx[i]].key, key_offsets_[first + idx[i]]);
    }
    key_offsets_.resize(first);
  }

  [[noreturn]] void duplicate(const std::string& key, size_t at) {
    std::string shown;
    dump_string(shown, key.size() > 200 ? key.substr(0, 200) : key);
    fail(code::kBadFile, origin_, ": invalid JSON at byte ", at + opt_.base_offset, ": duplicate key ", shown);
  }

  void array(Value& out, int depth) {
    if (depth > opt_.max_depth) error("nesting too deep");
    out.type_ = Type::Array;
    ++p_;  // '['
    skip_ws();
    if (p_ < n_ && s_[p_] == ']') {
      ++p_;
      return;
    }
    for (;;) {
      skip_ws();
      out.a_.emplace_back();
      value(out.a_.back(), depth);
      skip_ws();
      if (p_ < n_ && s_[p_] == ',') {
        ++p_;
        continue;
      }
      if (p_ < n_ && s_[p_] == ']') {
        ++p_;
        return;
      }
      error("expected ',' or ']'");
    }
  }

  int hex4() {
    if (n_ - p_ < 4) error("truncated \\u escape");
    int v = 0;
    for (int k = 0; k < 4; ++k) {
      unsigned char c = s_[p_ + k];
      int d;
      if (c >= '0' && c <= '9') d = c - '0';
      else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
      else error_at(p_ + k, "invalid hex digit in \\u escape");
      v = v * 16 + d;
    }
    p_ += 4;
    return v;
  }

  void string(std::string& out) {
    ++p_;  // opening quote
    for (;;) {
      size_t run = p_;
      while (p_ < n_ && s_[p_] != '"' && s_[p_] != '\\' && s_[p_] >= 0x20 && s_[p_] < 0x80) ++p_;
      out.append(reinterpret_cast<const char*>(s_ + run), p_ - run);
      if (p_ >= n_) error("unterminated string");
      unsigned char c = s_[p_];
      if (c == '"') {
        ++p_;
        return;
      }
      if (c < 0x20) error("control character in string");
      if (c >= 0x80) {
        size_t k = utf8_seq(s_, p_, n_);
        if (!k) error("invalid UTF-8 in string");
        out.append(reinterpret_cast<const char*>(s_ + p_), k);
        p_ += k;
        continue;
      }
      // backslash escape
      size_t esc_at = p_;
      ++p_;
      if (p_ >= n_) error("unterminated escape");
      char e = char(s_[p_++]);
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = uint32_t(hex4());
          if (cp >= 0xDC00 && cp <= 0xDFFF) error_at(esc_at, "lone low surrogate in \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (n_ - p_ < 2 || s_[p_] != '\\' || s_[p_ + 1] != 'u')
              error_at(esc_at, "high surrogate not followed by a low surrogate");
            p_ += 2;
            uint32_t lo = uint32_t(hex4());
            if (lo < 0xDC00 || lo > 0xDFFF) error_at(esc_at, "high surrogate not followed by a low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          append_utf8(out, cp);
          break;
        }
        default: error_at(esc_at, "invalid escape");
      }
    }
  }

  void number(Value& out) {
    size_t start = p_;
    bool integral = true;
    if (s_[p_] == '-') ++p_;
    if (p_ >= n_ || !(s_[p_] >= '0' && s_[p_] <= '9')) error("invalid number");
    if (s_[p_] == '0') {
      ++p_;
      if (p_ < n_ && s_[p_] >= '0' && s_[p_] <= '9') error("leading zero in number");
    } else {
      while (p_ < n_ && s_[p_] >= '0' && s_[p_] <= '9') ++p_;
    }
    if (p_ < n_ && s_[p_] == '.') {
      integral = false;
      ++p_;
      if (p_ >= n_ || !(s_[p_] >= '0' && s_[p_] <= '9')) error("expected digits after '.'");
      while (p_ < n_ && s_[p_] >= '0' && s_[p_] <= '9') ++p_;
    }
    if (p_ < n_ && (s_[p_] == 'e' || s_[p_] == 'E')) {
      integral = false;
      ++p_;
      if (p_ < n_ && (s_[p_] == '+' || s_[p_] == '-')) ++p_;
      if (p_ >= n_ || !(s_[p_] >= '0' && s_[p_] <= '9')) error("expected digits in exponent");
      while (p_ < n_ && s_[p_] >= '0' && s_[p_] <= '9') ++p_;
    }
    const char* b = reinterpret_cast<const char*>(s_ + start);
    const char* e = reinterpret_cast<const char*>(s_ + p_);
    out.type_ = Type::Number;
    if (integral) {
      int64_t i = 0;
      auto r = std::from_chars(b, e, i);
      if (r.ec == std::errc() && r.ptr == e) {
        out.int_literal_ = true;
        out.i_ = i;
        out.d_ = double(i);
        return;
      }
    }
    // from_chars is locale-independent (strtod is not) and correctly rounded.
    double d = 0;
    auto r = std::from_chars(b, e, d);
    if (r.ec == std::errc::result_out_of_range) error_at(start, "number out of range of a double");
    if (r.ec != std::errc() || r.ptr != e) error_at(start, "invalid number");
    out.d_ = d;
  }

  const unsigned char* s_;
  size_t n_;
  size_t p_ = 0;
  const std::string& origin_;
  ParseOptions opt_;
  size_t count_ = 0;
  std::vector<size_t> key_offsets_;  // byte offset of each pending object key (for messages)
};

Value parse(std::string_view text, const std::string& origin, const ParseOptions& opt) {
  return Parser(text, origin, opt).document();
}

// ---- serializer ------------------------------------------------------------------

void dump_string(std::string& out, std::string_view s) {
  if (!valid_utf8(s)) fail(code::kInvalidArgument, "string is not valid UTF-8 and cannot be written as JSON");
  static const char* hex = "0123456789abcdef";
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else {
          out += char(c);
        }
    }
  }
  out += '"';
}

std::string format_double(double d) {
  if (!std::isfinite(d)) fail(code::kInvalidArgument, "cannot write a non-finite number (", d, ") as JSON");
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d);  // shortest round-trip form
  std::string s(buf, r.ptr);
  // to_chars never emits "inf"/"nan" here and uses JSON-compatible syntax
  // ("1e-05", "0.1", "16"); nothing else to fix up.
  return s;
}

static void dump_rec(std::string& out, const Value& v, int indent, int level) {
  auto newline = [&](int lvl) {
    if (indent < 0) return;
    out += '\n';
    out.append(size_t(indent) * size_t(lvl), ' ');
  };
  switch (v.type()) {
    case Type::Null: out += "null"; return;
    case Type::Bool: out += v.boolean() ? "true" : "false"; return;
    case Type::Number:
      if (v.is_integer())
        out += std::to_string(v.integer());
      else
        out += format_double(v.number());
      return;
    case Type::String: dump_string(out, v.str()); return;
    case Type::Array: {
      if (v.items().empty()) {
        out += "[]";
        return;
      }
      out += '[';
      bool first = true;
      for (const auto& x : v.items()) {
        if (!first) out += ',';
        first = false;
        newline(level + 1);
        dump_rec(out, x, indent, level + 1);
      }
      newline(level);
      out += ']';
      return;
    }
    case Type::Object: {
      if (v.members().empty()) {
        out += "{}";
        return;
      }
      out += '{';
      bool first = true;
      for (const auto& m : v.members()) {
        if (!first) out += ',';
        first = false;
        newline(level + 1);
        dump_string(out, m.key);
        out += indent < 0 ? ":" : ": ";
        dump_rec(out, m.value, indent, level + 1);
      }
      newline(level);
      out += '}';
      return;
    }
  }
}

std::string dump(const Value& v, int indent) {
  std::string out;
  dump_rec(out, v, indent, 0);
  return out;
}

}  // namespace bl::json
