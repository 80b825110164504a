// Placeholder registration for the laplace bindings (filled in by its module's work).
#include "napi/modules.h"

namespace bl::napi {
void init_laplace(Napi::Env, Napi::Object) {}
}  // namespace bl::napi
