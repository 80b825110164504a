// Safetensors reading (mmap + full validation), checkpoint directories
// (single file or sharded index), and atomic writing. See safetensors.h.
#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "core/error.h"
#include "io/files.h"
#include "io/json.h"

namespace bl {

namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // same limit as the reference implementation
constexpr size_t kMaxIndexBytes = 64u << 20;

bool parse_dtype(const std::string& s, DType* out) {
  static const struct {
    const char* name;
    DType t;
  } table[] = {{"F32", DType::F32}, {"F16", DType::F16}, {"BF16", DType::BF16}, {"F64", DType::F64},
               {"I32", DType::I32}, {"I64", DType::I64}, {"U8", DType::U8}};
  for (const auto& e : table)
    if (s == e.name) {
      *out = e.t;
      return true;
    }
  return false;
}

// A name safe to print inside an error message (bounded, escaped).
std::string shown(const std::string& name) {
  std::string out;
  std::string cut = name.size() > 200 ? name.substr(0, 200) + "..." : name;
  if (json::valid_utf8(cut)) {
    json::dump_string(out, cut);
  } else {
    out = "<non-UTF-8 name>";
  }
  return out;
}

uint64_t read_le64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

void put_le64(unsigned char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = (unsigned char)(v >> (8 * i));
}

struct Parsed {
  TensorEntry e;
  uint64_t begin = 0, end = 0;
};

// Validate one header entry `{"dtype", "shape", "data_offsets"}`.
Parsed parse_entry(const std::string& path, const std::string& name, const json::Value& v, uint64_t data_len) {
  auto bad = [&](const auto&... what) { fail(code::kBadFile, path, ": tensor ", shown(name), ": ", what...); };
  if (!v.is_object()) bad("header entry is not an object");
  Parsed p;
  p.e.name = name;
  const json::Value* dt = v.find("dtype");
  if (!dt || !dt->is_string()) bad("missing or non-string \"dtype\"");
  if (!parse_dtype(dt->str(), &p.e.dtype)) bad("unknown dtype ", shown(dt->str()));
  const json::Value* sh = v.find("shape");
  if (!sh || !sh->is_array()) bad("missing or non-array \"shape\"");
  uint64_t numel = 1;
  for (const auto& d : sh->items()) {
    if (!d.is_integer() || d.integer() < 0) bad("shape entries must be non-negative integers");
    uint64_t dim = uint64_t(d.integer());
    if (__builtin_mul_overflow(numel, dim, &numel)) bad("shape element count overflows");
    p.e.shape.push_back(int64_t(dim));
  }
  uint64_t nbytes = 0;
  if (__builtin_mul_overflow(numel, uint64_t(dtype_size(p.e.dtype)), &nbytes) || nbytes > (uint64_t(1) << 62))
    bad("shape byte count overflows");
  const json::Value* off = v.find("data_offsets");
  if (!off || !off->is_array() || off->items().size() != 2) bad("\"data_offsets\" must be [begin, end]");
  const auto& b = off->items()[0];
  const auto& e = off->items()[1];
  if (!b.is_integer() || !e.is_integer() || b.integer() < 0 || e.integer() < 0)
    bad("data offsets must be non-negative integers");
  p.begin = uint64_t(b.integer());
  p.end = uint64_t(e.integer());
  if (p.begin > p.end) bad("data offsets [", p.begin, ", ", p.end, "] are reversed");
  if (p.end > data_len)
    bad("data offsets [", p.begin, ", ", p.end, "] exceed the data section (", data_len, " bytes)");
  if (p.end - p.begin != nbytes)
    bad("byte range ", p.end - p.begin, " does not match dtype ", dtype_name(p.e.dtype), " x shape (", nbytes,
        " bytes)");
  p.e.nbytes = size_t(nbytes);
  return p;
}

// The whole file read into a private anonymous mapping (read-only afterwards),
// for callers that must not depend on the file after opening it. On failure it
// closes `fd` and throws; a file that shrinks while it is read is BAD_FILE.
void* read_private(int fd, const std::string& path, uint64_t size) {
  void* a = ::mmap(nullptr, size_t(size), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (a == MAP_FAILED) {
    ::close(fd);
    fail(code::kOutOfMemory, path, ": cannot allocate ", size, " bytes to read the file");
  }
  auto* dst = static_cast<unsigned char*>(a);
  uint64_t at = 0;
  while (at < size) {
    ssize_t n = ::pread(fd, dst + at, size_t(std::min<uint64_t>(size - at, uint64_t(1) << 30)), off_t(at));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = n < 0 ? errno : 0;
      ::munmap(a, size_t(size));
      ::close(fd);
      if (err) fail(code::kIo, path, ": read failed: ", std::strerror(err));
      fail(code::kBadFile, path, ": file shrank to ", at, " bytes while it was read (", size, " expected)");
    }
    at += uint64_t(n);
  }
  ::mprotect(a, size_t(size), PROT_READ);
  return a;
}

}  // namespace

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, map_size_);
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path, bool copy) {
  if (path.find('\0') != std::string::npos) fail(code::kInvalidArgument, "path contains a NUL byte");
  // O_NONBLOCK: opening a FIFO or device must not hang; non-regular files are rejected below.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) fail(code::kIo, path, ": cannot open: ", std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    fail(code::kIo, path, ": cannot stat: ", std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(code::kIo, path, ": not a regular file");
  }
  uint64_t size = uint64_t(st.st_size);
  if (size < 8) {
    ::close(fd);
    fail(code::kBadFile, path, ": file is ", size, " bytes, too small for a safetensors header");
  }
  void* m = copy ? read_private(fd, path, size) : ::mmap(nullptr, size_t(size), PROT_READ, MAP_PRIVATE, fd, 0);
  int map_err = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (m == MAP_FAILED) fail(code::kIo, path, ": mmap failed: ", std::strerror(map_err));

  std::shared_ptr<SafetensorsFile> f(new SafetensorsFile());  // owns the mapping from here on
  f->path_ = path;
  f->map_ = m;
  f->map_size_ = size_t(size);
  const auto* bytes = static_cast<const unsigned char*>(m);

  uint64_t n = read_le64(bytes);
  if (n > kMaxHeaderBytes)
    fail(code::kBadFile, path, ": header length ", n, " exceeds the limit of ", kMaxHeaderBytes, " bytes");
  if (n > size - 8)
    fail(code::kBadFile, path, ": header length ", n, " runs past the end of the file (", size, " bytes)");
  json::ParseOptions opt;
  opt.max_bytes = size_t(kMaxHeaderBytes);
  opt.base_offset = 8;
  json::Value h = json::parse(std::string_view(reinterpret_cast<const char*>(bytes + 8), size_t(n)), path, opt);
  if (!h.is_object()) fail(code::kBadFile, path, ": header is a JSON ", json::type_name(h.type()), ", not an object");

  const uint64_t data_base = 8 + n;
  const uint64_t data_len = size - data_base;
  std::vector<Parsed> entries;
  entries.reserve(h.members().size());
  for (const auto& mem : h.members()) {
    if (mem.key == "__metadata__") {
      if (mem.value.is_null()) continue;
      if (!mem.value.is_object()) fail(code::kBadFile, path, ": \"__metadata__\" must be an object of strings");
      for (const auto& kv : mem.value.members()) {
        if (!kv.value.is_string())
          fail(code::kBadFile, path, ": \"__metadata__\" value for ", shown(kv.key), " is not a string");
        f->metadata_[kv.key] = kv.value.str();
      }
      continue;
    }
    entries.push_back(parse_entry(path, mem.key, mem.value, data_len));
  }

  // File order; then no two non-empty byte ranges may share a byte.
  std::stable_sort(entries.begin(), entries.end(), [](const Parsed& a, const Parsed& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t max_end = 0;
  const Parsed* holder = nullptr;
  for (const auto& p : entries) {
    if (p.end == p.begin) continue;
    if (holder && p.begin < max_end)
      fail(code::kBadFile, path, ": tensors ", shown(holder->e.name), " and ", shown(p.e.name),
           " have overlapping data offsets");
    max_end = p.end;
    holder = &p;
  }

  // Callers read tensors through typed pointers, so each tensor must be
  // aligned to its element size. Files written with 8-byte header padding and
  // dtype-ordered tensors always are; for others, copy every tensor into an
  // aligned anonymous read-only mapping that replaces the file mapping.
  bool misaligned = false;
  uint64_t packed = 0;
  for (const auto& p : entries) {
    if (p.e.nbytes && (data_base + p.begin) % dtype_size(p.e.dtype) != 0) misaligned = true;
    packed += (p.e.nbytes + 63) & ~uint64_t(63);
  }
  const unsigned char* base = bytes + data_base;
  if (misaligned) {
    void* a = ::mmap(nullptr, size_t(packed), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (a == MAP_FAILED) fail(code::kOutOfMemory, path, ": cannot allocate ", packed, " bytes to realign tensors");
    auto* dst = static_cast<unsigned char*>(a);
    uint64_t at = 0;
    for (auto& p : entries) {
      if (p.e.nbytes) std::memcpy(dst + at, base + p.begin, p.e.nbytes);
      p.e.data = dst + at;
      at += (p.e.nbytes + 63) & ~uint64_t(63);
    }
    ::mprotect(a, size_t(packed), PROT_READ);
    ::munmap(f->map_, f->map_size_);
    f->map_ = a;
    f->map_size_ = size_t(packed);
  } else {
    for (auto& p : entries) p.e.data = base + p.begin;
  }

  f->tensors_.reserve(entries.size());
  for (auto& p : entries) {
    f->index_[p.e.name] = f->tensors_.size();
    f->tensors_.push_back(std::move(p.e));
  }
  return f;
}

const TensorEntry* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const TensorEntry& SafetensorsFile::get(const std::string& name) const {
  const TensorEntry* e = find(name);
  if (!e) fail(code::kBadFile, path_, ": no tensor named ", shown(name));
  return *e;
}

// ---- checkpoint directories -----------------------------------------------------

// Shard names come from a user file: only plain file names inside the
// checkpoint directory are acceptable.
static void check_shard_name(const std::string& index_path, const std::string& shard) {
  auto bad = [&](const char* why) {
    fail(code::kBadFile, index_path, ": shard file name ", shown(shard), " ", why);
  };
  if (shard.empty()) bad("is empty");
  if (shard.size() > 255) bad("is too long");
  if (shard.find('\0') != std::string::npos) bad("contains a NUL byte");
  if (shard.find('/') != std::string::npos || shard.find('\\') != std::string::npos)
    bad("contains a path separator (shards must be plain file names in the checkpoint directory)");
  if (shard.find("..") != std::string::npos || shard == ".") bad("contains '..' or is '.'");
}

Checkpoint Checkpoint::open_dir(const std::string& dir, bool copy) {
  if (dir.find('\0') != std::string::npos) fail(code::kInvalidArgument, "path contains a NUL byte");
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) fail(code::kIo, dir, ": cannot access checkpoint directory: ", std::strerror(errno));
  if (!S_ISDIR(st.st_mode)) fail(code::kIo, dir, ": not a directory");
  Checkpoint c;
  c.dir_ = dir;
  const std::string single = join_path(dir, "model.safetensors");
  const std::string index = join_path(dir, "model.safetensors.index.json");
  if (path_exists(single)) {
    auto f = SafetensorsFile::open(single, copy);
    for (const auto& t : f->tensors()) c.by_name_[t.name] = &t;
    c.files_.push_back(std::move(f));
    return c;
  }
  if (!path_exists(index))
    fail(code::kIo, dir, ": no model.safetensors or model.safetensors.index.json in the checkpoint directory");

  json::ParseOptions opt;
  opt.max_bytes = kMaxIndexBytes;
  json::Value v = json::parse(read_text_file(index, kMaxIndexBytes), index, opt);
  if (!v.is_object()) fail(code::kBadFile, index, ": not a JSON object");
  const json::Value* wm = v.find("weight_map");
  if (!wm || !wm->is_object()) fail(code::kBadFile, index, ": missing \"weight_map\" object");
  if (wm->members().empty()) fail(code::kBadFile, index, ": \"weight_map\" is empty");
  std::map<std::string, std::shared_ptr<SafetensorsFile>> shards;
  for (const auto& m : wm->members()) {
    if (!m.value.is_string())
      fail(code::kBadFile, index, ": shard for tensor ", shown(m.key), " is not a string");
    check_shard_name(index, m.value.str());
  }
  for (const auto& m : wm->members()) {
    const std::string& shard = m.value.str();
    auto it = shards.find(shard);
    if (it == shards.end()) {
      std::shared_ptr<SafetensorsFile> f;
      try {
        f = SafetensorsFile::open(join_path(dir, shard), copy);
      } catch (const Error& e) {
        throw Error(e.code(), index + ": shard " + shown(shard) + ": " + e.what());
      }
      it = shards.emplace(shard, f).first;
      c.files_.push_back(f);
    }
    const TensorEntry* t = it->second->find(m.key);
    if (!t)
      fail(code::kBadFile, index, ": tensor ", shown(m.key), " is listed in shard ", shown(shard),
           " but ", it->second->path(), " does not contain it");
    c.by_name_[m.key] = t;
  }
  return c;
}

const TensorEntry* Checkpoint::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

const TensorEntry& Checkpoint::get(const std::string& name) const {
  const TensorEntry* e = find(name);
  if (!e) fail(code::kBadFile, dir_, ": checkpoint has no tensor named ", shown(name));
  return *e;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(by_name_.size());
  for (const auto& kv : by_name_) out.push_back(kv.first);
  return out;
}

// ---- writing -------------------------------------------------------------------

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::set<std::string> seen;
  std::vector<size_t> nbytes(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    auto bad = [&](const auto&... what) {
      fail(code::kInvalidArgument, path, ": tensor ", shown(t.name), ": ", what...);
    };
    if (t.name.empty()) bad("empty tensor name");
    if (t.name == "__metadata__") bad("reserved name");
    if (!json::valid_utf8(t.name)) fail(code::kInvalidArgument, path, ": tensor name is not valid UTF-8");
    if (!seen.insert(t.name).second) bad("duplicate tensor name");
    uint64_t numel = 1;
    for (int64_t d : t.shape) {
      if (d < 0) bad("negative dimension ", d);
      if (__builtin_mul_overflow(numel, uint64_t(d), &numel)) bad("shape element count overflows");
    }
    uint64_t nb = 0;
    if (__builtin_mul_overflow(numel, uint64_t(dtype_size(t.dtype)), &nb) || nb > (uint64_t(1) << 62))
      bad("byte count overflows");
    if (nb && !t.data) bad("no data");
    nbytes[i] = size_t(nb);
  }
  for (const auto& kv : metadata)
    if (!json::valid_utf8(kv.first) || !json::valid_utf8(kv.second))
      fail(code::kInvalidArgument, path, ": metadata is not valid UTF-8");

  // Larger elements first keeps every tensor naturally aligned (offsets are
  // multiples of 8 until the first 4-byte tensor, and so on).
  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return dtype_size(tensors[a].dtype) > dtype_size(tensors[b].dtype);
  });

  json::Value h = json::Value::object();
  if (!metadata.empty()) {
    json::Value md = json::Value::object();
    for (const auto& kv : metadata) md.set(kv.first, kv.second);
    h.set("__metadata__", std::move(md));
  }
  uint64_t at = 0;
  for (size_t i : order) {
    const auto& t = tensors[i];
    json::Value e = json::Value::object();
    e.set("dtype", dtype_name(t.dtype));
    json::Value shape = json::Value::array();
    for (int64_t d : t.shape) shape.push(json::Value(d));
    e.set("shape", std::move(shape));
    json::Value off = json::Value::array();
    off.push(json::Value(int64_t(at)));
    off.push(json::Value(int64_t(at + nbytes[i])));
    e.set("data_offsets", std::move(off));
    h.set(t.name, std::move(e));
    at += nbytes[i];
  }
  std::string header = json::dump(h);
  header.append((8 - header.size() % 8) % 8, ' ');  // pad so the data section starts 8-aligned
  if (header.size() > kMaxHeaderBytes)
    fail(code::kInvalidArgument, path, ": header would be ", header.size(), " bytes, above the readable limit");

  AtomicFile f(path);
  unsigned char len[8];
  put_le64(len, header.size());
  f.write(len, 8);
  f.write(header.data(), header.size());
  for (size_t i : order)
    if (nbytes[i]) f.write(tensors[i].data, nbytes[i]);
  f.commit();
}

}  // namespace bl
