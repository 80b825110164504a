// Placeholder registration for the model bindings (filled in by its module's work).
#include "napi/modules.h"

namespace bl::napi {
void init_model(Napi::Env, Napi::Object) {}
}  // namespace bl::napi
