// Small file-system helpers shared by the io readers and writers: bounded text
// reads, atomic writes (temp file in the same directory, fsync, rename, so a
// crash never leaves a half-written file under the final name), path joins.
// Errors are bl::Error: IO_ERROR when the OS call fails, BAD_FILE when the
// content is unacceptable (e.g. too large); messages name the path.
#pragma once
#include <cstddef>
#include <string>

namespace bl {

// Whole-file reads and writes (also declared in io/safetensors.h).
void write_file_atomic(const std::string& path, const std::string& contents);
std::string read_text_file(const std::string& path, size_t max_bytes);

// Streaming atomic writer: write() pieces, then commit(). Destroying it
// without commit() removes the temp file and leaves `path` untouched.
class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  void write(const void* data, size_t n);
  void commit();  // fsync, close, rename over `path`, fsync the directory

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  bool done_ = false;
};

// `dir` + "/" + `name` (no separator doubling).
std::string join_path(const std::string& dir, const std::string& name);
// Directory part of `path` ("." when it has none).
std::string dir_name(const std::string& path);
// stat() helpers: false on any error.
bool path_exists(const std::string& path);
bool is_directory(const std::string& path);

}  // namespace bl
