// Bounded reads and atomic writes (see files.h). POSIX only.
#include "io/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace bl {

static std::string os_error(int err) { return std::strerror(err); }

std::string join_path(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  if (dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

std::string dir_name(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

bool path_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

bool is_directory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string read_text_file(const std::string& path, size_t max_bytes) {
  if (path.find('\0') != std::string::npos) fail(code::kInvalidArgument, "path contains a NUL byte");
  // O_NONBLOCK: opening a FIFO or device must not hang; non-regular files are rejected below.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) fail(code::kIo, path, ": cannot open: ", os_error(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0) fail(code::kIo, path, ": cannot stat: ", os_error(errno));
  if (!S_ISREG(st.st_mode)) fail(code::kIo, path, ": not a regular file");
  if (uint64_t(st.st_size) > max_bytes)
    fail(code::kBadFile, path, ": file is ", uint64_t(st.st_size), " bytes, larger than the limit of ", max_bytes,
         " bytes");
  std::string out;
  out.resize(size_t(st.st_size));
  size_t got = 0;
  // Read until EOF: the file may have changed size since fstat, so never trust
  // it beyond the limit.
  for (;;) {
    if (got == out.size()) {
      if (out.size() > max_bytes) break;
      out.resize(std::min(max_bytes + 1, out.size() + 4096));
      if (got == out.size()) break;
    }
    ssize_t r = ::read(fd, &out[got], out.size() - got);
    if (r < 0) {
      if (errno == EINTR) continue;
      fail(code::kIo, path, ": read failed: ", os_error(errno));
    }
    if (r == 0) break;
    got += size_t(r);
  }
  if (got > max_bytes) fail(code::kBadFile, path, ": file is larger than the limit of ", max_bytes, " bytes");
  out.resize(got);
  return out;
}

AtomicFile::AtomicFile(const std::string& path) : path_(path) {
  if (path.empty()) fail(code::kInvalidArgument, "output path is empty");
  if (path.find('\0') != std::string::npos) fail(code::kInvalidArgument, "path contains a NUL byte");
  if (is_directory(path)) fail(code::kIo, path, ": is a directory");
  static std::atomic<unsigned> counter{0};
  tmp_ = path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0) fail(code::kIo, path, ": cannot create temporary file ", tmp_, ": ", os_error(errno));
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!done_) ::unlink(tmp_.c_str());
}

void AtomicFile::write(const void* data, size_t n) {
  if (done_ || fd_ < 0) fail(code::kInternal, path_, ": write after commit");
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd_, p, std::min<size_t>(n, size_t(1) << 30));
    if (w < 0) {
      if (errno == EINTR) continue;
      fail(code::kIo, path_, ": write failed: ", os_error(errno));
    }
    p += w;
    n -= size_t(w);
  }
}

void AtomicFile::commit() {
  if (done_ || fd_ < 0) fail(code::kInternal, path_, ": commit twice");
  if (::fsync(fd_) != 0) fail(code::kIo, path_, ": fsync failed: ", os_error(errno));
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail(code::kIo, path_, ": close failed: ", os_error(errno));
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) fail(code::kIo, path_, ": rename failed: ", os_error(errno));
  done_ = true;
  // Persist the directory entry too; best effort (some file systems refuse).
  int dfd = ::open(dir_name(path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
}

void write_file_atomic(const std::string& path, const std::string& contents) {
  AtomicFile f(path);
  f.write(contents.data(), contents.size());
  f.commit();
}

}  // namespace bl
