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
    name: name ?? taskNames([file])[0],
    file,
    examples,
    encoded,
    labels: Int32Array.from(encoded.map((e) => e.label)),
    C,
  };
}

// File names that say which split a file is, not which task: the built-in
// layout is data/<task>/{train,train-small,validation,test}.jsonl.
const SPLIT_NAME = /^(train|training|valid|validation|val|dev|test|testing|eval)([-_.].*)?$/i;

/**
 * Report names for evaluation files, one per file and all distinct: the
 * parent folder for a split-named file (data/wn-category/test.jsonl ->
 * wn-category), else the file's own name without `.jsonl`
 * (tasks/foldoc.jsonl -> foldoc); a name met before gets `-2`, `-3`, ...
 * Rows, tables and chart files are keyed by these names, so two sets must
 * never share one.
 */
export function taskNames(files: readonly string[]): string[] {
  const used = new Set<string>();
  return files.map((file) => {
    const base = path.basename(file).replace(/\.jsonl$/i, '');
    const dir = path.basename(path.dirname(path.resolve(file)));
    const want = SPLIT_NAME.test(base) && dir ? dir : base;
    let name = want;
    for (let k = 2; used.has(name); k++) name = `${want}-${k}`;
    used.add(name);
    return name;
  });
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
