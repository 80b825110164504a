// The GPU benchmark of issue 5 (plain .mjs: runs with a bare node on the lent
// GPU machine): a LLaMA2-7B-shaped model with random bf16 weights (32 layers,
// d 4096, ffn 11008, 32 heads, no GQA, vocab 32000), multiple-choice batches
// of 8 x 512 tokens (every sequence full length), LoRA r = 8 on q_proj,
// v_proj and lm_head. Measures, in one run on the same data:
//   train   training-step tokens/s (trainStep: forward, backward, AdamW) and
//           MFU against the H200's dense bf16 peak (989 TFLOP/s; FLOPs below)
//   fit     Laplace K-FAC fit (sampled Fisher, m = 1, tokens 'reduce',
//           nKfac 10, marglik prior) seconds vs one training epoch
//   memory  posterior bytes (eigen form) vs training peak bytes
//   predict linearised predictive (one forward, C backward passes, 'mc' link
//           with 1000 samples) seconds per example
// and writes JSON (--out, default bench/results/gpu.json).
//
// The library loads models only from files, so the weights are written first
// as a random safetensors checkpoint (test/gpu/random-model.mjs) into
// /dev/shm when it has room, else the temp dir. The model loads with the bf16
// frozen-weight store (--weight-dtype bf16, the default): q/k/v/o/gate/up/down
// stay bfloat16 in backend memory (half the bytes of float32) and the frozen
// GEMMs run as Backend::gemm_bf16w (bf16 tensor cores, float32 accumulation);
// embeddings, norms and lm_head stay float32. --weight-dtype f32 widens every
// weight to float32 (float32 cuBLAS GEMMs, TF32 tensor cores with --tf32).
//
// FLOPs counted per training step (MFU numerator), N = B*T tokens:
//   frozen linears: forward 2*N*P_layer per layer; backward input gradient
//     2*N*P_layer, except layer 0's q/k/v (nothing below needs their input
//     gradient); no weight gradients (frozen);
//   causal attention: forward 2*B*T*(T+1)*H*hd (QK^T, PV over visible keys),
//     backward twice that;
//   LoRA: forward 2*N*r*(d_in+d_out), backward 4*N*r*(d_in+d_out) per module;
//   LM head: B*C answer rows only (multiple choice), negligible, not counted.
// RMSNorm, RoPE, SwiGLU, softmax and AdamW are memory-bound and not counted.
//
// Usage: node test/gpu/bench7b.mjs [--device cuda|cpu] [--layers N] [--hidden D]
//   [--ffn I] [--heads H] [--vocab V] [--batch B] [--seq T] [--batches N]
//   [--predict-batches N] [--budget-s S] [--tf32] [--weight-dtype bf16|f32] [--out FILE]
// CPU smoke test of the script (tiny shape): see docs/gpu.md.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { writeRandomLlama, llamaParamCount, rng } from './random-model.mjs';

const t00 = performance.now();
const args = process.argv.slice(2);
function flag(name, def) {
  const i = args.findIndex((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  if (i < 0) return def;
  const v = args[i].includes('=') ? args[i].slice(args[i].indexOf('=') + 1) : args[i + 1];
  if (typeof def === 'number') {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`bench7b: --${name} needs a positive number, got ${v}`);
    return n;
  }
  return v;
}
const has = (name) => args.includes(`--${name}`);

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const S = {
  device: flag('device', 'cuda'),
  layers: flag('layers', 32),
  hidden: flag('hidden', 4096),
  ffn: flag('ffn', 11008),
  heads: flag('heads', 32),
  vocab: flag('vocab', 32000),
  batch: flag('batch', 8),
  seq: flag('seq', 512),
  batches: flag('batches', 4),
  predictBatches: flag('predict-batches', 1),
  budget: flag('budget-s', 240),
  classes: 4,
  r: 8,
  nKfac: 10,
  tf32: has('tf32'),
  weightDtype: flag('weight-dtype', 'bf16'),
  out: flag('out', path.join(root, 'bench/results/gpu.json')),
};
const PEAK_BF16 = 989e12;  // H200 SXM dense bf16 tensor-core peak, FLOP/s
const log = (m) => console.error(`bench7b [${((performance.now() - t00) / 1000).toFixed(1)}s]: ${m}`);

// TF32 is read when the CUDA context is created: set it before loading.
if (S.tf32) process.env.BAYESLORA_TF32 = '1';
if (S.weightDtype !== 'bf16' && S.weightDtype !== 'f32') throw new Error(`bench7b: --weight-dtype must be bf16 or f32, got ${S.weightDtype}`);
const require = createRequire(import.meta.url);
const addonPath = process.env.BAYESLORA_ADDON
  ? path.resolve(process.env.BAYESLORA_ADDON)
  : path.join(root, 'build', 'Release', 'bayeslora.node');
const addon = require(addonPath);
const info = addon.info();
if (S.device === 'cuda' && !info.cudaUsable) {
  console.error(`bench7b: CUDA not usable: ${info.cuda}`);
  process.exit(1);
}

function mcBatch(u, B, T, C, V) {
  const ids = Int32Array.from({ length: B * T }, () => Math.floor(u() * V));
  const rows = Int32Array.from({ length: B * C }, () => Math.floor(u() * V));
  return {
    B, T, C, ids,
    mask: new Uint8Array(B * T).fill(1),
    last: new Int32Array(B).fill(T - 1),
    rows,
    labels: Int32Array.from({ length: B }, () => Math.floor(u() * C)),
  };
}
const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN;
};
function scratchDir() {
  // /dev/shm (RAM) when it can hold the file with room to spare: no disk I/O.
  const need = S.layers * (4 * S.hidden * S.hidden + 3 * S.hidden * S.ffn) * 2 + 2 * S.vocab * S.hidden * 2;
  try {
    const st = fs.statfsSync('/dev/shm');
    if (st.bavail * st.bsize > 1.5 * need) return fs.mkdtempSync('/dev/shm/bl-bench7b-');
  } catch { /* no /dev/shm */ }
  return fs.mkdtempSync(path.join(os.tmpdir(), 'bl-bench7b-'));
}
function gpuMemoryUsed() {
  try {
    const s = execFileSync('nvidia-smi', ['--query-gpu=memory.used,memory.total', '--format=csv,noheader,nounits'], { encoding: 'utf8', timeout: 10000 });
    const [used, total] = s.trim().split('\n')[0].split(',').map((x) => Number(x) * 2 ** 20);
    return { used_bytes: used, total_bytes: total };
  } catch {
    return null;
  }
}

const shape = { vocab: S.vocab, hidden: S.hidden, intermediate: S.ffn, layers: S.layers, heads: S.heads, kvHeads: S.heads };
const result = {
  what: 'issue 5 GPU benchmark: LLaMA2-7B-shaped random bf16 model, LoRA r=8 on q_proj, v_proj, lm_head',
  started: new Date().toISOString(),
  device: S.device,
  addon: { path: addonPath, info },
  setup: { ...shape, batch: S.batch, seq: S.seq, classes: S.classes, lora_r: S.r, lora_alpha: 16, n_kfac: S.nKfac,
    tokens: 'reduce', fisher: 'sampled (m = 1)', prior: 'marglik', predict: 'mc, 1000 samples',
    tf32: S.tf32, checkpoint_dtype: 'BF16',
    weights_in_memory: S.weightDtype === 'bf16'
      ? 'bf16 linear weights (gemm_bf16w, float32 accumulation); embeddings, norms, lm_head float32'
      : 'float32 (widened at load)' },
};
function save() {
  fs.mkdirSync(path.dirname(S.out), { recursive: true });
  fs.writeFileSync(S.out, JSON.stringify(result, null, 2) + '\n');
}

// ---- checkpoint ---------------------------------------------------------------------------
const dir = scratchDir();
let model;
try {
  let t = performance.now();
  const w = writeRandomLlama(dir, { ...shape, dtype: 'BF16', seed: 7, std: 0.02, maxPositions: Math.max(4096, S.seq) });
  const params = llamaParamCount(w.config);
  result.params = params;
  result.checkpoint = { bytes: w.bytes, dir, write_s: (performance.now() - t) / 1000 };
  log(`wrote ${(w.bytes / 2 ** 30).toFixed(2)} GiB (${(params / 1e9).toFixed(2)}B params) in ${result.checkpoint.write_s.toFixed(1)} s to ${dir}`);

  t = performance.now();
  model = await addon.Model.load(dir, { backend: S.device, weightDtype: S.weightDtype });
  result.load_s = (performance.now() - t) / 1000;
  const li = model.info();
  result.weights = { dtype: li.weightDtype, bytes: li.weightBytes };
  log(`loaded on ${S.device} in ${result.load_s.toFixed(1)} s (${li.weightDtype} store, ${(li.weightBytes / 2 ** 30).toFixed(2)} GiB of weights)`);
  // The file is not needed once the weights are in backend memory. (The CPU
  // bf16 store borrows the BF16 tensors from the mmap; removing the file keeps
  // a mapping valid on Linux, the pages stay until the model is disposed.)
  fs.rmSync(dir, { recursive: true, force: true });
  model.addLora({ r: S.r, alpha: 16, dropout: 0, targetModules: ['q_proj', 'v_proj', 'lm_head'], seed: 1 });

  // ---- FLOPs per training step ------------------------------------------------------------------
  const d = S.hidden, I = S.ffn, L = S.layers, B = S.batch, T = S.seq, N = B * T, hd = d / S.heads;
  const pLayer = 4 * d * d + 3 * d * I;
  const qkv = 3 * d * d;
  const linear = 2 * N * pLayer * L + 2 * N * (pLayer * L - qkv);
  const attention = 3 * 2 * B * T * (T + 1) * S.heads * hd * L;
  const lora = 6 * N * S.r * (2 * d) * 2 * L;  // q_proj and v_proj: d_in = d_out = d
  const stepFlops = linear + attention + lora;
  result.flops_per_step = { total: stepFlops, frozen_linear: linear, attention, lora };

  // ---- data ---------------------------------------------------------------------------------------
  const u = rng(2024);
  const data = Array.from({ length: S.batches }, () => mcBatch(u, B, T, S.classes, S.vocab));
  const adam = { lr: 1e-4 };

  // Warm-up (sizes the workspace, first cuBLAS calls) and budget.
  let t0 = performance.now();
  await model.trainStep(data[0], adam);
  const warm = (performance.now() - t0) / 1000;
  log(`warm-up step ${warm.toFixed(2)} s`);
  // The rest costs about: epoch (n steps) + fit (~1.2 n steps) + predict
  // ((1 + C) forward/backward per batch) ~ (2.2 n + 3 p) steps.
  const left = S.budget - (performance.now() - t00) / 1000;
  const fitsN = Math.floor((left / Math.max(warm, 1e-3) - 3 * S.predictBatches) / 2.2);
  const nb = Math.max(1, Math.min(S.batches, fitsN));
  const np = Math.max(1, Math.min(S.predictBatches, nb));
  if (nb < S.batches) log(`budget ${S.budget} s: ${nb} of ${S.batches} batches`);
  const batches = data.slice(0, nb);
  result.setup.batches = nb;
  result.setup.examples = nb * B;

  // ---- training epoch -------------------------------------------------------------------------------
  // Device bytes in the backend's buffers (addon.cudaMemory), peaks bracketed
  // per phase: the training epoch, then fit + prior + predictive on top.
  const devMem = (reset = false) => (S.device === 'cuda' && addon.cudaMemory ? addon.cudaMemory(reset) : null);
  devMem(true);
  const steps = [];
  t0 = performance.now();
  for (const b of batches) {
    const s0 = performance.now();
    await model.trainStep(b, adam);
    steps.push((performance.now() - s0) / 1000);
  }
  const epoch = (performance.now() - t0) / 1000;
  const step = median(steps);
  const mi = model.info();
  const devTrain = devMem(true);
  result.train = {
    epoch_s: epoch,
    step_s: { median: step, min: Math.min(...steps), max: Math.max(...steps), n: steps.length },
    warmup_step_s: warm,
    tokens_per_s: N / step,
    achieved_tflops: stepFlops / step / 1e12,
    mfu_vs_bf16_peak: stepFlops / step / PEAK_BF16,
    peak_flops: PEAK_BF16,
    native_bytes: mi.nativeBytes,
    device_memory: S.device === 'cuda' ? gpuMemoryUsed() : null,
  };
  log(`train: ${result.train.tokens_per_s.toFixed(0)} tokens/s, ${result.train.achieved_tflops.toFixed(1)} TFLOP/s, MFU ${(100 * result.train.mfu_vs_bf16_peak).toFixed(1)}%`);
  save();

  // ---- Laplace fit (sampled Fisher) -------------------------------------------------------------------
  t0 = performance.now();
  const layers = addon.laplaceModelLayers(model, {});
  const acc = new addon.KfacAccumulator({ layers, tokens: 'reduce', threshold: 512, nKfac: S.nKfac });
  let logLik = 0;
  for (let i = 0; i < batches.length; i++)
    logLik += (await acc.fitBatch(model, batches[i], { fisher: 'sampled', samples: 1, seed: 3, batchIndex: i })).logLik;
  const tFisher = performance.now();
  const post = await acc.posterior({ delta: 1 });
  post.setFisher('sampled');
  const st = addon.laplaceAdapterState(model).thetaNormSq;
  const theta = Float64Array.from(post.layers().map((l) => st[l.id]));
  const prior = await post.optimizePrior({ logLik, thetaNormSq: theta, perLayer: false, min: 1e-8, max: 1e8 });
  const fit = (performance.now() - t0) / 1000;
  const postBytes = post.memoryBytes();
  const trainPeak = mi.nativeBytes;
  result.fit = {
    fit_s: fit,
    fisher_s: (tFisher - t0) / 1000,
    posterior_and_prior_s: (performance.now() - tFisher) / 1000,
    ratio_to_epoch: fit / epoch,
    log_marglik: prior.logMarglik,
    prior_precision: prior.deltas[0],
    layers: layers.length,
    accumulator_bytes: acc.memory().currentBytes,
  };
  result.memory = {
    posterior_bytes: postBytes,
    train_peak_bytes: trainPeak,
    train_peak_source: 'Model.info().nativeBytes after the epoch: base weights (bf16 or float32 store), workspace, LoRA weights + gradients, AdamW moments (backend memory)',
    ratio: postBytes / trainPeak,
    // Every device buffer (addon.cudaMemory: weights, activations, gradients,
    // optimizer state, K-FAC factors, posterior), peak over the epoch and
    // over fit + prior + predictive (filled in after the predictive).
    device_train_peak_bytes: devTrain ? devTrain.peakBytes : null,
    device_laplace_peak_bytes: null,
    device_overhead: null,
  };
  log(`fit ${fit.toFixed(2)} s (${(fit / epoch).toFixed(2)}x epoch), posterior ${(postBytes / 2 ** 20).toFixed(1)} MiB = ${(100 * postBytes / trainPeak).toFixed(3)}% of training`);
  save();

  // ---- predictive --------------------------------------------------------------------------------------
  const per = [];
  for (let i = 0; i < np; i++) {
    const p0 = performance.now();
    const { logits, lambda } = await post.predictBatch(model, batches[i], {});
    await addon.predictiveProbs(logits, lambda, { C: S.classes, method: 'mc', samples: 1000, seed: 1 });
    per.push((performance.now() - p0) / 1000 / B);
  }
  result.predict = { s_per_example: median(per), batches: np, per_batch_s_per_example: per };
  log(`predict ${(1000 * result.predict.s_per_example).toFixed(1)} ms per example`);
  const devLaplace = devMem();
  if (devTrain && devLaplace) {
    result.memory.device_laplace_peak_bytes = devLaplace.peakBytes;
    result.memory.device_overhead = Math.max(0, devLaplace.peakBytes - devTrain.peakBytes) / devTrain.peakBytes;
    log(`device peak: training ${(devTrain.peakBytes / 2 ** 30).toFixed(3)} GiB, fit + predictive ${(devLaplace.peakBytes / 2 ** 30).toFixed(3)} GiB (overhead ${(100 * result.memory.device_overhead).toFixed(2)}%)`);
  }

  result.targets = {
    mfu: '>= 0.35',
    mfu_ok: result.train.mfu_vs_bf16_peak >= 0.35,
    fit_vs_epoch: '<= 1.1',
    fit_ok: result.fit.ratio_to_epoch <= 1.1,
    posterior_memory: '<= 0.01 of training peak',
    memory_ok: result.memory.ratio <= 0.01,
  };
  result.elapsed_s = (performance.now() - t00) / 1000;
  save();
  post.dispose();
  acc.dispose();
  log(`wrote ${S.out}`);
} finally {
  if (model) model.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
}
