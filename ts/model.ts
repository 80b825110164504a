// Model: a LLaMA-family checkpoint loaded natively, with LoRA, forward passes,
// training steps (one native, asynchronous call per batch step), PEFT adapter
// and HF model saving. Every method maps to one native call; errors are
// BayesLoraError with a stable code (BUSY when another call on the same model
// is still running, DISPOSED after dispose()).
import type { LmBatch, McBatch } from './data/batch.ts';
import { native, nativeAsync } from './errors.ts';
import { resolveLoraConfig, type LoraConfig } from './lora.ts';
import { loadNative, type NativeAddon } from './native.ts';

export interface LoadOptions {
  /** 'cpu' (default) or 'cuda'. */
  backend?: 'cpu' | 'cuda';
  /** Make every base weight trainable (owned f32 copies + gradients), for pre-training. */
  fullTraining?: boolean;
  /**
   * Storage of the frozen linear weights (q/k/v/o/gate/up/down). 'bf16' keeps them as
   * bfloat16 (half the bytes; products with float32 accumulation; an F32/F16 checkpoint
   * is rounded to nearest-even), 'f32' as float32. Default: 'bf16' on 'cuda' when every
   * linear weight in the checkpoint is BF16, else 'f32' (always on 'cpu'). Embeddings,
   * norms, biases and lm_head stay float32; LoRA and optimizer state are always float32.
   * 'bf16' with fullTraining is an INVALID_ARGUMENT error.
   */
  weightDtype?: 'bf16' | 'f32';
  /**
   * true (default): the checkpoint's safetensors files are memory-mapped, zero-copy (pages
   * shared with other processes loading the same files). Overwriting or truncating a
   * mapped file in place while the model lives (`cp`, a writer that truncates, such as
   * Python's safetensors `save_file`) makes the OS kill the process with SIGBUS on the
   * next read; replacing it atomically (write elsewhere, then rename) is safe.
   * false: the files are read into private memory at load, and may change afterwards.
   */
  mmap?: boolean;
}

export interface ForwardResult {
  /** [B*C] class logits: LM-head logits of each example's answer rows at its last real token. */
  logits: Float32Array;
  /** [B*C] softmax over the C classes. */
  probs: Float32Array;
  /** Mean cross-entropy over labelled examples, null when none is labelled. */
  loss: number | null;
  nLabelled: number;
}

export interface OptimizerOptions {
  lr?: number; // default 1e-4
  beta1?: number; // default 0.9
  beta2?: number; // default 0.999
  eps?: number; // default 1e-8
  weightDecay?: number; // default 0 (never applied to norms and biases)
  maxGradNorm?: number; // global-norm clipping, 0 = none (default)
  /** Skip a step with NaN/Inf loss or gradients instead of throwing NUMERICAL_ERROR. */
  skipNonFinite?: boolean;
}

export interface TrainStepOptions extends OptimizerOptions {
  /** The backward seed is gradScale * d(mean loss); use 1/k for k accumulated micro-batches. */
  gradScale?: number;
  /** Apply the optimiser step after accumulating this batch (default true for trainStep). */
  applyStep?: boolean;
}

export interface StepInfo {
  stepped: boolean;
  skipped: boolean;
  /** Global gradient norm before clipping (null when no step was attempted). */
  gradNorm: number | null;
  /** Optimiser steps taken so far. */
  step: number;
}

export type TrainStepResult = ForwardResult & StepInfo;

export interface LmResult {
  loss: number | null;
  nTargets: number;
}
export type LmStepResult = LmResult & StepInfo;

export interface LoraModuleWeights {
  path: string; // e.g. model.layers.0.self_attn.q_proj, lm_head
  kind: string; // q_proj ... lm_head
  layer: number; // -1 for lm_head
  r: number;
  dIn: number;
  dOut: number;
  scale: number;
  A: Float32Array; // [r x dIn] row-major
  B: Float32Array; // [dOut x r] row-major
}

export interface LoraMatrixInfo {
  id: number; // dense over all matrices: 2*module (A), 2*module+1 (B)
  module: number;
  path: string;
  isB: boolean;
  dIn: number;
  dOut: number;
}

export interface ObservedMatrix {
  id: number;
  module: number;
  isB: boolean;
  dIn: number;
  dOut: number;
  B: number;
  T: number;
  x: Float32Array; // [B*T x dIn]
  g: Float32Array; // [B*T x dOut]
  mask: Uint8Array | null;
}

export interface ModelConfigInfo {
  architecture: string;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  headDim: number;
  maxPositionEmbeddings: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: { type: string; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number };
  tieWordEmbeddings: boolean;
  attentionBias: boolean;
  slidingWindow: number;
  torchDtype: string;
  bosTokenId: number;
  eosTokenId: number;
  padTokenId: number;
}

export interface ModelInfo {
  config: ModelConfigInfo;
  backend: string;
  numParams: number;
  numLoraParams: number;
  numTrainable: number;
  fullTraining: boolean;
  nativeBytes: number;
  /** Storage of the frozen linear weights as resolved at load ('f32' after enableFullTraining). */
  weightDtype: 'bf16' | 'f32';
  /** Bytes of all base-weight storage, owned or borrowed from the checkpoint mmap (tied once). */
  weightBytes: number;
  optimizerSteps: number;
  lora: null | {
    r: number;
    alpha: number;
    dropout: number;
    useRslora: boolean;
    scale: number;
    seed: number;
    targetModules: string[];
    targetRegex: string | null;
    modules: string[];
  };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type NativeModel = Record<string, any>;

export class Model {
  /** The native object; pass it to other native bindings (e.g. Laplace) that take a model. */
  readonly native: NativeModel;

  private constructor(n: NativeModel) {
    this.native = n;
  }

  /** Load config.json + model.safetensors (or a sharded index) from `dir`. */
  static async load(dir: string, opts: LoadOptions = {}): Promise<Model> {
    const addon: NativeAddon = loadNative();
    const nopts: Record<string, unknown> = { backend: opts.backend ?? 'cpu', fullTraining: opts.fullTraining ?? false };
    if (opts.weightDtype !== undefined) nopts.weightDtype = opts.weightDtype;
    if (opts.mmap !== undefined) nopts.mmap = opts.mmap;
    const n = await nativeAsync(() => addon.Model.load(dir, nopts));
    return new Model(n as NativeModel);
  }

  /** Add LoRA to every targeted module (once). Returns the resolved config. */
  addLora(config: Partial<LoraConfig> = {}): LoraConfig {
    const c = resolveLoraConfig(config);
    native(() => this.native.addLora(c));
    return c;
  }

  removeLora(): void {
    native(() => this.native.removeLora());
  }

  /** Make all base weights trainable (pre-training / full fine-tuning). */
  enableFullTraining(): void {
    native(() => this.native.enableFullTraining());
  }

  /**
   * Forward pass; evaluation (no dropout) unless `train`, which applies LoRA
   * dropout with masks fixed by `dropoutStep` (e.g. MC dropout, tests).
   */
  forward(batch: McBatch, opts: { train?: boolean; dropoutStep?: number } = {}): Promise<ForwardResult> {
    return nativeAsync(() => this.native.forward(batch, opts));
  }

  /** Forward (training mode) + backward + AdamW step, in one native call. */
  trainStep(batch: McBatch, opts: TrainStepOptions = {}): Promise<TrainStepResult> {
    return nativeAsync(() => this.native.trainStep(batch, opts));
  }

  /** Forward (training mode) + backward, accumulating gradients (no optimiser step). */
  backward(batch: McBatch, opts: { gradScale?: number; skipNonFinite?: boolean } = {}): Promise<TrainStepResult> {
    return nativeAsync(() => this.native.backward(batch, opts));
  }

  /** Clip + AdamW step on the accumulated gradients, then zero them. */
  optimizerStep(opts: OptimizerOptions = {}): Promise<StepInfo> {
    return nativeAsync(() => this.native.optimizerStep(opts));
  }

  /** Forget AdamW moments and the step count; zero gradients. */
  resetOptimizer(): void {
    native(() => this.native.resetOptimizer());
  }

  zeroGrads(): void {
    native(() => this.native.zeroGrads());
  }

  /** Next-token training step (LoRA or, after enableFullTraining, all weights). */
  lmStep(batch: LmBatch, opts: TrainStepOptions = {}): Promise<LmStepResult> {
    return nativeAsync(() => this.native.lmStep(batch, opts));
  }

  /** Mean next-token loss (evaluation, no gradients). */
  lmLoss(batch: LmBatch): Promise<LmResult> {
    return nativeAsync(() => this.native.lmLoss(batch));
  }

  /**
   * Low level: backward from a given seed dlogits [B*C] after forward(); may be
   * called repeatedly after one forward. Gradients are zeroed first unless accumulate.
   */
  backwardSeed(dlogits: Float32Array, opts: { accumulate?: boolean; paramGrads?: boolean } = {}): Promise<void> {
    return nativeAsync(() => this.native.backwardSeed(dlogits, opts));
  }

  /** Low level: a backward pass from `dlogits` recording each LoRA matrix's inputs and output gradients. */
  observeBackward(dlogits: Float32Array): Promise<ObservedMatrix[]> {
    return nativeAsync(() => this.native.observeBackward(dlogits));
  }

  loraMatrices(): LoraMatrixInfo[] {
    return native(() => this.native.loraMatrices());
  }

  getLoraWeights(): LoraModuleWeights[] {
    return native(() => this.native.getLoraWeights());
  }

  getLoraGrads(): LoraModuleWeights[] {
    return native(() => this.native.getLoraGrads());
  }

  /** Set A and/or B of modules by path; all entries are validated before any is written. */
  setLoraWeights(entries: readonly { path: string; A?: Float32Array; B?: Float32Array }[]): void {
    native(() => this.native.setLoraWeights(entries));
  }

  weightNames(): string[] {
    return native(() => this.native.weightNames());
  }

  getWeight(name: string): Float32Array {
    return native(() => this.native.getWeight(name));
  }

  /** Full-training mode only. */
  setWeight(name: string, data: Float32Array): void {
    native(() => this.native.setWeight(name, data));
  }

  /** Full-training mode only. */
  getWeightGrad(name: string): Float32Array {
    return native(() => this.native.getWeightGrad(name));
  }

  /** PEFT adapter: adapter_config.json + adapter_model.safetensors. */
  saveAdapter(dir: string): Promise<void> {
    return nativeAsync(() => this.native.saveAdapter(dir));
  }

  /** Load a PEFT adapter (adds LoRA from its config when the model has none). */
  loadAdapter(dir: string): Promise<void> {
    return nativeAsync(() => this.native.loadAdapter(dir));
  }

  /** Whole model in HF layout (config.json + model.safetensors, f32; LoRA not merged). */
  saveModel(dir: string): Promise<void> {
    return nativeAsync(() => this.native.saveModel(dir));
  }

  info(): ModelInfo {
    return native(() => this.native.info());
  }

  /** Free native memory now. Idempotent; later calls fail with DISPOSED. */
  dispose(): void {
    native(() => this.native.dispose());
  }

  get disposed(): boolean {
    return native(() => this.native.isDisposed());
  }
}
