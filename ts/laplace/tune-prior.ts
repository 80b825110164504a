// The prior precision chosen on held-out data, the alternative to the marginal
// likelihood that laplace-torch calls a grid search on a validation set (LA-val
// in `bayeslora run`). The Jacobian passes of the predictive and their
// projections do not depend on the prior: one predictive pass per batch returns Lambda
// for every scale of the grid (Posterior.predictBatch's priorScales), so a fine,
// wide grid over the whole held-out set costs about one predictive pass, not
// one per grid point. The scale whose predictive minimises the objective on
// the labelled examples becomes the prior (every layer's precision times it).
import type { McBatch } from '../data/batch.ts';
import { throwIfAborted } from '../abort.ts';
import { invalid } from '../errors.ts';
import { computeMetrics } from '../eval/metrics.ts';
import type { Model } from '../model.ts';
import { predictiveProbsReport, type Posterior, type PredictiveMethod } from './kfac.ts';

export type PriorObjective = 'nll' | 'brier' | 'ece';

export interface TunePriorOptions {
  /**
   * Multiples of the current prior precision(s) to try (finite, > 0). Default:
   * 10^(k/4) for k = -8..16, i.e. 0.01x to 10^4x in quarter decades (the
   * marglik prior is usually the weak end; docs/laplace-tokens.md).
   */
  scales?: ArrayLike<number>;
  /** What the chosen prior minimises on the held-out examples (default 'nll'). */
  objective?: PriorObjective;
  /** Link used to score each scale (default 'mc', as `predict`); 'map' ignores the prior and is rejected. */
  method?: Exclude<PredictiveMethod, 'map'>;
  /** MC samples per example and scale (default 1000); every scale uses the same draws. */
  samples?: number;
  seed?: number;
  signal?: AbortSignal;
  /** Called after each batch (its index), for progress. */
  onBatch?: (index: number) => void;
}

export interface PriorGridPoint {
  scale: number;
  acc: number;
  ece: number;
  nll: number;
  brier: number;
}

export interface PriorTuning {
  /** The chosen multiple of the prior precision(s) the posterior had before. */
  scale: number;
  /** The prior precision per posterior layer, now set. */
  priorPrecision: number[];
  objective: PriorObjective;
  /** Labelled held-out examples scored (unlabelled ones are skipped). */
  n: number;
  grid: PriorGridPoint[];
  /** E.g. the best scale at an end of the grid (widen it), jitter added to a non-PD Lambda. */
  warnings: string[];
}

/** The most scales one call takes (each costs memory for every layer's weights during the passes). */
export const MAX_PRIOR_SCALES = 256;

/** 0.01x .. 10^4x the current prior, four points per decade. */
export const DEFAULT_PRIOR_SCALES: readonly number[] = Array.from({ length: 25 }, (_, k) => 10 ** ((k - 8) / 4));

const OBJECTIVES: readonly PriorObjective[] = ['nll', 'brier', 'ece'];
const METHODS: readonly string[] = ['mc', 'probit', 'bridge'];

/**
 * Score every prior scale on `batches` (held-out, labelled) and set the best.
 * Rejects with INVALID_ARGUMENT on an empty or unlabelled set or bad options
 * (before any pass runs), ABORTED when `signal` fires.
 */
export async function tunePrior(posterior: Posterior, model: Model, batches: McBatch[], o: TunePriorOptions = {}): Promise<PriorTuning> {
  const objective = o.objective ?? 'nll';
  const method = o.method ?? 'mc';
  if (!OBJECTIVES.includes(objective)) throw invalid(`tunePrior: objective must be one of ${OBJECTIVES.join(', ')}, got '${objective}'`);
  if (!METHODS.includes(method)) throw invalid(`tunePrior: method must be one of ${METHODS.join(', ')}, got '${method}'`);
  const scales = Array.from(o.scales ?? DEFAULT_PRIOR_SCALES);
  if (scales.length === 0 || scales.length > MAX_PRIOR_SCALES || !scales.every((s) => Number.isFinite(s) && s > 0))
    throw invalid(`tunePrior: scales must be 1 to ${MAX_PRIOR_SCALES} finite numbers > 0`);
  if (!Array.isArray(batches) || batches.length === 0) throw invalid('tunePrior: needs at least one held-out batch');
  let nLabelled = 0;
  for (const b of batches) for (const y of b.labels) if (y >= 0) nLabelled++;
  if (nLabelled === 0) throw invalid('tunePrior: the held-out batches have no labelled example');

  // Probabilities of the labelled examples per scale, padded with zeros to the
  // largest class count (exact for every metric: the label is a real class, a
  // zero is never the top class unless all are, and adds nothing to Brier).
  const C = Math.max(...batches.map((b) => b.C));
  const probs = scales.map(() => new Float64Array(nLabelled * C));
  const labels = new Int32Array(nLabelled);
  const base = Array.from(posterior.prior());
  let row = 0;
  let jittered = 0;
  for (const [bi, b] of batches.entries()) {
    throwIfAborted(o.signal, 'tunePrior');
    const rows: number[] = [];
    for (let i = 0; i < b.B; i++) if (b.labels[i] >= 0) rows.push(i);
    if (rows.length === 0) {
      o.onBatch?.(bi); // nothing to score: its passes are skipped
      continue;
    }
    const r = await posterior.predictBatch(model, b, { signal: o.signal, priorScales: scales });
    const per = b.B * b.C * b.C;
    for (let k = 0; k < scales.length; k++) {
      const lam = r.lambdaGrid!.subarray(k * per, (k + 1) * per);
      const p = await predictiveProbsReport(r.logits, lam, { C: b.C, method, samples: o.samples, seed: (o.seed ?? 0) + bi, signal: o.signal });
      jittered += p.jitteredRows;
      rows.forEach((i, j) => probs[k].set(p.probs.subarray(i * b.C, (i + 1) * b.C), (row + j) * C));
    }
    rows.forEach((i, j) => (labels[row + j] = b.labels[i]));
    row += rows.length;
    o.onBatch?.(bi);
  }

  const grid = scales.map((scale, k) => {
    const m = computeMetrics(probs[k], labels, C);
    return { scale, acc: m.acc, ece: m.ece, nll: m.nll, brier: m.brier };
  });
  let best = 0;
  for (let k = 1; k < grid.length; k++) if (grid[k][objective] < grid[best][objective]) best = k;
  const scale = grid[best].scale;
  const priorPrecision = base.map((d) => d * scale);
  posterior.setPrior({ deltas: priorPrecision });

  const warnings: string[] = [];
  const lo = Math.min(...scales);
  const hi = Math.max(...scales);
  if (scales.length > 1 && (scale === lo || scale === hi))
    warnings.push(`tunePrior: the best scale ${scale} is at the ${scale === lo ? 'low' : 'high'} end of the grid [${lo}, ${hi}]; widen the scales`);
  if (jittered > 0)
    warnings.push(`tunePrior: Lambda of ${jittered} example-scale pair(s) was not positive definite; diagonal jitter was added before the Cholesky`);
  return { scale, priorPrecision, objective, n: nLabelled, grid, warnings };
}
