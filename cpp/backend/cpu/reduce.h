// Inner-loop reductions shared by the CPU reference kernels (dot products and
// sums of squares). Written with several independent partial sums so that the
// compiler can vectorise them without -ffast-math (a single running float sum
// is a serial dependency chain it may not reorder), and so that rounding error
// grows like sqrt(n / lanes) rather than n for long rows.
#pragma once
#include <cstddef>
#include <cstdint>

namespace bl::cpu {

constexpr int kLanes = 16;

inline float dot(const float* a, const float* b, int64_t n) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += a[i + j] * b[i + j];
  float s = 0;
  for (; i < n; ++i) s += a[i] * b[i];
  for (int j = 0; j < kLanes; ++j) s += acc[j];
  return s;
}

inline float sum_sq(const float* a, int64_t n) { return dot(a, a, n); }

// sum_i a[i] * b[i] * c[i]
inline float dot3(const float* a, const float* b, const float* c, int64_t n) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += a[i + j] * b[i + j] * c[i + j];
  float s = 0;
  for (; i < n; ++i) s += a[i] * b[i] * c[i];
  for (int j = 0; j < kLanes; ++j) s += acc[j];
  return s;
}

// Rows-per-chunk for parallel_for over rows of width d: about 16k elements per
// chunk, so thread hand-off cost stays small next to the work.
inline size_t row_grain(int64_t d) {
  int64_t g = (int64_t(1) << 14) / (d > 0 ? d : 1);
  return size_t(g > 0 ? g : 1);
}

}  // namespace bl::cpu
