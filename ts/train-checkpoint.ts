// Self-sufficient training checkpoints (resume after kill -9). A checkpoint
// directory holds
//   adapter_config.json, adapter_model.safetensors   the LoRA weights (PEFT)
//   optimizer.safetensors                            AdamW moments per tensor
//   trainer_state.json                               step, data position, dropout
//                                                    counter, losses/evals so far,
//                                                    the resolved train options
//   manifest.json                                    written LAST: sizes and
//                                                    SHA-256 of the files above
// Every file is written atomically (temporary file, fsync, rename), and a
// directory without a manifest whose hashes match is never picked, so a
// checkpoint interrupted half-way is ignored and the previous one is used.
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS } from './adapter.ts';
import { BayesLoraError, native } from './errors.ts';
import { decodeSafetensors, encodeSafetensors, writeFileAtomic } from './io/safetensors.ts';
import type { Model } from './model.ts';

export const CHECKPOINT_MANIFEST = 'manifest.json';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const TRAINER_STATE_FILE = 'trainer_state.json';
const FORMAT = 'bayeslora-train-checkpoint';
const VERSION = 1;

/** Where training stood when the checkpoint was taken (JSON-serialisable). */
export interface TrainerState {
  /** Optimiser steps done. */
  step: number;
  /** Data position: the epoch and the index of the next micro-batch in it. */
  epoch: number;
  nextMicroBatch: number;
  /** Completed epochs (TrainResult.epochs). */
  epochs: number;
  examples: number;
  losses: number[];
  skippedSteps: number;
  evals: { step: number; epoch: number; result: unknown }[];
  checkpoints: string[];
  seconds: number;
  /** Resolved options that decide the trajectory; a resume must match them. */
  options: Record<string, unknown>;
  /** Shape of the training data (a resume on other data is refused). */
  data: { items: number; microBatchesPerEpoch: number };
  /** The model's LoRA config (seed included: it keys dropout). */
  lora: unknown;
}

/** Native optimiser state (Model.getTrainState). */
interface NativeTrainState {
  step: number;
  trainForwards: number;
  tensors: { name: string; m: Float32Array; v: Float32Array }[];
}

interface Manifest {
  format: string;
  version: number;
  step: number;
  files: Record<string, { bytes: number; sha256: string }>;
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function fsyncDir(dir: string): void {
  // Make the renames durable (a crash of the machine, not only of the process).
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    /* not supported on every platform/filesystem; renames are still atomic */
  }
}

/** Write a complete checkpoint of `model` + `state` into `dir` (manifest last). */
export async function writeTrainCheckpoint(model: Model, dir: string, state: TrainerState): Promise<void> {
  mkdirSync(dir, { recursive: true });
  // A previous attempt at this directory may have left a manifest: drop it
  // first so that the directory is never "valid" with a mix of old and new files.
  rmSync(path.join(dir, CHECKPOINT_MANIFEST), { force: true });
  fsyncDir(dir);
  await model.saveAdapter(dir);
  const ns = native(() => (model.native as { getTrainState(): NativeTrainState }).getTrainState());
  const tensors = ns.tensors.flatMap((t) => [
    { name: `${t.name}.exp_avg`, dtype: 'F32' as const, shape: [t.m.length], data: t.m },
    { name: `${t.name}.exp_avg_sq`, dtype: 'F32' as const, shape: [t.v.length], data: t.v },
  ]);
  const optBytes = encodeSafetensors(tensors, {
    format: FORMAT,
    step: String(ns.step),
    train_forwards: String(ns.trainForwards),
    names: JSON.stringify(ns.tensors.map((t) => t.name)),
  });
  writeFileAtomic(path.join(dir, OPTIMIZER_FILE), optBytes);
  const stateBytes = Buffer.from(JSON.stringify({ ...state, optimizerStep: ns.step, trainForwards: ns.trainForwards }, null, 1) + '\n');
  writeFileAtomic(path.join(dir, TRAINER_STATE_FILE), stateBytes);
  const files: Manifest['files'] = {};
  for (const f of [ADAPTER_CONFIG, ADAPTER_WEIGHTS, OPTIMIZER_FILE, TRAINER_STATE_FILE]) {
    const b = readFileSync(path.join(dir, f));
    files[f] = { bytes: b.length, sha256: sha256(b) };
  }
  fsyncDir(dir);
  const manifest: Manifest = { format: FORMAT, version: VERSION, step: state.step, files };
  writeFileAtomic(path.join(dir, CHECKPOINT_MANIFEST), JSON.stringify(manifest, null, 1) + '\n');
  fsyncDir(dir);
}

function bad(dir: string, msg: string): BayesLoraError {
  return new BayesLoraError('BAD_FILE', `training checkpoint ${dir}: ${msg}`);
}

/** Validate a checkpoint directory (manifest present, every file's size and hash). Throws BAD_FILE. */
export function verifyTrainCheckpoint(dir: string): Manifest {
  const mp = path.join(dir, CHECKPOINT_MANIFEST);
  if (!existsSync(mp)) throw bad(dir, 'no manifest.json (incomplete or not a training checkpoint)');
  let m: Manifest;
  try {
    m = JSON.parse(readFileSync(mp, 'utf8'));
  } catch (e) {
    throw bad(dir, `manifest.json is not valid JSON: ${(e as Error).message}`);
  }
  if (m?.format !== FORMAT || m.version !== VERSION) throw bad(dir, `unknown format ${String(m?.format)} v${String(m?.version)}`);
  if (!Number.isInteger(m.step) || m.step < 0 || typeof m.files !== 'object' || m.files === null) throw bad(dir, 'malformed manifest');
  for (const f of [ADAPTER_CONFIG, ADAPTER_WEIGHTS, OPTIMIZER_FILE, TRAINER_STATE_FILE]) {
    const want = m.files[f];
    if (!want) throw bad(dir, `manifest lists no ${f}`);
    const p = path.join(dir, f);
    if (!existsSync(p)) throw bad(dir, `${f} is missing`);
    const b = readFileSync(p);
    if (b.length !== want.bytes || sha256(b) !== want.sha256) throw bad(dir, `${f} does not match the manifest (size or SHA-256)`);
  }
  return m;
}

/**
 * The checkpoint to resume from: `dir` itself when it is a checkpoint, else
 * its newest valid `checkpoint-*` subdirectory (invalid ones are skipped).
 * Null when there is none; BAD_FILE when `dir` is itself an incomplete or
 * damaged checkpoint.
 */
export function findTrainCheckpoint(dir: string): string | null {
  if (!existsSync(dir)) return null;
  // A checkpoint directory itself (even one whose manifest never got written) is verified, not searched.
  const own = [CHECKPOINT_MANIFEST, TRAINER_STATE_FILE, OPTIMIZER_FILE, ADAPTER_CONFIG].some((f) => existsSync(path.join(dir, f)));
  if (own) {
    verifyTrainCheckpoint(dir);
    return dir;
  }
  const subs = readdirSync(dir)
    .filter((n) => /^checkpoint-\d+$/.test(n) && statSync(path.join(dir, n)).isDirectory())
    .sort((a, b) => Number(b.slice(11)) - Number(a.slice(11)));
  for (const s of subs) {
    try {
      verifyTrainCheckpoint(path.join(dir, s));
      return path.join(dir, s);
    } catch {
      /* half-written or damaged: try an older one */
    }
  }
  return null;
}

/** Load a verified checkpoint into `model` (adapter + optimiser + dropout counter); returns the trainer state. */
export async function restoreTrainCheckpoint(model: Model, dir: string): Promise<TrainerState> {
  verifyTrainCheckpoint(dir);
  let st: TrainerState & { optimizerStep: number; trainForwards: number };
  try {
    st = JSON.parse(readFileSync(path.join(dir, TRAINER_STATE_FILE), 'utf8'));
  } catch (e) {
    throw bad(dir, `${TRAINER_STATE_FILE}: ${(e as Error).message}`);
  }
  const opt = decodeSafetensors(readFileSync(path.join(dir, OPTIMIZER_FILE)), path.join(dir, OPTIMIZER_FILE));
  let names: string[];
  try {
    names = JSON.parse(opt.metadata.names ?? '[]');
  } catch {
    throw bad(dir, 'optimizer.safetensors: bad names metadata');
  }
  const byName = new Map(opt.tensors.map((t) => [t.name, t]));
  const tensors = names.map((n) => {
    const m = byName.get(`${n}.exp_avg`);
    const v = byName.get(`${n}.exp_avg_sq`);
    if (!m || !v || m.dtype !== 'F32' || v.dtype !== 'F32') throw bad(dir, `optimizer.safetensors: moments of ${n} missing`);
    return { name: n, m: Float32Array.from(m.data as ArrayLike<number>), v: Float32Array.from(v.data as ArrayLike<number>) };
  });
  await model.loadAdapter(dir);
  native(() =>
    (model.native as { setTrainState(s: NativeTrainState): void }).setTrainState({
      step: st.optimizerStep,
      trainForwards: st.trainForwards,
      tensors,
    }),
  );
  return st;
}
