// Placeholder registration for the ops bindings (filled in by its module's work).
#include "napi/modules.h"

namespace bl::napi {
void init_ops(Napi::Env, Napi::Object) {}
}  // namespace bl::napi
