// Low-level Laplace API for any Node ML stack: feed per-layer inputs and
// output gradients into a K-FAC accumulator, build the eigen-form posterior,
// ask for log-determinants, quadratic forms, the marginal likelihood and its
// optimum, logit covariances from Jacobians, and predictive probabilities.
// All numerics are native (cpp/laplace); this file only types and forwards.
import { loadNative } from '../native.ts';
import { native, nativeAsync } from '../errors.ts';
import { cancellable } from '../abort.ts';
import type { McBatch } from '../data/batch.ts';

/** Anything carrying a native Model object (the Model class of ts/model.ts). */
export interface HasNativeModel {
  readonly native: unknown;
}

export type TokenHandling = 'reduce' | 'expand' | 'aligned';
export type PredictiveMethod = 'mc' | 'probit' | 'bridge' | 'map';

export interface KfacLayerSpec {
  name: string;
  /** Columns of the weight (input side). */
  dIn: number;
  /** Rows of the weight (output-gradient side). */
  dOut: number;
  /** LoRA matrix id this layer observes in a model's backward pass (default: its index). */
  id?: number;
}

export interface KfacOptions {
  layers: KfacLayerSpec[];
  /**
   * 'reduce' (default, the spec's): one row per example (mean input, summed gradient); 'expand': one row per
   * real token; 'aligned' (extension, cpp/laplace/kfac.h): per example and pass the least-squares rank-1 fit
   * g~ x^T of the Jacobian with g~ the summed gradient (inputs needed on every pass; Z sums gradient energy).
   */
  tokens?: TokenHandling;
  /** A factor side d > threshold is kept low rank (default 512). */
  threshold?: number;
  /** Rank of low-rank factors (default 10). */
  nKfac?: number;
  /** Columns buffered before each low-rank compression (default max(2 nKfac, 64)). */
  chunk?: number;
}

export interface AddOptions {
  B: number;
  T?: number;
  /** [B*T], 1 = real token. */
  mask?: Uint8Array;
  /** Weight of this pass's gradient outer products (e.g. 1/m for m sampled labels). Default 1. */
  weight?: number;
  /** Add x to the input factor and count the examples/tokens (default true). Pass false for the 2nd..Cth pass of an example. */
  accumulateInputs?: boolean;
}

export interface FactorView {
  kind: 'dense' | 'lowrank';
  d: number;
  /** Columns of `data`: d for dense, the current rank for low rank. */
  k: number;
  /** Dense: S (d x d); low rank: L (d x k) with L L^T ~= S. Row-major float64 copy. */
  data: Float64Array;
}

export interface PriorFit {
  deltas: Float64Array;
  logMarglik: number;
  iterations: number;
}

export interface PosteriorLayerInfo {
  name: string;
  id: number;
  dIn: number;
  dOut: number;
  count: number;
  ka: number;
  kg: number;
}

export interface MarglikInputs {
  /** Training log-likelihood sum_n log p(y_n | x_n, theta*). */
  logLik: number;
  /** ||theta*_l||^2 per layer. */
  thetaNormSq: number[] | Float64Array;
}

type Layer = number | string;

/** The native object, typed loosely. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Raw = any;

export class Posterior {
  /** @internal */
  readonly raw: Raw;
  /** @internal */
  constructor(raw: Raw) {
    this.raw = raw;
  }
  layers(): PosteriorLayerInfo[] {
    return native(() => this.raw.layers());
  }
  numParams(): number {
    return native(() => this.raw.numParams());
  }
  /** Prior precision per layer. */
  prior(): Float64Array {
    return native(() => this.raw.prior());
  }
  setPrior(p: { delta: number } | { deltas: number[] | Float64Array }): void {
    native(() => this.raw.setPrior(p));
  }
  /** log|P| summed over layers. */
  logDet(): number {
    return native(() => this.raw.logDet());
  }
  logDetLayers(): Float64Array {
    return native(() => this.raw.logDetLayers());
  }
  /** vec(J)^T P_l^-1 vec(J2) for J, J2 of shape [dOut x dIn] (J2 defaults to J). */
  quadForm(layer: Layer, J: Float32Array | Float64Array, J2?: Float32Array | Float64Array): number {
    return native(() => this.raw.quadForm(layer, J, J2));
  }
  /** Eigen form of a layer: Ua (dIn x ka), la, Ug (dOut x kg), lg. */
  eigen(layer: Layer): { ua: Float64Array; la: Float64Array; ug: Float64Array; lg: Float64Array; ka: number; kg: number; count: number } {
    return native(() => this.raw.eigen(layer));
  }
  logMarglik(o: MarglikInputs): number {
    return native(() => this.raw.logMarglik(o));
  }
  /** d logMarglik / d log delta: one entry (shared delta) or one per layer. */
  logMarglikGrad(o: { thetaNormSq: number[] | Float64Array; perLayer?: boolean }): Float64Array {
    return native(() => this.raw.logMarglikGrad(o));
  }
  /** Maximise the marginal likelihood over log delta in [min, max]; sets the prior. */
  optimizePrior(o: MarglikInputs & { perLayer?: boolean; min?: number; max?: number; signal?: AbortSignal }): Promise<PriorFit> {
    const { signal, ...rest } = o;
    return cancellable(signal, 'optimizePrior', (cancel) => nativeAsync(() => this.raw.optimizePrior({ ...rest, cancel })));
  }
  /**
   * Logit covariance Lambda [B x C x C] from per-layer Jacobians: jacobians[l] is
   * [B*C*dOut*dIn] (example-major, then class), or null for a layer with none.
   */
  lambda(jacobians: (Float32Array | null)[], o: { C: number; B?: number }): Promise<Float64Array> {
    return nativeAsync(() => this.raw.lambda(jacobians, o));
  }
  /**
   * Mean logits and logit covariance of a multiple-choice batch: one forward
   * and C backward passes of the model, Jacobians projected per layer.
   * With `priorScales` (S values, each > 0), also `lambdaGrid` [S*B*C*C]: the
   * logit covariance with the prior precisions multiplied by each scale, from
   * the same passes (the projections do not depend on the prior).
   */
  predictBatch(
    model: HasNativeModel,
    batch: McBatch,
    o: { signal?: AbortSignal; priorScales?: ArrayLike<number> } = {},
  ): Promise<{ logits: Float32Array; lambda: Float64Array; lambdaGrid?: Float64Array; logLik: number; nLabelled: number }> {
    const opts = o.priorScales === undefined ? {} : { priorScales: Array.from(o.priorScales) };
    return cancellable(o.signal, 'predictBatch', (cancel) => nativeAsync(() => this.raw.predictBatch(model.native, batch, { cancel, ...opts })));
  }
  /** Bytes held by the eigen form (eigenvectors and eigenvalues). */
  memoryBytes(): number {
    return native(() => this.raw.memoryBytes());
  }
  /**
   * Numerical adjustments made to this posterior, in words: a K-FAC factor
   * that was not positive semidefinite beyond rounding (its negative
   * eigenvalues clamped to 0, i.e. diagonal jitter in its eigenbasis), a prior
   * precision clamped into the safe range [1e-12, 1e12]. Empty when none.
   */
  warnings(): string[] {
    return native(() => this.raw.warnings());
  }
  /** Label of the Fisher that produced it (persisted). */
  fisher(): string {
    return native(() => this.raw.fisher());
  }
  setFisher(f: string): void {
    native(() => this.raw.setFisher(f));
  }
  dispose(): void {
    native(() => this.raw.dispose());
  }
  get disposed(): boolean {
    return this.raw.isDisposed();
  }
}

export class KfacAccumulator {
  /** @internal */
  readonly raw: Raw;
  constructor(o: KfacOptions) {
    const n = loadNative();
    // (an already-native accumulator when wrapped by fromRaw)
    this.raw = (o as { raw?: Raw }).raw ?? native(() => new n.KfacAccumulator(o));
  }
  /** @internal Wrap a native accumulator (e.g. from loadLaplace). */
  static fromRaw(raw: Raw): KfacAccumulator {
    return new KfacAccumulator({ raw } as unknown as KfacOptions);
  }
  /**
   * Add one batch for one layer: x [B*T*dIn] inputs, g [B*T*dOut] output gradients,
   * rows b*T + t. x may be null when accumulateInputs is false; g null adds inputs only.
   */
  add(layer: Layer, x: Float32Array | null, g: Float32Array | null, o: AddOptions): Promise<void> {
    return nativeAsync(() => this.raw.add(layer, x, g, o));
  }
  /**
   * Fisher passes of a model over one multiple-choice batch (one forward, then
   * C backward passes for 'exact', m for 'sampled', 1 for 'empirical').
   * Returns the batch's training log-likelihood over labelled examples.
   */
  fitBatch(
    model: HasNativeModel,
    batch: McBatch,
    o: { fisher?: 'exact' | 'sampled' | 'empirical'; samples?: number; seed?: number; batchIndex?: number; signal?: AbortSignal } = {},
  ): Promise<{ logLik: number; nLabelled: number; nExamples: number }> {
    // An aborted batch leaves some of its passes in the accumulator: discard it then.
    const { signal, ...rest } = o;
    return cancellable(signal, 'fitBatch', (cancel) => nativeAsync(() => this.raw.fitBatch(model.native, batch, { ...rest, cancel })));
  }
  /** Add another accumulator's sums and counts (same layers and options). */
  merge(other: KfacAccumulator): Promise<void> {
    return nativeAsync(() => this.raw.merge(other.raw));
  }
  async posterior(o: { delta?: number; deltas?: number[] | Float64Array; signal?: AbortSignal } = {}): Promise<Posterior> {
    const { signal, ...rest } = o;
    const raw = await cancellable(signal, 'posterior', (cancel) => nativeAsync<Raw>(() => this.raw.posterior({ ...rest, cancel })));
    return new Posterior(raw);
  }
  factor(layer: Layer, side: 'A' | 'G'): FactorView {
    return native(() => this.raw.factor(layer, side));
  }
  /** Z per layer: examples (reduce), real tokens (expand) or summed gradient energy w|g~|^2 (aligned). */
  counts(): Float64Array {
    return native(() => this.raw.counts());
  }
  layers(): (Required<KfacLayerSpec> & { lowRankA: boolean; lowRankG: boolean })[] {
    return native(() => this.raw.layers());
  }
  /** Bytes held by the accumulator now and at peak (since creation or resetPeak()). */
  memory(): { currentBytes: number; peakBytes: number } {
    return native(() => this.raw.memory());
  }
  resetPeak(): void {
    native(() => this.raw.resetPeak());
  }
  dispose(): void {
    native(() => this.raw.dispose());
  }
  get disposed(): boolean {
    return this.raw.isDisposed();
  }
}

export interface PredictiveOptions {
  /** Classes; may be omitted when Lambda is given (C = Lambda.length / mu.length). */
  C?: number;
  method?: PredictiveMethod;
  samples?: number;
  seed?: number;
  /** Added to Lambda's diagonal before the Cholesky (mc). */
  eps?: number;
  signal?: AbortSignal;
}

/**
 * predictiveProbs plus what the 'mc' link had to do: rows whose (symmetrised)
 * Lambda + eps I was not positive definite and got diagonal jitter before the
 * Cholesky (1e-10 x mean diagonal, x10 per retry), and the largest jitter.
 */
export function predictiveProbsReport(
  mu: Float32Array | Float64Array,
  Lambda: Float64Array | Float32Array | null,
  o: PredictiveOptions = {},
): Promise<{ probs: Float64Array; jitteredRows: number; maxJitter: number }> {
  const n = loadNative();
  const { signal, ...rest } = o;
  return cancellable(signal, 'predictiveProbs', (cancel) => nativeAsync(() => n.predictiveProbs(mu, Lambda, { ...rest, cancel, report: true })));
}

/** Predictive probabilities [B*C] from mean logits mu [B*C] and Lambda [B*C*C] (null for 'map'). */
export function predictiveProbs(
  mu: Float32Array | Float64Array,
  Lambda: Float64Array | Float32Array | null,
  o: PredictiveOptions = {},
): Promise<Float64Array> {
  const n = loadNative();
  const { signal, ...rest } = o;
  return cancellable(signal, 'predictiveProbs', (cancel) => nativeAsync(() => n.predictiveProbs(mu, Lambda, { ...rest, cancel })));
}
