// progress.json of a main-job run directory: what `bayeslora run --resume DIR`
// needs to continue after an interruption (kill -9, power loss). Written
// atomically after every training checkpoint and after every finished seed:
// the run's config, the seeds completed, and for the seed in progress the
// training checkpoint it reached together with everything evaluated up to it
// (report rows, priors, probabilities kept for ensembles and charts). A
// checkpoint newer than the progress file is ignored: the snapshot and the
// checkpoint it names always belong together.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { BayesLoraError } from '../errors.ts';
import { writeFileAtomic } from '../io/safetensors.ts';

export const PROGRESS_FILE = 'progress.json';
const FORMAT = 'bayeslora-run-progress';

export interface RunProgress<Config, State> {
  format: typeof FORMAT;
  version: 1;
  config: Config;
  /** Seeds (members) fully done. */
  seedsDone: number;
  /** The seed in progress and its last training checkpoint (null: restart that seed). */
  current: null | { seed: number; checkpoint: string; step: number };
  /** Everything accumulated so far (rows, priors, probabilities, timings). */
  state: State;
}

// Float64Arrays travel as {f64: number[]}; JSON round-trips doubles exactly.
function replacer(_k: string, v: unknown): unknown {
  return v instanceof Float64Array ? { f64: Array.from(v) } : v;
}
function reviver(_k: string, v: unknown): unknown {
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    const o = v as { f64?: unknown };
    if (Array.isArray(o.f64) && Object.keys(o).length === 1) return Float64Array.from(o.f64 as number[]);
  }
  return v;
}

export function writeProgress<C, S>(dir: string, p: Omit<RunProgress<C, S>, 'format' | 'version'>): void {
  writeFileAtomic(path.join(dir, PROGRESS_FILE), JSON.stringify({ format: FORMAT, version: 1, ...p }, replacer) + '\n');
}

/** Read DIR/progress.json (BAD_FILE when missing or malformed). */
export function readProgress<C, S>(dir: string): RunProgress<C, S> {
  const f = path.join(dir, PROGRESS_FILE);
  if (!existsSync(f)) throw new BayesLoraError('BAD_FILE', `${f}: no progress file (not a bayeslora run directory, or it never got far enough)`);
  let p: RunProgress<C, S>;
  try {
    p = JSON.parse(readFileSync(f, 'utf8'), reviver);
  } catch (e) {
    throw new BayesLoraError('BAD_FILE', `${f}: ${(e as Error).message}`);
  }
  if (p?.format !== FORMAT || p.version !== 1 || typeof p.config !== 'object' || !Number.isInteger(p.seedsDone))
    throw new BayesLoraError('BAD_FILE', `${f}: not a progress file of this version`);
  return p;
}
