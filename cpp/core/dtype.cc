// Bulk storage-dtype conversion used when loading weights.
#include "core/dtype.h"
#include "core/error.h"
#include "core/threads.h"

namespace bl {

void convert_to_f32(float* dst, const void* src, DType t, size_t n) {
  if (n == 0) return;
  switch (t) {
    case DType::F32:
      std::memcpy(dst, src, n * 4);
      return;
    case DType::BF16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      parallel_for(n, 1 << 16, [&](size_t b, size_t e) {
        for (size_t i = b; i < e; ++i) dst[i] = bf16_to_f32(s[i]);
      });
      return;
    }
    case DType::F16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      parallel_for(n, 1 << 16, [&](size_t b, size_t e) {
        for (size_t i = b; i < e; ++i) dst[i] = f16_to_f32(s[i]);
      });
      return;
    }
    default:
      fail(code::kUnsupported, "cannot convert dtype ", dtype_name(t), " to F32");
  }
}

}  // namespace bl
