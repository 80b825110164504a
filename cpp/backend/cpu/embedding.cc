// Token embedding lookup and its gradient. An embedding is a row gather from
// the [V x d] table by token id, so both directions reuse rows.cc; ids are
// validated by the caller (0 <= id < V).
#include "backend/cpu/cpu_ops.h"

namespace bl::cpu {

void embedding_fwd(float* out, const int32_t* ids, const float* table, int N, int d) {
  gather_rows(out, table, ids, N, d);
}

void embedding_bwd(float* dtable, const int32_t* ids, const float* dout, int N, int d) {
  scatter_add_rows(dtable, dout, ids, N, d);
}

}  // namespace bl::cpu
