// The main job's data: JSONL tasks encoded for a model's tokenizer in the
// `choice` (default) or `letter` answer format, and collated into batches.
import { readMcJsonl, type McExample } from '../data/jsonl.ts';
import { encodeMc, type AnswerFormat, type EncodedMc } from '../data/format.ts';
import { collateMc } from '../data/collate.ts';
import { batches } from '../data/sampling.ts';
import type { McBatch } from '../data/batch.ts';
import type { Tokenizer } from '../tokenizer.ts';
import path from 'node:path';
import { invalid } from '../errors.ts';

export interface TaskData {
  name: string;
  file: string;
  examples: McExample[];
  encoded: EncodedMc[];
  labels: Int32Array;
  C: number; // choices per example (all equal)
}

export interface EncodeSettings {
  format: AnswerFormat;
  maxLength: number;
  limit?: number; // keep the first `limit` examples (quick runs)
}

export async function loadTask(tok: Tokenizer, file: string, s: EncodeSettings, name?: string): Promise<TaskData> {
  let examples = await readMcJsonl(file);
  if (s.limit !== undefined) examples = examples.slice(0, s.limit);
  const encoded = await encodeMc(tok, examples, { format: s.format, source: file });
  const C = encoded[0]?.rows.length ?? 0;
  for (const e of encoded) {
    if (e.rows.length !== C) throw invalid(`${file}: every example must have the same number of choices (${C})`);
  }
  return {
    name: name ?? path.basename(path.dirname(file)),
    file,
    examples,
    encoded,
    labels: Int32Array.from(encoded.map((e) => e.label)),
    C,
  };
}

/** Fixed-order evaluation batches (no shuffling). */
export function evalBatches(t: TaskData, tok: Tokenizer, batchSize: number, maxLength: number): McBatch[] {
  const out: McBatch[] = [];
  for (let i = 0; i < t.encoded.length; i += batchSize) {
    out.push(collateMc(t.encoded.slice(i, i + batchSize), collateOptions(tok, maxLength)));
  }
  return out;
}

export function collateOptions(tok: Tokenizer, maxLength: number) {
  return {
    padId: tok.padId ?? tok.eosId ?? 0,
    side: 'left' as const,
    maxLength,
    bosId: tok.bosId ?? undefined,
    vocabSize: tok.vocabSize,
  };
}

/** Seeded shuffled training batches for one pass (used for curvature fitting). */
export function trainBatches(t: TaskData, tok: Tokenizer, batchSize: number, maxLength: number, seed: number): McBatch[] {
  return [...batches(t.encoded, batchSize, { seed, shuffle: true })].map((c) => collateMc(c, collateOptions(tok, maxLength)));
}
