// Host-side views of the two batch layouts (see ts/data/batch.ts) and their
// validation. Validation runs before any native work: every length, id range,
// label range and the consistency of `last` with `mask` is checked and a typed
// error names the offending field and index.
#pragma once
#include <cstdint>

namespace bl {

// Multiple-choice batch: class logits are LM-head logits of `rows` at the last
// real position of each example. Token layout row = b*T + t.
struct McBatchView {
  int B = 0, T = 0, C = 0;
  const int32_t* ids = nullptr;     // [B*T]
  const uint8_t* mask = nullptr;    // [B*T] 1 real, 0 pad
  const int32_t* last = nullptr;    // [B] last real position
  const int32_t* rows = nullptr;    // [B*C] answer-token ids
  const int32_t* labels = nullptr;  // [B] in [-1, C) (-1 = unlabelled); nullable = all unlabelled
};

// Language-modelling batch: next-token targets per position (-1 = no loss).
struct LmBatchView {
  int B = 0, T = 0;
  const int32_t* ids = nullptr;      // [B*T]
  const uint8_t* mask = nullptr;     // [B*T]
  const int32_t* targets = nullptr;  // [B*T] in [-1, vocab); -1 wherever mask is 0
};

// Upper bound on B*T (and B*C) accepted in one batch.
inline constexpr int64_t kMaxBatchTokens = int64_t(1) << 24;

// Throw INVALID_ARGUMENT / SHAPE_MISMATCH naming the field; sizes of the
// arrays are checked by the caller that knows them (bindings), values here.
void validate_mc_batch(const McBatchView& b, int vocab);
void validate_lm_batch(const LmBatchView& b, int vocab);

// Number of real tokens of example b (the length of its sequence).
int real_length(const uint8_t* mask, int T, int b);

}  // namespace bl
