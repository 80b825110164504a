// Report rows and their aggregation over seeds (mean and spread).
import { computeMetrics, type Metrics } from '../eval/metrics.ts';

export type Split = 'test' | 'shift' | 'validation';

export interface SeedRow {
  seed: number;
  task: string;
  split: Split;
  step: number;
  method: string;
  acc: number;
  ece: number;
  nll: number;
  brier: number;
  n: number;
}

export interface ReportRow {
  task: string;
  split: Split;
  step: number;
  method: string;
  acc: number;
  ece: number;
  nll: number;
  brier: number;
  seeds: number;
  std: { acc: number; ece: number; nll: number; brier: number };
}

export function seedRow(seed: number, task: string, split: Split, step: number, method: string, probs: ArrayLike<number>, labels: ArrayLike<number>, C: number): SeedRow {
  const m: Metrics = computeMetrics(probs, labels, C);
  return { seed, task, split, step, method, acc: m.acc, ece: m.ece, nll: m.nll, brier: m.brier, n: m.n };
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const std = (xs: number[]) => {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1));
};

/**
 * Mean over seeds per (task, split, step, method). Rows are grouped by their
 * checkpoint index rather than the raw step so that seeds with the same
 * schedule line up; `step` is that checkpoint's step.
 */
export function aggregate(rows: SeedRow[]): ReportRow[] {
  const groups = new Map<string, SeedRow[]>();
  for (const r of rows) {
    const k = `${r.task}\u0000${r.split}\u0000${r.step}\u0000${r.method}`;
    const g = groups.get(k) ?? [];
    g.push(r);
    groups.set(k, g);
  }
  const out: ReportRow[] = [];
  for (const g of groups.values()) {
    const f = (key: 'acc' | 'ece' | 'nll' | 'brier') => g.map((r) => r[key]);
    out.push({
      task: g[0].task,
      split: g[0].split,
      step: g[0].step,
      method: g[0].method,
      acc: mean(f('acc')),
      ece: mean(f('ece')),
      nll: mean(f('nll')),
      brier: mean(f('brier')),
      seeds: g.length,
      std: { acc: std(f('acc')), ece: std(f('ece')), nll: std(f('nll')), brier: std(f('brier')) },
    });
  }
  return out.sort((a, b) => a.task.localeCompare(b.task) || a.split.localeCompare(b.split) || a.step - b.step || a.method.localeCompare(b.method));
}

/** Average per-example class probabilities (ensembles): all arrays [N x C]. */
export function averageProbs(list: ArrayLike<number>[]): Float64Array {
  const out = new Float64Array(list[0].length);
  for (const p of list) for (let i = 0; i < out.length; i++) out[i] += p[i] / list.length;
  return out;
}
