// Save/load of K-FAC factors, counts, priors and identity (see persist.h).
#include "laplace/persist.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <system_error>

#include "core/error.h"
#include "io/json.h"
#include "io/safetensors.h"

namespace bl::laplace {

namespace {

constexpr const char* kFormat = "bayeslora.laplace";
// Version 2 stores a dense factor as its lower triangle (F64 [d (d + 1) / 2],
// row by row: S[0][0], S[1][0], S[1][1], ...), half of version 1's full
// F64 [d, d]; both load.
constexpr const char* kVersion = "2";
constexpr const char* kVersion1 = "1";

struct Fnv {
  uint64_t h = 0xcbf29ce484222325ull;
  void bytes(const void* p, size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i) {
      h ^= b[i];
      h *= 0x100000001b3ull;
    }
  }
  void i64(int64_t v) {
    unsigned char le[8];
    for (int i = 0; i < 8; ++i) le[i] = static_cast<unsigned char>(uint64_t(v) >> (8 * i));
    bytes(le, 8);
  }
};

std::string factor_name(int l, char side) { return "l" + std::to_string(l) + "." + side; }

}  // namespace

std::string adapter_identity(const std::vector<AdapterTensorRef>& tensors) {
  Fnv f;
  f.i64(int64_t(tensors.size()));
  for (const auto& t : tensors) {
    f.i64(int64_t(t.name.size()));
    f.bytes(t.name.data(), t.name.size());
    f.i64(int64_t(t.shape.size()));
    int64_t n = 1;
    for (int64_t d : t.shape) {
      f.i64(d);
      n *= d;
    }
    // Values as little-endian float32 bit patterns (hosts here are little endian).
    if (n > 0) f.bytes(t.data, size_t(n) * sizeof(float));
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(f.h));
  return buf;
}

void save_laplace(const std::string& path, KfacAccumulator& acc, const std::vector<double>& priors,
                  const std::string& fisher, const std::string& adapter_id) {
  const int L = acc.num_layers();
  BL_CHECK(priors.size() == size_t(L), code::kShapeMismatch, "save: ", priors.size(), " priors for ", L, " layers");
  acc.flush();
  const KfacOptions& o = acc.options();
  std::vector<std::vector<double>> store;  // keeps low-rank copies alive until written
  store.reserve(size_t(2 * L));  // no reallocation: tensors point into it
  std::vector<TensorToWrite> ts;
  std::vector<double> counts(static_cast<size_t>(L));
  json::Value layers = json::Value::array();
  for (int l = 0; l < L; ++l) {
    KfacLayer& K = acc.layer_mut(l);
    counts[size_t(l)] = K.Z;
    json::Value e = json::Value::object();
    e.set("name", K.spec.name);
    e.set("dIn", K.spec.d_in);
    e.set("dOut", K.spec.d_out);
    e.set("id", K.spec.id);
    layers.push(std::move(e));
    for (char side : {'A', 'G'}) {
      KfacFactor& F = side == 'A' ? K.A : K.G;
      TensorToWrite t;
      t.name = factor_name(l, side);
      t.dtype = DType::F64;
      if (F.lowrank()) {
        const int k = F.lr().rank();
        store.emplace_back(size_t(F.d()) * size_t(k));
        F.lr().copy_L(store.back().data());
        t.shape = {F.d(), k};
        t.data = store.back().data();
      } else if (F.stacked()) {
        // Held as rows (row_stack.h): the rows (F32 [n, d]) and their batch
        // table (F64 [batches, 2]: first row, scale), so a load gives back the
        // same sum and the same eigen form. n <= d / 2 < d tells it from [d, d].
        const RowStack& rs = F.rows();
        t.dtype = DType::F32;
        t.shape = {rs.rows(), F.d()};
        t.data = rs.data();
        ts.push_back(std::move(t));
        const size_t nb = rs.batch_starts().size();
        store.emplace_back(2 * nb);
        for (size_t b = 0; b < nb; ++b) {
          store.back()[2 * b] = double(rs.batch_starts()[b]);
          store.back()[2 * b + 1] = rs.batch_scales()[b];
        }
        ts.push_back({factor_name(l, side) + ".batches", DType::F64, {int64_t(nb), 2}, store.back().data()});
        continue;
      } else {
        const size_t d = size_t(F.d());
        const auto& S = F.dense();
        store.emplace_back();
        store.back().reserve(d * (d + 1) / 2);
        for (size_t i = 0; i < d; ++i)
          for (size_t j = 0; j <= i; ++j) store.back().push_back(S[i * d + j]);
        t.shape = {int64_t(d * (d + 1) / 2)};
        t.data = store.back().data();
      }
      ts.push_back(std::move(t));
    }
  }
  ts.push_back({"counts", DType::F64, {L}, counts.data()});
  ts.push_back({"priors", DType::F64, {L}, priors.data()});
  std::map<std::string, std::string> md = {
      {"format", kFormat},
      {"version", kVersion},
      {"fisher", fisher},
      {"tokens", token_mode_name(o.tokens)},
      {"threshold", std::to_string(o.threshold)},
      {"n_kfac", std::to_string(o.n_kfac)},
      {"chunk", std::to_string(o.chunk)},
      {"adapter", adapter_id},
      {"layers", json::dump(layers)},
  };
  // Like the adapter and model savers, create the folder the file goes in.
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    BL_CHECK(!ec, code::kIo, path, ": cannot create directory '", parent.string(), "': ", ec.message());
  }
  write_safetensors(path, ts, md);
}

LoadedLaplace load_laplace(const std::string& path, const std::string& expected_adapter_id) {
  auto f = SafetensorsFile::open(path);
  const auto& md = f->metadata();
  auto meta = [&](const char* key) -> const std::string& {
    auto it = md.find(key);
    if (it == md.end()) fail(code::kBadFile, path, ": not a bayeslora posterior (metadata '", key, "' missing)");
    return it->second;
  };
  if (meta("format") != kFormat) fail(code::kBadFile, path, ": not a bayeslora posterior (format '", meta("format"), "')");
  const bool v1 = meta("version") == kVersion1;
  if (meta("version") != kVersion && !v1)
    fail(code::kBadFile, path, ": posterior format version ", meta("version"), " is not supported");
  LoadedLaplace out;
  out.adapter_id = meta("adapter");
  out.fisher = meta("fisher");
  if (!expected_adapter_id.empty() && out.adapter_id != expected_adapter_id)
    fail(code::kInvalidArgument, path, ": adapter mismatch: the posterior was fitted for adapter ", out.adapter_id,
         ", the given adapter is ", expected_adapter_id);

  auto int_meta = [&](const char* key, int lo, int hi) {
    const std::string& s = meta(key);
    char* end = nullptr;
    long v = std::strtol(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || v < lo || v > hi) fail(code::kBadFile, path, ": bad metadata '", key, "' = '", s, "'");
    return int(v);
  };
  KfacOptions o;
  try {
    o.tokens = parse_token_mode(meta("tokens"));
  } catch (const Error&) {
    fail(code::kBadFile, path, ": bad metadata 'tokens'");
  }
  o.threshold = int_meta("threshold", 1, 1 << 20);
  o.n_kfac = int_meta("n_kfac", 1, 4096);
  o.chunk = int_meta("chunk", 0, 65536);

  json::Value layers = json::parse(meta("layers"), path + " (metadata 'layers')");
  if (!layers.is_array() || layers.items().empty()) fail(code::kBadFile, path, ": metadata 'layers' must be a non-empty array");
  std::vector<KfacLayerSpec> specs;
  for (const auto& e : layers.items()) {
    const json::Value *n = e.find("name"), *di = e.find("dIn"), *dd = e.find("dOut");
    if (!e.is_object() || !n || !n->is_string() || !di || !di->is_integer() || !dd || !dd->is_integer())
      fail(code::kBadFile, path, ": metadata 'layers' entries need name, dIn, dOut");
    const json::Value* id = e.find("id");
    if (id && (!id->is_integer() || id->integer() < 0 || id->integer() >= (1 << 24)))
      fail(code::kBadFile, path, ": metadata 'layers' id must be an integer in [0, 2^24)");
    specs.push_back({n->str(), int(di->integer()), int(dd->integer()), id ? int(id->integer()) : -1});
    if (di->integer() < 1 || di->integer() > (1 << 20) || dd->integer() < 1 || dd->integer() > (1 << 20))
      fail(code::kBadFile, path, ": layer '", n->str(), "' has bad dims");
  }
  const int L = int(specs.size());
  std::shared_ptr<KfacAccumulator> acc;
  try {
    acc = std::make_shared<KfacAccumulator>(specs, o);
  } catch (const Error& e) {
    fail(code::kBadFile, path, ": ", e.what());
  }

  auto read_f64 = [&](const std::string& name, const std::vector<int64_t>& shape) {
    const TensorEntry& t = f->get(name);
    if (t.dtype != DType::F64 || t.shape != shape) {
      std::string want;
      for (auto d : shape) want += (want.empty() ? "" : ",") + std::to_string(d);
      fail(code::kBadFile, path, ": tensor '", name, "' must be F64 [", want, "]");
    }
    std::vector<double> v(size_t(t.numel()));
    if (!v.empty()) std::memcpy(v.data(), t.data, v.size() * sizeof(double));
    for (double x : v)
      if (!std::isfinite(x)) fail(code::kBadFile, path, ": tensor '", name, "' has non-finite values");
    return v;
  };
  std::vector<double> counts = read_f64("counts", {L});
  std::vector<double> priors = read_f64("priors", {L});
  for (int l = 0; l < L; ++l) {
    if (counts[size_t(l)] < 0) fail(code::kBadFile, path, ": negative count for layer ", l);
    if (!(priors[size_t(l)] > 0)) fail(code::kBadFile, path, ": prior precision of layer ", l, " must be > 0");
    KfacLayer& K = acc->layer_mut(l);
    K.Z = counts[size_t(l)];
    for (char side : {'A', 'G'}) {
      KfacFactor& F = side == 'A' ? K.A : K.G;
      const std::string name = factor_name(l, side);
      if (F.lowrank()) {
        const TensorEntry& t = f->get(name);
        if (t.shape.size() != 2 || t.shape[0] != F.d() || t.shape[1] < 0 || t.shape[1] > o.n_kfac)
          fail(code::kBadFile, path, ": tensor '", name, "' must be F64 [", F.d(), ", k <= ", o.n_kfac, "]");
        auto v = read_f64(name, t.shape);
        F.lr().set_L(v.data(), int(t.shape[1]));
      } else if (f->get(name).dtype == DType::F32) {  // a side saved as rows (see save_laplace)
        const TensorEntry& t = f->get(name);
        const int half = F.stacked() ? F.rows().max_rows() : 0;
        if (t.shape.size() != 2 || t.shape[1] != F.d() || t.shape[0] < 0 || t.shape[0] > half)
          fail(code::kBadFile, path, ": tensor '", name, "' must be F32 [n <= ", half, ", ", F.d(), "] or F64 [",
               F.d(), ", ", F.d(), "]");
        const int n = int(t.shape[0]);
        std::vector<float> X(size_t(t.numel()));
        if (!X.empty()) std::memcpy(X.data(), t.data, X.size() * sizeof(float));
        for (float x : X)
          if (!std::isfinite(x)) fail(code::kBadFile, path, ": tensor '", name, "' has non-finite values");
        const TensorEntry& bt = f->get(name + ".batches");
        if (bt.shape.size() != 2 || bt.shape[1] != 2 || bt.shape[0] < 0 || bt.shape[0] > n)
          fail(code::kBadFile, path, ": tensor '", name, ".batches' must be F64 [batches <= ", n, ", 2]");
        auto bv = read_f64(name + ".batches", bt.shape);
        std::vector<int> starts;
        std::vector<double> scales;
        for (size_t b = 0; b < bv.size() / 2; ++b) {
          if (bv[2 * b] < 0 || bv[2 * b] >= n || bv[2 * b] != std::floor(bv[2 * b]))
            fail(code::kBadFile, path, ": tensor '", name, ".batches' has a bad first row");
          starts.push_back(int(bv[2 * b]));
          scales.push_back(bv[2 * b + 1]);
        }
        try {
          F.set_rows(X.data(), n, starts, scales);
        } catch (const Error& e) {
          fail(code::kBadFile, path, ": tensor '", name, "': ", e.what());
        }
      } else {
        // Version 2: the lower triangle; version 1: the full matrix, whose
        // lower triangle is taken (the eigendecomposition only ever read it).
        const size_t d = size_t(F.d());
        auto v = v1 ? read_f64(name, {F.d(), F.d()}) : read_f64(name, {int64_t(d * (d + 1) / 2)});
        auto& S = F.dense_mut();
        size_t at = 0;
        for (size_t i = 0; i < d; ++i)
          for (size_t j = 0; j <= i; ++j) {
            const double x = v1 ? v[i * d + j] : v[at++];
            S[i * d + j] = x;
            S[j * d + i] = x;
          }
      }
    }
  }
  out.post = Posterior::from_kfac(*acc, 1.0);
  out.post->set_prior(priors);
  out.post->fisher = out.fisher;
  out.acc = std::move(acc);
  return out;
}

}  // namespace bl::laplace
