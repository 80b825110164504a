// The JS `Model` object's native side, as other bindings (Laplace) see it:
// obtain the handle behind a JS Model, then hold a ModelLease for the whole of
// a native operation (acquired on the JS thread, moved into the async work,
// released when the work's promise has settled). While a lease is held every
// other call on that model fails with BUSY, so no two threads ever touch one
// LlamaModel; after dispose() calls fail with DISPOSED.
//
//   auto lease = std::make_shared<ModelLease>(model_handle(info[0]));
//   return run_async(env, "kfac", [lease, ...] { lease->model().forward_mc(...); ... },
//                    [lease](Napi::Env e) { lease->report_memory(e); return ...; });
#pragma once
#include <napi.h>

#include <atomic>
#include <memory>
#include <string>

#include "model/llama.h"

namespace bl::napi {

struct ModelHandle {
  std::unique_ptr<LlamaModel> model;
  std::string backend;
  std::atomic<bool> busy{false};
  bool disposed = false;       // JS thread only
  int64_t reported_bytes = 0;  // native memory reported to V8 so far (JS thread only)
};

// The handle of a JS Model object (INVALID_ARGUMENT when `v` is not a Model,
// DISPOSED when it was disposed).
std::shared_ptr<ModelHandle> model_handle(const Napi::Value& v);

// Raw accessor for callers that manage exclusivity themselves (prefer ModelLease).
LlamaModel* unwrap_model(const Napi::Value& v);

class ModelLease {
 public:
  // Throws BUSY when another operation holds the model.
  explicit ModelLease(std::shared_ptr<ModelHandle> h);
  ~ModelLease();
  ModelLease(const ModelLease&) = delete;
  ModelLease& operator=(const ModelLease&) = delete;
  LlamaModel& model() const { return *h_->model; }
  ModelHandle& handle() const { return *h_; }
  // JS thread only: tell V8 how much native memory the model holds now.
  void report_memory(Napi::Env env) const;

 private:
  std::shared_ptr<ModelHandle> h_;
};

}  // namespace bl::napi
