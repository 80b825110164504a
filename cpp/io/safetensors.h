// Safetensors: memory-mapped, validated reading and atomic writing.
// Format: u64 little-endian header length N, N bytes of JSON header
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {...}},
// then the data section. Validation: header length within file and below a
// size limit, JSON well-formed, known dtypes, shape product * dtype size ==
// byte count, offsets within the data section, no overlaps, names unique.
// Guarantees to callers: TensorEntry::data is aligned to its element size
// (tensors of files that are not are copied into an aligned read-only buffer)
// and stays valid while the SafetensorsFile (or the Checkpoint holding it)
// lives; tensors() is in file (offset) order. A file truncated by another
// process while mapped can still raise SIGBUS: weights are expected to be
// immutable while loaded (our writers replace files by rename, which is safe).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace bl {

struct TensorEntry {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // points into the mapping
  size_t nbytes = 0;
  int64_t numel() const {
    int64_t n = 1;
    for (auto s : shape) n *= s;
    return n;
  }
};

class SafetensorsFile {
 public:
  // Maps and validates; throws bl::Error (IO_ERROR / BAD_FILE naming the path).
  // copy = false: a read-only mapping of the file (zero-copy; pages shared with
  // other processes). Overwriting or truncating the file in place while it is
  // mapped makes later reads fault (SIGBUS): the OS kills the process.
  // copy = true: the file is read into private anonymous memory, so the file
  // may change afterwards.
  static std::shared_ptr<SafetensorsFile> open(const std::string& path, bool copy = false);
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  const std::vector<TensorEntry>& tensors() const { return tensors_; }
  const TensorEntry* find(const std::string& name) const;  // nullptr if absent
  const TensorEntry& get(const std::string& name) const;   // throws BAD_FILE if absent
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsFile() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::vector<TensorEntry> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// A checkpoint directory: `model.safetensors`, or shards listed in
// `model.safetensors.index.json` (shard names validated: plain file names
// inside the directory, no path traversal).
class Checkpoint {
 public:
  static Checkpoint open_dir(const std::string& dir, bool copy = false);  // copy: as SafetensorsFile::open
  const TensorEntry* find(const std::string& name) const;
  const TensorEntry& get(const std::string& name) const;
  std::vector<std::string> names() const;  // sorted
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorEntry*> by_name_;
};

struct TensorToWrite {
  std::string name;
  DType dtype = DType::F32;  // dtype of `data`
  std::vector<int64_t> shape;
  const void* data = nullptr;
};

// Writes atomically (temp file in the same directory, fsync, rename).
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Atomic whole-file text write (temp, fsync, rename).
void write_file_atomic(const std::string& path, const std::string& contents);
std::string read_text_file(const std::string& path, size_t max_bytes);

}  // namespace bl
