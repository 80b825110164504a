// Batch layouts handed to the native model: one native call per batch step.
// Token layout is row-major [B x T]; row index b*T + t.

/** A multiple-choice batch: class logits are LM-head logits of `rows` at the last real position. */
export interface McBatch {
  B: number; // examples
  T: number; // padded sequence length
  C: number; // classes (answer tokens) per example
  ids: Int32Array; // [B*T] token ids; padding positions hold any valid id (e.g. pad/eos)
  mask: Uint8Array; // [B*T] 1 = real token, 0 = padding (left or right padding both allowed)
  last: Int32Array; // [B] position t of the last real token of each example
  rows: Int32Array; // [B*C] LM-head rows (answer-token ids) whose logits are the class logits
  labels: Int32Array; // [B] correct class in [0, C), or -1 when unlabelled
}

/** A language-modelling batch for full-parameter (pre)training: next-token loss. */
export interface LmBatch {
  B: number;
  T: number;
  ids: Int32Array; // [B*T]
  mask: Uint8Array; // [B*T]
  targets: Int32Array; // [B*T] next-token id to predict at each position, -1 = no loss
}
