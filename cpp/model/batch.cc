// Batch validation (see batch.h).
#include "model/batch.h"

#include "core/error.h"

namespace bl {

static void check_dims(int B, int T, const char* what) {
  BL_CHECK(B >= 1, code::kInvalidArgument, what, ": B must be >= 1, got ", B);
  BL_CHECK(T >= 1, code::kInvalidArgument, what, ": T must be >= 1, got ", T);
  BL_CHECK(int64_t(B) * T <= kMaxBatchTokens, code::kInvalidArgument, what, ": B*T = ",
           int64_t(B) * T, " exceeds the limit ", kMaxBatchTokens);
}

static void check_tokens(const int32_t* ids, const uint8_t* mask, int64_t n, int vocab) {
  BL_CHECK(ids && mask, code::kInvalidArgument, "batch ids and mask are required");
  for (int64_t i = 0; i < n; ++i) {
    BL_CHECK(ids[i] >= 0 && ids[i] < vocab, code::kInvalidArgument, "batch ids[", i, "] = ", ids[i],
             " is outside the vocabulary [0, ", vocab, ")");
    BL_CHECK(mask[i] <= 1, code::kInvalidArgument, "batch mask[", i, "] = ", int(mask[i]),
             " (expected 0 or 1)");
  }
}

int real_length(const uint8_t* mask, int T, int b) {
  int n = 0;
  for (int t = 0; t < T; ++t) n += mask[int64_t(b) * T + t];
  return n;
}

void validate_mc_batch(const McBatchView& b, int vocab) {
  check_dims(b.B, b.T, "mc batch");
  BL_CHECK(b.C >= 1 && b.C <= 65536, code::kInvalidArgument, "mc batch: C must be in [1, 65536], got ", b.C);
  BL_CHECK(int64_t(b.B) * b.C <= kMaxBatchTokens, code::kInvalidArgument, "mc batch: B*C too large");
  check_tokens(b.ids, b.mask, int64_t(b.B) * b.T, vocab);
  BL_CHECK(b.last && b.rows, code::kInvalidArgument, "mc batch: last and rows are required");
  for (int i = 0; i < b.B; ++i) {
    const int l = b.last[i];
    BL_CHECK(l >= 0 && l < b.T, code::kInvalidArgument, "mc batch: last[", i, "] = ", l,
             " is outside [0, ", b.T, ")");
    const uint8_t* m = b.mask + int64_t(i) * b.T;
    BL_CHECK(m[l] == 1, code::kInvalidArgument, "mc batch: last[", i, "] = ", l,
             " points at a padding position (mask is 0 there)");
    for (int t = l + 1; t < b.T; ++t)
      BL_CHECK(m[t] == 0, code::kInvalidArgument, "mc batch: last[", i, "] = ", l,
               " is not the last real token (mask[", i, "*T+", t, "] is 1)");
  }
  for (int64_t i = 0; i < int64_t(b.B) * b.C; ++i)
    BL_CHECK(b.rows[i] >= 0 && b.rows[i] < vocab, code::kInvalidArgument, "mc batch: rows[", i,
             "] = ", b.rows[i], " is outside the vocabulary [0, ", vocab, ")");
  if (b.labels)
    for (int i = 0; i < b.B; ++i)
      BL_CHECK(b.labels[i] >= -1 && b.labels[i] < b.C, code::kInvalidArgument, "mc batch: labels[",
               i, "] = ", b.labels[i], " is outside [-1, ", b.C, ")");
}

void validate_lm_batch(const LmBatchView& b, int vocab) {
  check_dims(b.B, b.T, "lm batch");
  const int64_t n = int64_t(b.B) * b.T;
  check_tokens(b.ids, b.mask, n, vocab);
  BL_CHECK(b.targets, code::kInvalidArgument, "lm batch: targets are required");
  for (int64_t i = 0; i < n; ++i) {
    BL_CHECK(b.targets[i] >= -1 && b.targets[i] < vocab, code::kInvalidArgument,
             "lm batch: targets[", i, "] = ", b.targets[i], " is outside [-1, ", vocab, ")");
    BL_CHECK(b.mask[i] == 1 || b.targets[i] == -1, code::kInvalidArgument, "lm batch: targets[", i,
             "] = ", b.targets[i], " at a padding position (must be -1)");
  }
  for (int i = 0; i < b.B; ++i)
    BL_CHECK(real_length(b.mask, b.T, i) >= 1, code::kInvalidArgument, "lm batch: example ", i,
             " has no real token");
}

}  // namespace bl
