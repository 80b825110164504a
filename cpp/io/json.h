// JSON: a small strict parser and a serializer for every JSON file bayeslora
// reads or writes (safetensors headers, config.json, shard indexes, PEFT
// adapter configs). Strict means RFC 8259 only: no comments, no trailing
// commas, no NaN/Infinity, valid UTF-8, no lone surrogates, no duplicate keys.
// The parser is bounded (input size, nesting depth, value count) because the
// input is a user file; every failure is bl::Error(BAD_FILE) naming the origin
// and the byte offset.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace bl::json {

enum class Type : uint8_t { Null, Bool, Number, String, Array, Object };
const char* type_name(Type t);

struct Member;

class Value {
 public:
  Value() = default;  // null
  Value(std::nullptr_t) {}
  Value(bool b) : type_(Type::Bool), b_(b) {}
  Value(int v) : Value(int64_t(v)) {}
  Value(int64_t v);
  Value(double d);
  Value(const char* s) : type_(Type::String), s_(s) {}
  Value(std::string s) : type_(Type::String), s_(std::move(s)) {}
  static Value array();
  static Value object();

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::Null; }
  bool is_bool() const { return type_ == Type::Bool; }
  bool is_number() const { return type_ == Type::Number; }
  bool is_string() const { return type_ == Type::String; }
  bool is_array() const { return type_ == Type::Array; }
  bool is_object() const { return type_ == Type::Object; }

  // Accessors assume the type was checked (they return defaults otherwise).
  bool boolean() const { return b_; }
  double number() const { return d_; }
  // True when the number is an exact integer representable as int64: either
  // written without fraction/exponent, or an integral double below 2^53.
  bool is_integer() const;
  int64_t integer() const;  // valid when is_integer()
  const std::string& str() const { return s_; }
  const std::vector<Value>& items() const { return a_; }
  const std::vector<Member>& members() const { return o_; }

  // Object lookup (linear; objects we query are small). nullptr if absent.
  const Value* find(std::string_view key) const;
  // Builders.
  Value& push(Value v);                    // array append
  Value& set(std::string key, Value v);    // object insert or replace (keeps first position)

 private:
  friend class Parser;
  Type type_ = Type::Null;
  bool b_ = false;
  bool int_literal_ = false;  // number written as an integer literal that fits int64
  int64_t i_ = 0;
  double d_ = 0;
  std::string s_;
  std::vector<Value> a_;
  std::vector<Member> o_;
};

struct Member {
  std::string key;
  Value value;
};

struct ParseOptions {
  size_t max_bytes = 64u << 20;   // input larger than this is rejected
  int max_depth = 64;             // nesting of arrays/objects
  size_t max_values = 4000000;    // total values, bounds memory on hostile input
  size_t base_offset = 0;         // added to reported byte offsets (e.g. 8 for safetensors)
};

// Parse a complete JSON document (surrounding whitespace allowed). `origin`
// names the source (usually the file path) in error messages.
Value parse(std::string_view text, const std::string& origin, const ParseOptions& opt = {});

// Serialise. indent < 0: compact; otherwise pretty-printed with `indent` spaces.
// Throws INVALID_ARGUMENT for non-finite numbers or strings that are not UTF-8.
std::string dump(const Value& v, int indent = -1);
// Append `s` as a quoted, escaped JSON string.
void dump_string(std::string& out, std::string_view s);
// Shortest text that parses back to exactly `d` (finite only).
std::string format_double(double d);
// True when `s` is well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF).
bool valid_utf8(std::string_view s);

}  // namespace bl::json
