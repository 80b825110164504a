// The `CancelToken` binding: the native side of an AbortSignal. JS creates a
// token per call, passes it as `options.cancel` and calls token.cancel() when
// the signal aborts; the worker runs under a CancelScope of the token's flag
// (core/cancel.h) and rejects with ABORTED at its next safe point.
#pragma once
#include <napi.h>

#include <memory>

#include "core/cancel.h"

namespace bl::napi {

// opts.cancel as a flag (nullptr when absent); INVALID_ARGUMENT when it is not a CancelToken.
std::shared_ptr<CancelFlag> cancel_arg(const Napi::Object& opts);

void init_cancel(Napi::Env env, Napi::Object exports);

}  // namespace bl::napi
