// Data order: seeded mini-batch iteration and train/validation splits.
// Deterministic given the seed, so a run can be reproduced or resumed.
import { invalid } from '../errors.ts';
import { deriveSeed, Rng } from './rng.ts';

export interface BatchesOptions {
  /** Seed of the order. Default 0. */
  seed?: number;
  /** Shuffle before batching. Default true. */
  shuffle?: boolean;
  /** Drop a last batch smaller than batchSize. Default false. */
  dropLast?: boolean;
  /** Epoch number: each epoch gets its own order derived from (seed, epoch). Default 0. */
  epoch?: number;
}

export interface GroupedBatchesOptions<T> extends BatchesOptions {
  /**
   * Batch only items with equal keys together (e.g. the number of choices,
   * which must be equal within an McBatch). Each group is cut into batches in
   * the epoch's item order, and with shuffle the batches are then shuffled
   * across groups; without shuffle groups come in order of first appearance.
   */
  groupBy?: (item: T) => string | number;
}

/** The index order one epoch visits (a permutation of 0..n-1). */
export function epochOrder(n: number, opts: BatchesOptions = {}): number[] {
  if (!Number.isInteger(n) || n < 0) throw invalid(`epochOrder: n must be a non-negative integer, got ${String(n)}`);
  const order = Array.from({ length: n }, (_, i) => i);
  if (opts.shuffle ?? true) new Rng(deriveSeed(checkSeed(opts.seed ?? 0), checkSeed(opts.epoch ?? 0))).shuffle(order);
  return order;
}

/**
 * Yield batches of items (arrays of length batchSize, the last possibly
 * shorter unless dropLast; with groupBy, the last of each group).
 */
export function* batches<T>(items: readonly T[], batchSize: number, opts: GroupedBatchesOptions<T> = {}): Generator<T[]> {
  if (!Array.isArray(items)) throw invalid('batches: items must be an array');
  if (!Number.isInteger(batchSize) || batchSize < 1) throw invalid(`batches: batchSize must be a positive integer, got ${String(batchSize)}`);
  const order = epochOrder(items.length, opts);
  const dropLast = opts.dropLast ?? false;
  if (opts.groupBy !== undefined) {
    if (typeof opts.groupBy !== 'function') throw invalid('batches: groupBy must be a function');
    const groups = new Map<string | number, number[]>();
    for (const i of order) {
      const k = opts.groupBy(items[i]);
      if (typeof k !== 'string' && typeof k !== 'number') throw invalid('batches: groupBy must return a string or number');
      let g = groups.get(k);
      if (!g) groups.set(k, (g = []));
      g.push(i);
    }
    const all: number[][] = [];
    for (const g of groups.values()) {
      for (let s = 0; s < g.length; s += batchSize) {
        if (dropLast && g.length - s < batchSize) break;
        all.push(g.slice(s, s + batchSize));
      }
    }
    if (opts.shuffle ?? true) {
      // A stream of its own so the batch order is independent of the item order.
      new Rng(deriveSeed(deriveSeed(checkSeed(opts.seed ?? 0), checkSeed(opts.epoch ?? 0)), 0x6a09e667)).shuffle(all);
    }
    for (const b of all) yield b.map((i) => items[i]);
    return;
  }
  for (let s = 0; s < order.length; s += batchSize) {
    const e = Math.min(s + batchSize, order.length);
    if (dropLast && e - s < batchSize) break;
    const b = new Array<T>(e - s);
    for (let k = s; k < e; k++) b[k - s] = items[order[k]];
    yield b;
  }
}

/** How many batches `batches` yields for n items. */
export function batchCount(n: number, batchSize: number, dropLast = false): number {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw invalid('batchCount: batchSize must be a positive integer');
  return dropLast ? Math.floor(n / batchSize) : Math.ceil(n / batchSize);
}

export interface SplitOptions {
  /** Fraction of items for validation, in [0, 1). Give this or valCount. */
  valFraction?: number;
  /** Exact number of validation items. */
  valCount?: number;
  /** Seed of the random split. Default 0. */
  seed?: number;
  /** Shuffle before splitting; false takes the last items as validation. Default true. */
  shuffle?: boolean;
}

/**
 * Split items into train and validation sets (disjoint, together all items).
 * With shuffle, both keep the items' original relative order, so the split
 * is random but the sets read like the source file.
 */
export function splitTrainVal<T>(items: readonly T[], opts: SplitOptions): { train: T[]; val: T[] } {
  if (!Array.isArray(items)) throw invalid('splitTrainVal: items must be an array');
  const n = items.length;
  let nVal: number;
  if (opts.valCount !== undefined) {
    if (opts.valFraction !== undefined) throw invalid('splitTrainVal: give valFraction or valCount, not both');
    if (!Number.isInteger(opts.valCount) || opts.valCount < 0 || opts.valCount > n) {
      throw invalid(`splitTrainVal: valCount must be an integer in [0, ${n}], got ${String(opts.valCount)}`);
    }
    nVal = opts.valCount;
  } else if (opts.valFraction !== undefined) {
    const f = opts.valFraction;
    if (typeof f !== 'number' || !(f >= 0 && f < 1)) throw invalid(`splitTrainVal: valFraction must be in [0, 1), got ${String(f)}`);
    nVal = Math.round(n * f);
  } else {
    throw invalid('splitTrainVal: give valFraction or valCount');
  }
  const isVal = new Uint8Array(n);
  if (opts.shuffle ?? true) {
    const order = epochOrder(n, { seed: opts.seed ?? 0, shuffle: true });
    for (let k = 0; k < nVal; k++) isVal[order[k]] = 1;
  } else {
    for (let k = n - nVal; k < n; k++) isVal[k] = 1;
  }
  const train: T[] = [];
  const val: T[] = [];
  for (let i = 0; i < n; i++) (isVal[i] ? val : train).push(items[i]);
  return { train, val };
}

function checkSeed(s: number): number {
  if (!Number.isSafeInteger(s)) throw invalid(`seed must be a safe integer, got ${String(s)}`);
  return s;
}
