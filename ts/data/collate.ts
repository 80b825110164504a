// Collation: encoded examples -> the fixed batch layouts of batch.ts
// (McBatch for multiple-choice, LmBatch for next-token training).
//
// Multiple choice: every example of a batch must have the same number of
// classes C. A sequence longer than maxLength loses tokens from the LEFT, so
// the end of the prompt, where the answer is read, survives; with `bosId`
// given, a leading BOS is kept and the tokens after it are dropped instead.
// Padding goes left or right; `last` always points at the last real token.
//
// Language modelling: right padding only; sequences longer than maxLength are
// cut to their first maxLength tokens (split long texts with `chunkTokens`
// first). targets[t] = ids[t+1] inside a sequence and -1 at the last real
// position and at padding.
import { invalid } from '../errors.ts';
import type { LmBatch, McBatch } from './batch.ts';
import type { EncodedMc } from './format.ts';

export { batches, batchCount, epochOrder, splitTrainVal } from './sampling.ts';
export type { BatchesOptions, GroupedBatchesOptions, SplitOptions } from './sampling.ts';

/** Token ids must fit an Int32Array and the native side's int32 indices. */
const MAX_ID = 0x7fffffff;

export interface CollateMcOptions {
  /** Id written at padding positions (masked out; any valid id). */
  padId: number;
  /** Where padding goes. Default 'left'. */
  side?: 'left' | 'right';
  /** Longest sequence kept; longer ones are truncated from the left. */
  maxLength: number;
  /** When given, a sequence starting with this id keeps it through left truncation. */
  bosId?: number;
  /** When given, every id and row must be below it. */
  vocabSize?: number;
}

export function collateMc(encoded: readonly EncodedMc[], opts: CollateMcOptions): McBatch {
  if (!Array.isArray(encoded) || encoded.length === 0) throw invalid('collateMc: need a non-empty array of encoded examples');
  const side = opts.side ?? 'left';
  if (side !== 'left' && side !== 'right') throw invalid(`collateMc: side must be 'left' or 'right', got ${String(side)}`);
  const maxLength = checkMaxLength(opts.maxLength, 'collateMc');
  const limit = checkLimit(opts.vocabSize, 'collateMc');
  const padId = checkId(opts.padId, limit, 'collateMc: padId');
  const bosId = opts.bosId === undefined ? undefined : checkId(opts.bosId, limit, 'collateMc: bosId');
  if (bosId !== undefined && maxLength < 2) throw invalid('collateMc: maxLength must be at least 2 when bosId is kept');

  const B = encoded.length;
  const C = encoded[0]?.rows?.length;
  const seqs: ArrayLike<number>[] = new Array(B);
  for (let b = 0; b < B; b++) {
    const e = encoded[b];
    if (e === null || typeof e !== 'object') throw invalid(`collateMc: encoded[${b}] is not an object`);
    if (!isIntList(e.ids) || e.ids.length === 0) throw invalid(`collateMc: encoded[${b}].ids must be a non-empty array of token ids`);
    if (!isIntList(e.rows) || e.rows.length < 2) throw invalid(`collateMc: encoded[${b}].rows must list at least 2 token ids`);
    if (e.rows.length !== C) {
      throw invalid(`collateMc: all examples of a batch need the same number of choices; encoded[0] has ${C}, encoded[${b}] has ${e.rows.length}`);
    }
    if (!Number.isInteger(e.label) || e.label < -1 || e.label >= C) {
      throw invalid(`collateMc: encoded[${b}].label ${String(e.label)} is not -1 or in [0, ${C})`);
    }
    for (let k = 0; k < e.ids.length; k++) checkId(e.ids[k], limit, `collateMc: encoded[${b}].ids[${k}]`);
    for (let k = 0; k < C; k++) checkId(e.rows[k], limit, `collateMc: encoded[${b}].rows[${k}]`);
    seqs[b] = truncateLeft(e.ids, maxLength, bosId);
  }
  const T = seqs.reduce((m, s) => Math.max(m, s.length), 0);
  const ids = new Int32Array(B * T).fill(padId);
  const mask = new Uint8Array(B * T);
  const last = new Int32Array(B);
  const rows = new Int32Array(B * C);
  const labels = new Int32Array(B);
  for (let b = 0; b < B; b++) {
    const s = seqs[b];
    const off = side === 'left' ? T - s.length : 0;
    for (let t = 0; t < s.length; t++) {
      ids[b * T + off + t] = s[t];
      mask[b * T + off + t] = 1;
    }
    last[b] = off + s.length - 1;
    for (let c = 0; c < C; c++) rows[b * C + c] = encoded[b].rows[c];
    labels[b] = encoded[b].label;
  }
  return { B, T, C, ids, mask, last, rows, labels };
}

/** Keep the last maxLength tokens (after a kept BOS, if `bosId` starts the sequence). */
function truncateLeft(ids: ArrayLike<number>, maxLength: number, bosId: number | undefined): ArrayLike<number> {
  if (ids.length <= maxLength) return ids;
  const arr = Array.from(ids);
  if (bosId !== undefined && arr[0] === bosId) return [bosId, ...arr.slice(arr.length - (maxLength - 1))];
  return arr.slice(arr.length - maxLength);
}

export interface CollateLmOptions {
  padId: number;
  /** Longest sequence kept; longer ones keep their first maxLength tokens. */
  maxLength: number;
  vocabSize?: number;
}

export function collateLm(sequences: readonly ArrayLike<number>[], opts: CollateLmOptions): LmBatch {
  if (!Array.isArray(sequences) || sequences.length === 0) throw invalid('collateLm: need a non-empty array of token sequences');
  const maxLength = checkMaxLength(opts.maxLength, 'collateLm');
  const limit = checkLimit(opts.vocabSize, 'collateLm');
  const padId = checkId(opts.padId, limit, 'collateLm: padId');
  const B = sequences.length;
  let T = 0;
  for (let b = 0; b < B; b++) {
    const s = sequences[b];
    if (!isIntList(s) || s.length === 0) throw invalid(`collateLm: sequences[${b}] must be a non-empty array of token ids`);
    const n = Math.min(s.length, maxLength);
    for (let k = 0; k < n; k++) checkId(s[k], limit, `collateLm: sequences[${b}][${k}]`);
    T = Math.max(T, n);
  }
  const ids = new Int32Array(B * T).fill(padId);
  const mask = new Uint8Array(B * T);
  const targets = new Int32Array(B * T).fill(-1);
  for (let b = 0; b < B; b++) {
    const s = sequences[b];
    const n = Math.min(s.length, maxLength);
    for (let t = 0; t < n; t++) {
      ids[b * T + t] = s[t];
      mask[b * T + t] = 1;
      if (t + 1 < n) targets[b * T + t] = s[t + 1];
    }
  }
  return { B, T, ids, mask, targets };
}

/**
 * Split a long token stream into pieces of at most `length` tokens for
 * collateLm. With `overlap` = 1 (default) consecutive pieces share one token,
 * so every token except the very first is a target exactly once.
 */
export function chunkTokens(ids: ArrayLike<number>, length: number, overlap = 1): number[][] {
  if (!isIntList(ids)) throw invalid('chunkTokens: ids must be an array of integers');
  if (!Number.isInteger(length) || length < 2) throw invalid(`chunkTokens: length must be an integer >= 2, got ${String(length)}`);
  if (!Number.isInteger(overlap) || overlap < 0 || overlap >= length) throw invalid(`chunkTokens: overlap must be in [0, length)`);
  const out: number[][] = [];
  const arr = Array.from(ids);
  const step = length - overlap;
  for (let s = 0; s < arr.length; s += step) {
    const piece = arr.slice(s, s + length);
    if (out.length > 0 && piece.length <= overlap) break;
    out.push(piece);
    if (s + length >= arr.length) break;
  }
  return out;
}

function isIntList(v: unknown): v is ArrayLike<number> {
  return (
    Array.isArray(v) || v instanceof Int32Array || v instanceof Uint32Array || v instanceof Uint16Array || v instanceof Int16Array
  );
}

function checkLimit(v: number | undefined, where: string): number {
  if (v === undefined) return MAX_ID;
  if (!Number.isInteger(v) || v < 1 || v > MAX_ID) throw invalid(`${where}: vocabSize must be a positive integer, got ${String(v)}`);
  return v;
}

function checkMaxLength(v: number, where: string): number {
  if (!Number.isInteger(v) || v < 1 || v > 1 << 24) throw invalid(`${where}: maxLength must be a positive integer, got ${String(v)}`);
  return v;
}

function checkId(v: unknown, limit: number, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= limit) {
    throw invalid(`${what} = ${String(v)} is not a token id in [0, ${limit})`);
  }
  return v;
}
