// A small mutation-fuzzing driver for machines without libFuzzer (clang):
// links with one target's LLVMFuzzerTestOneInput and accepts the subset of
// libFuzzer's command line that scripts/fuzz.mjs uses:
//   standalone CORPUS_DIR... -max_total_time=S -timeout=S -artifact_prefix=P -seed=N [-dict=FILE]
// or, with files instead of directories, replays each file once (regressions).
// Mutations: bit flips, byte sets, interesting integers (0, 0xff.., lengths),
// insert/erase/duplicate ranges, splices of two corpus inputs, JSON-ish token
// inserts, and (with -dict, libFuzzer's dictionary format) dictionary tokens
// inserted or written over the input. No coverage feedback: weaker than
// libFuzzer, but the same contract and the same crash/hang accounting
// (a crash is a sanitizer abort or signal; the input is saved first).
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {
std::string g_prefix = "./";
const std::string* g_current = nullptr;

void save(const char* kind) {
  if (!g_current) return;
  std::string p = g_prefix + kind + "-standalone";
  if (FILE* f = std::fopen(p.c_str(), "wb")) {
    std::fwrite(g_current->data(), 1, g_current->size(), f);
    std::fclose(f);
    std::fprintf(stderr, "standalone: %s, input saved to %s\n", kind, p.c_str());
  }
}
void on_signal(int sig) {
  save(sig == SIGALRM ? "timeout" : "crash");
  _exit(sig == SIGALRM ? 70 : 71);
}
std::string read_file(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}
// libFuzzer's dictionary format: one token per line, `name="value"` or
// `"value"`, with \\, \" and \xNN escapes; `#` starts a comment.
std::vector<std::string> read_dict(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    const size_t q = line.find('"');
    if (q == std::string::npos || line.find_first_not_of(" \t") == line.find('#')) continue;
    const size_t end = line.rfind('"');
    if (end <= q) continue;
    std::string tok;
    for (size_t i = q + 1; i < end; ++i) {
      if (line[i] != '\\' || i + 1 >= end) {
        tok += line[i];
      } else if (line[i + 1] == 'x' && i + 3 < end) {
        tok += char(std::strtol(line.substr(i + 2, 2).c_str(), nullptr, 16));
        i += 3;
      } else {
        tok += line[++i];
      }
    }
    if (!tok.empty()) out.push_back(tok);
  }
  return out;
}
bool is_dir(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
}  // namespace

extern "C" void __sanitizer_set_death_callback(void (*)(void));

int main(int argc, char** argv) {
  double max_time = 10;
  unsigned timeout = 5;
  uint64_t seed = 1;
  std::vector<std::string> inputs, dict;
  bool replay = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("-max_total_time=", 0) == 0) max_time = std::atof(a.c_str() + 16);
    else if (a.rfind("-timeout=", 0) == 0) timeout = unsigned(std::atoi(a.c_str() + 9));
    else if (a.rfind("-artifact_prefix=", 0) == 0) g_prefix = a.substr(17);
    else if (a.rfind("-seed=", 0) == 0) seed = std::strtoull(a.c_str() + 6, nullptr, 10);
    else if (a.rfind("-dict=", 0) == 0) dict = read_dict(a.substr(6));
    else if (a[0] == '-') continue;  // other libFuzzer flags: ignored
    else if (is_dir(a)) {
      if (DIR* d = opendir(a.c_str())) {
        while (dirent* e = readdir(d))
          if (e->d_name[0] != '.') inputs.push_back(read_file(a + "/" + e->d_name));
        closedir(d);
      }
    } else {
      replay = true;
      inputs.push_back(read_file(a));
    }
  }
  __sanitizer_set_death_callback([] { save("crash"); });
  signal(SIGALRM, on_signal);
  signal(SIGSEGV, on_signal);
  signal(SIGBUS, on_signal);
  signal(SIGFPE, on_signal);
  signal(SIGILL, on_signal);
  auto run = [&](const std::string& in) {
    g_current = &in;
    alarm(timeout);
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(in.data()), in.size());
    alarm(0);
  };
  uint64_t execs = 0;
  if (inputs.empty()) inputs.push_back("");
  for (const auto& in : inputs) run(in), ++execs;
  if (replay) {
    std::printf("stat::number_of_executed_units: %llu\n", (unsigned long long)execs);
    return 0;
  }
  std::mt19937_64 rng(seed);
  auto rnd = [&](uint64_t n) { return n ? rng() % n : 0; };
  static const uint64_t kInteresting[] = {0, 1, 7, 8, 0x7f, 0x80, 0xff, 0x7fff, 0xffff, 0x7fffffff, 0xffffffff,
                                          0x7fffffffffffffffull, 0xffffffffffffffffull, 1ull << 32, 1ull << 40};
  const auto t0 = std::chrono::steady_clock::now();
  std::string cur;
  while (true) {
    if ((execs & 255) == 0) {
      double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (el >= max_time) break;
    }
    cur = inputs[rnd(inputs.size())];
    const int n_mut = 1 + int(rnd(6));
    for (int k = 0; k < n_mut; ++k) {
      const size_t sz = cur.size();
      switch (rnd(dict.empty() ? 9 : 10)) {
        case 0:
          if (sz) cur[rnd(sz)] ^= char(1u << rnd(8));
          break;
        case 1:
          if (sz) cur[rnd(sz)] = char(rng());
          break;
        case 2: {  // interesting little-endian integer of 1, 2, 4 or 8 bytes
          const uint64_t v = kInteresting[rnd(sizeof kInteresting / sizeof *kInteresting)];
          const size_t w = size_t(1) << rnd(4);
          if (sz >= w) {
            const size_t at = rnd(sz - w + 1);
            for (size_t b = 0; b < w; ++b) cur[at + b] = char((v >> (8 * b)) & 0xff);
          }
          break;
        }
        case 3:
          if (sz) cur.erase(rnd(sz), 1 + rnd(std::min<size_t>(sz, 16)));
          break;
        case 4: {
          const std::string& o = inputs[rnd(inputs.size())];
          if (!o.empty()) {
            const size_t b = rnd(o.size()), len = 1 + rnd(std::min<size_t>(o.size() - b, 64));
            cur.insert(rnd(sz + 1), o.substr(b, len));
          }
          break;
        }
        case 5:
          if (sz) {  // duplicate a range
            const size_t b = rnd(sz), len = 1 + rnd(std::min<size_t>(sz - b, 32));
            cur.insert(rnd(sz + 1), cur.substr(b, len));
          }
          break;
        case 6: {  // splice: head of this, tail of another
          const std::string& o = inputs[rnd(inputs.size())];
          cur = cur.substr(0, rnd(sz + 1)) + o.substr(rnd(o.size() + 1));
          break;
        }
        case 7: {  // JSON-ish number edits: digits, signs, exponents, huge values
          static const char* toks[] = {"-", "1e308", "1e999", "-0", "9999999999999999999", "0.5", "\"", "[", "]",
                                       "{", "}", ",", ":", "null", "true", "\\u0000", "\\ud800", "..", "/"};
          if (sz) cur.insert(rnd(sz + 1), toks[rnd(sizeof toks / sizeof *toks)]);
          break;
        }
        case 8:
          if (sz > 1) cur.resize(rnd(sz));  // truncate
          break;
        case 9: {  // a dictionary token, inserted or written over the input
          const std::string& t = dict[rnd(dict.size())];
          const size_t at = rnd(sz + 1);
          if (rnd(2) || at + t.size() > sz) cur.insert(at, t);
          else cur.replace(at, t.size(), t);
          break;
        }
      }
    }
    run(cur);
    ++execs;
  }
  std::printf("stat::number_of_executed_units: %llu\n", (unsigned long long)execs);
  return 0;
}
