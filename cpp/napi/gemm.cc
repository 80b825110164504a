// Placeholder registration for the gemm bindings (filled in by its module's work).
#include "napi/modules.h"

namespace bl::napi {
void init_gemm(Napi::Env, Napi::Object) {}
}  // namespace bl::napi
