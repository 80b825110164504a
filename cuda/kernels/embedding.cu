// See embedding.cuh. The lookup is a row gather and its gradient a row
// scatter-add; both reuse the kernels of rows.cu rather than duplicating them.
#include "kernels/embedding.cuh"
#include "kernels/rows.cuh"

namespace bl::cuda {

void embedding_fwd(cudaStream_t s, float* out, const int32_t* ids, const float* table, int N, int d) {
  gather_rows(s, out, table, ids, N, d);
}

void embedding_bwd(cudaStream_t s, float* dtable, const int32_t* ids, const float* dout, int N, int d) {
  scatter_add_rows(s, dtable, dout, ids, N, d);
}

}  // namespace bl::cuda
