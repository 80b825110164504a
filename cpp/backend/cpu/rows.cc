// Row gather and scatter-add (the generic forms of embedding lookup and its
// gradient). Index ranges are validated by the caller.
#include <cstring>
#include <algorithm>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/reduce.h"
#include "core/threads.h"

namespace bl::cpu {

void gather_rows(float* out, const float* x, const int32_t* idx, int n, int d) {
  parallel_for(size_t(n), row_grain(d), [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i)
      std::memcpy(out + i * size_t(d), x + size_t(idx[i]) * size_t(d), size_t(d) * sizeof(float));
  });
}

// Several output rows may receive from the same destination row (repeated
// indices), so threads split the row *width* rather than the rows: each column
// block is owned by one thread, which keeps the result race-free and the
// summation order (increasing i) identical to the serial loop.
void scatter_add_rows(float* dx, const float* dout, const int32_t* idx, int n, int d) {
  if (n <= 0 || d <= 0) return;
  size_t grain = size_t(1) << 14;
  grain = std::max<size_t>(64, grain / size_t(n));
  parallel_for(size_t(d), grain, [&](size_t c0, size_t c1) {
    for (int i = 0; i < n; ++i) {
      float* dst = dx + size_t(idx[i]) * size_t(d);
      const float* src = dout + size_t(i) * size_t(d);
      for (size_t c = c0; c < c1; ++c) dst[c] += src[c];
    }
  });
}

}  // namespace bl::cpu
