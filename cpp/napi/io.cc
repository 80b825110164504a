// Placeholder registration for the io bindings (filled in by its module's work).
#include "napi/modules.h"

namespace bl::napi {
void init_io(Napi::Env, Napi::Object) {}
}  // namespace bl::napi
