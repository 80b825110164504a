// Peer benchmark (issue 6, part 1): bayeslora against an idiomatic PyTorch
// implementation (bench/peers/*.py, Debian's python3-torch) on the same
// safetensors checkpoint, the same LoRA weights (a PEFT adapter file), the same
// batches and the same thread count and BLAS. Rows: a training step (forward,
// backward, AdamW), a K-FAC fit (exact Fisher: C backward passes per batch,
// factors, eigen form; fixed prior) and a predictive pass (mean logits,
// Jacobians, Lambda, probit) on the random 20m and 120m models.
//
// Before anything is timed the peer recomputes our numbers: on a tiny model
// (GQA, padding, one low-rank factor side) logits, LoRA gradients, every K-FAC
// factor and Lambda; on the 20m/120m models logits and LoRA gradients. If any
// relative max error exceeds the tolerance the peer refuses to time and the
// row records why. Skipped with a message when /usr/bin/python3 has no torch.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ENGINE_MODELS, type EngineModelSpec } from './engine.ts';
import { measureGemm, type GemmShape } from './gemm.ts';
import { summarize } from './machine.ts';
import { makeTinyCheckpoint, type TinyCheckpointOptions } from '../ts/io/random-checkpoint.ts';
import { writeSafetensorsFile, type TensorToWrite } from '../ts/io/safetensors.ts';
import { Model } from '../ts/model.ts';
import { Laplace } from '../ts/laplace/laplace.ts';
import { info, setThreads } from '../ts/info.ts';
import type { McBatch } from '../ts/data/batch.ts';
import { intFlag } from './flags.ts';
import { loadNative } from '../ts/native.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const PYTHON = '/usr/bin/python3';
const PEER = path.join(here, 'peers', 'peer.py');
const C = 4;
const LORA = { r: 8, alpha: 16, targets: ['q_proj', 'v_proj', 'lm_head'] };
const TOL = 1e-3;
const TARGET_RATIO = 1.5;

interface Case {
  name: string;
  ckpt: TinyCheckpointOptions;
  B: number;
  T: number;
  batches: number;
  /** Right padding on odd examples (tiny parity only). */
  pad: boolean;
  /** Full parity (factors, Lambda) instead of logits + gradients. */
  full: boolean;
  nKfac: number;
}

const secs = (t0: number) => (performance.now() - t0) / 1000;

function lcg(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

function makeData(vocab: number, c: Case, seed: number): McBatch[] {
  const rnd = lcg(seed);
  const out: McBatch[] = [];
  for (let k = 0; k < c.batches; k++) {
    const { B, T } = c;
    const last = new Int32Array(B).map((_, b) => (c.pad && b % 2 ? T - 1 - ((3 * b + k) % (T / 2)) : T - 1));
    const mask = new Uint8Array(B * T).map((_, i) => (i % T <= last[Math.floor(i / T)] ? 1 : 0));
    out.push({
      B,
      T,
      C,
      ids: new Int32Array(B * T).map(() => 4 + Math.floor(rnd() * (vocab - 4))),
      mask,
      last,
      rows: new Int32Array(B * C).map(() => 4 + Math.floor(rnd() * (vocab - 4))),
      labels: new Int32Array(B).map(() => Math.floor(rnd() * C)),
    });
  }
  return out;
}

/** Seeded small random B (LoRA B starts at zero, which would make A's gradients and Jacobians vanish). */
function randomizeB(model: Model, seed: number) {
  const rnd = lcg(seed);
  model.setLoraWeights(
    model.getLoraWeights().map((w) => ({ path: w.path, B: new Float32Array(w.B.length).map(() => (rnd() - 0.5) * 0.04) })),
  );
}

function torchAvailable(): string | null {
  const r = spawnSync(PYTHON, ['-c', 'import torch, functorch; print(torch.__version__)'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** The peer's environment: the same thread count, and OpenBLAS configured as
 * ours loaded it (core type, and the idle-thread timeout our loader sets). */
function threadEnv(n: number): NodeJS.ProcessEnv {
  const s = String(n);
  const g = loadNative().gemmInfo() as { coretypeEnv: string; threadTimeoutEnv: string };
  const blas: Record<string, string> = {};
  if (g.coretypeEnv) blas.OPENBLAS_CORETYPE = g.coretypeEnv;
  if (g.threadTimeoutEnv) blas.OPENBLAS_THREAD_TIMEOUT = g.threadTimeoutEnv;
  // torch's OpenMP threads wait actively by default; next to OpenBLAS's own
  // threads that made the peer's 2-thread runs 2-4x slower than passive
  // waiting on this 2-core machine (20m training step 1.03 s vs 0.27 s), so
  // the peer gets passive waiting (its best setting here) unless set.
  if (!process.env.OMP_WAIT_POLICY) blas.OMP_WAIT_POLICY = 'PASSIVE';
  return { ...process.env, ...blas, OMP_NUM_THREADS: s, OPENBLAS_NUM_THREADS: s, MKL_NUM_THREADS: s, BAYESLORA_THREADS: s };
}

/** Reference values for the peer's parity check (safetensors; factors as dense S, F64 stored as F32 pairs avoided: F32). */
async function references(model: Model, data: McBatch[], c: Case, delta: number, file: string): Promise<{ count: number }> {
  const t: TensorToWrite[] = [];
  const b = data[0];
  const fw = await model.forward(b);
  t.push({ name: 'logits', dtype: 'F32', shape: [b.B, C], data: fw.logits });
  model.zeroGrads();
  await model.backward(b);
  for (const g of model.getLoraGrads()) {
    t.push({ name: `grad.${g.path}.lora_A`, dtype: 'F32', shape: [g.r, g.dIn], data: g.A });
    t.push({ name: `grad.${g.path}.lora_B`, dtype: 'F32', shape: [g.dOut, g.r], data: g.B });
  }
  model.zeroGrads();
  let count = 0;
  if (c.full) {
    const la = await Laplace.fit(model, data, { fisher: 'exact', prior: delta, nKfac: c.nKfac, tokens: 'reduce' });
    try {
      count = Math.max(...la.accumulator.counts());
      for (const l of la.accumulator.layers()) {
        for (const side of ['A', 'G'] as const) {
          const f = la.accumulator.factor(l.name, side);
          const S = new Float32Array(f.d * f.d);
          if (f.kind === 'dense') S.set(f.data);
          else
            for (let i = 0; i < f.d; i++)
              for (let j = 0; j < f.d; j++) {
                let s = 0;
                for (let q = 0; q < f.k; q++) s += f.data[i * f.k + q] * f.data[j * f.k + q];
                S[i * f.d + j] = s;
              }
          t.push({ name: `factor.${l.name}.${side}`, dtype: 'F32', shape: [f.d, f.d], data: S });
        }
      }
      const p = await la.predict(b, { method: 'probit' });
      t.push({ name: 'lambda', dtype: 'F32', shape: [b.B, C, C], data: Float32Array.from(p.lambda) });
      t.push({ name: 'probs', dtype: 'F32', shape: [b.B, C], data: Float32Array.from(p.probs) });
    } finally {
      la.dispose();
    }
  }
  writeSafetensorsFile(file, t, { format: 'pt' });
  return { count };
}

interface Timing {
  median: number;
  min: number;
  max: number;
  n: number;
}

async function timeOurs(model: Model, data: McBatch[], fitBatches: number, nKfac: number, delta: number, reps: { train: number; fit: number; predict: number }) {
  const fb = data.slice(0, fitBatches);
  const fit: number[] = [];
  let la: Laplace | null = null;
  for (let i = 0; i < reps.fit; i++) {
    la?.dispose();
    const t0 = performance.now();
    la = await Laplace.fit(model, fb, { fisher: 'exact', prior: delta, nKfac, tokens: 'reduce' });
    fit.push(secs(t0));
  }
  const predict: number[] = [];
  await la!.predict(data[0], { method: 'probit' }); // warm-up
  for (let i = 0; i < reps.predict; i++) {
    const t0 = performance.now();
    await la!.predict(data[0], { method: 'probit' });
    predict.push(secs(t0));
  }
  la!.dispose();
  const train: number[] = [];
  await model.trainStep(data[0], { lr: 1e-4 }); // warm-up: workspace sizing
  for (let i = 0; i < reps.train; i++) {
    const t0 = performance.now();
    await model.trainStep(data[0], { lr: 1e-4 });
    train.push(secs(t0));
  }
  return { train: summarize(train), fit: summarize(fit), predict: summarize(predict) };
}

function runPeer(job: object, dir: string, threads: number, log: (m: string) => void) {
  const jobFile = path.join(dir, 'job.json');
  writeFileSync(jobFile, JSON.stringify(job));
  const r = spawnSync(PYTHON, [PEER, jobFile], {
    encoding: 'utf8',
    env: threadEnv(threads),
    cwd: path.dirname(PEER),
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) {
    log(`peer failed (exit ${r.status}): ${r.stderr.slice(-2000)}`);
    return { error: `exit ${r.status}: ${r.stderr.slice(-600)}` };
  }
  const line = r.stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line);
}

async function runCase(c: Case, threads: number, reps: { train: number; fit: number; predict: number }, log: (m: string) => void) {
  const dir = mkdtempSync(path.join(os.tmpdir(), `bayeslora-bench-peers-${c.name}-`));
  try {
    const cfg = makeTinyCheckpoint(dir, { arch: 'llama', tie: false, seed: 7, maxPositionEmbeddings: 1024, ...c.ckpt });
    const vocab = cfg.vocab_size as number;
    const model = await Model.load(dir);
    try {
      model.addLora({ r: LORA.r, alpha: LORA.alpha, dropout: 0, targetModules: LORA.targets, seed: 1 });
      randomizeB(model, 11);
      const adapterDir = path.join(dir, 'adapter');
      await model.saveAdapter(adapterDir);
      const data = makeData(vocab, c, 3);
      const dataFile = path.join(dir, 'data.json');
      writeFileSync(
        dataFile,
        JSON.stringify({ batches: data.map((b) => ({ ...b, ids: [...b.ids], mask: [...b.mask], last: [...b.last], rows: [...b.rows], labels: [...b.labels] })) }),
      );
      const delta = 1.0;
      const refFile = path.join(dir, 'ref.safetensors');
      const { count } = await references(model, data, c, delta, refFile);
      const job = {
        threads,
        model_dir: dir,
        adapter: path.join(adapterDir, 'adapter_model.safetensors'),
        lora: LORA,
        data: dataFile,
        tolerance: TOL,
        parity: { ref: refFile, count },
        parity_only: c.full,
        fit: { batches: c.batches, threshold: 512, n_kfac: c.nKfac, delta },
        repeats: reps,
      };
      const tp = performance.now();
      const peer = runPeer(job, dir, threads, log);
      log(`${c.name}: peer ${secs(tp).toFixed(1)} s, parity ${peer.parity ? (peer.parity.ok ? 'ok' : 'FAILED') : 'n/a'} ${JSON.stringify(peer.parity?.rel_max_err ?? peer.error)}`);
      if (c.full || !peer.parity?.ok) return { name: c.name, peer, ours: null };
      const ours = await timeOurs(model, data, c.batches, c.nKfac, delta, reps);
      return { name: c.name, peer, ours };
    } finally {
      model.dispose();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const flag = (args: string[], name: string, def: number): number => intFlag(args, 'peers', name, def);

/**
 * The frozen-weight GEMMs a LoRA training step cannot avoid (LoRA on q_proj,
 * v_proj, lm_head; multiple-choice loss on the last position): the forward
 * Y = X W^T of k, v in every layer and of q, o, gate, up, down in every layer
 * but the last (whose q, o_proj and MLP only need the B answer rows), and the
 * input gradients dX = dY W: k, v in layers 1..L-1, q in 1..L-2, o, gate, up,
 * down in 0..L-2 (nothing below layer 0 trains, and in the last layer only
 * the answer rows carry gradient into q, o and the MLP). Work on B rows,
 * attention, LoRA, norms and the optimiser are left out, so
 * the sum of these GEMMs' times is a lower bound on any implementation's
 * step with this BLAS, and peer_s / floor_s an upper bound on the ratio.
 */
function stepGemms(m: EngineModelSpec, N: number): { shape: GemmShape; count: number }[] {
  const d = m.hidden, I = m.intermediate, L = m.layers;
  const q = m.heads * (d / m.heads), kv = m.kvHeads * (d / m.heads);
  return [
    { shape: { M: N, N: q, K: d, tb: true, label: 'q/o fwd' }, count: 2 * (L - 1) },
    { shape: { M: N, N: kv, K: d, tb: true, label: 'k/v fwd' }, count: 2 * L },
    { shape: { M: N, N: I, K: d, tb: true, label: 'gate/up fwd' }, count: 2 * (L - 1) },
    { shape: { M: N, N: d, K: I, tb: true, label: 'down fwd' }, count: L - 1 },
    { shape: { M: N, N: d, K: q, label: 'q/o dX' }, count: 2 * L - 3 },
    { shape: { M: N, N: d, K: kv, label: 'k/v dX' }, count: 2 * (L - 1) },
    { shape: { M: N, N: d, K: I, label: 'gate/up dX' }, count: 2 * (L - 1) },
    { shape: { M: N, N: I, K: d, label: 'down dX' }, count: L - 1 },
  ];
}

export async function trainingGemmFloor(m: EngineModelSpec, N: number) {
  const list = stepGemms(m, N);
  const g = await measureGemm(list.map((x) => ({ ...x.shape, label: `${m.name} ${x.shape.label} ${x.shape.M}x${x.shape.N}x${x.shape.K}` })), { repeats: 3 });
  let seconds = 0;
  let flops = 0;
  list.forEach((x, i) => {
    const f = 2 * x.shape.M * x.shape.N * x.shape.K;
    flops += f * x.count;
    seconds += (x.count * f) / (g.per_shape[i].gflops * 1e9);
  });
  return { seconds, gflop: flops / 1e9, gflops_per_shape: g.per_shape.map((p, i) => ({ label: p.label, count: list[i].count, gflops: p.gflops })) };
}

/** Flags: --runs=N (repeat the timed comparison N times; rows report medians over runs), --quick (20m only), --model=NAME (tiny parity + that model only, e.g. 120m; for iterating: the peers.json it writes has only that model's rows, so do not commit it), --seq=N (default 128), --batch=N (4), --fit-batches=N (2), --repeats=N (5 train/predict, 3 fit), --threads=N (default: ours). */
export async function run(args: string[] = []): Promise<object> {
  const log = (m: string) => process.stderr.write(`bench peers: ${m}\n`);
  const torchVersion = torchAvailable();
  if (!torchVersion) {
    const msg = `skipped: ${PYTHON} cannot import torch and functorch (apt-get install python3-torch)`;
    log(msg);
    return { skipped: msg, rows: [] };
  }
  const quick = args.includes('--quick');
  // --threads=N: both sides on N threads (ours via setThreads, the peer via
  // torch.set_num_threads and the thread env). On an oversubscribed machine
  // libgomp's waits make torch's 2-thread runs erratic; 1 thread is immune.
  const tArg = args.find((a) => a.startsWith('--threads='));
  if (tArg) setThreads(flag(args, 'threads', 1));
  const gi = info();
  const threads = gi.threads;
  // Like for like only when both sides' large GEMMs are OpenBLAS with the same
  // kernels. With OPENBLAS_CORETYPE forced to an AVX2 core on an AVX-512 CPU
  // ours go to the built-in AVX-512 kernel (info().gemm) while the peer keeps
  // OpenBLAS's AVX2 kernels: a comparison of GEMM kernels, not of the
  // implementations. Said in the output and the JSON; unset the variable (our
  // loader then picks SkylakeX for both sides) for the fair run.
  const likeForLike = gi.gemm === 'blas' || gi.blas === 'builtin';
  const unlike = `ours used the built-in GEMM (${gi.gemmReason}) and the peer OpenBLAS's ${gi.openblasCoretype} kernels`;
  if (!likeForLike) log(`warning: not like for like: ${unlike}; run with OPENBLAS_CORETYPE unset for a fair comparison`);
  const seq = flag(args, 'seq', quick ? 64 : 128);
  const batch = flag(args, 'batch', 4);
  const fitBatches = flag(args, 'fit-batches', 2);
  const r = flag(args, 'repeats', quick ? 3 : 5);
  const reps = { train: r, predict: r, fit: Math.max(1, Math.min(3, r)) };
  const tiny: Case = {
    name: 'tiny',
    ckpt: { vocab: 600, hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 64 },
    B: 2,
    T: 16,
    batches: 2,
    pad: true,
    full: true,
    nKfac: 16,
  };
  const mArg = args.find((a) => a.startsWith('--model='));
  const only = mArg ? mArg.slice('--model='.length) : null;
  if (only !== null && !ENGINE_MODELS.some((m) => m.name === only))
    throw new Error(`bench peers: --model=${only}: unknown model (known: ${ENGINE_MODELS.map((m) => m.name).join(', ')})`);
  const specs = only !== null ? ENGINE_MODELS.filter((m) => m.name === only) : quick ? ENGINE_MODELS.slice(0, 1) : ENGINE_MODELS;
  const cases: Case[] = [
    tiny,
    ...specs.map((s) => ({
      name: s.name,
      ckpt: { vocab: s.vocab, hidden: s.hidden, layers: s.layers, heads: s.heads, kvHeads: s.kvHeads, intermediate: s.intermediate },
      B: batch,
      T: seq,
      batches: fitBatches,
      pad: false,
      full: false,
      nKfac: 10,
    })),
  ];
  // --runs=N: the whole timed comparison N times (the host's noise comes in
  // bursts of seconds to minutes, and one run's ratio near 1.5 is not a
  // verdict); each row then reports the median of the per-run ratios. The
  // tiny case is parity only and runs once.
  const runs = flag(args, 'runs', 1);
  const results: Awaited<ReturnType<typeof runCase>>[] = [];
  const timedRuns: Awaited<ReturnType<typeof runCase>>[][] = [];
  for (const c of cases) {
    const perRun = [];
    for (let k = 0; k < (c.full ? 1 : runs); k++) {
      if (!c.full && runs > 1) log(`${c.name}: run ${k + 1} of ${runs}`);
      perRun.push(await runCase(c, threads, reps, log));
    }
    results.push(perRun[perRun.length - 1]);
    timedRuns.push(perRun);
  }
  // The training step's GEMM floor per model, measured after both sides ran
  // (same threads, same BLAS).
  const floors: Record<string, Awaited<ReturnType<typeof trainingGemmFloor>>> = {};
  for (const s of specs) floors[s.name] = await trainingGemmFloor(s, batch * seq);
  const rows: object[] = [];
  const parity: Record<string, unknown> = {};
  const mid = (a: number[]) => {
    const x = [...a].sort((p, q) => p - q);
    return x.length % 2 ? x[x.length >> 1] : (x[x.length / 2 - 1] + x[x.length / 2]) / 2;
  };
  for (const [ri, res] of results.entries()) {
    parity[res.name] = res.peer.parity ?? { ok: false, error: res.peer.error };
    if (res.name === 'tiny') continue;
    for (const task of ['train', 'fit', 'predict'] as const) {
      // Per run: ours, the peer's median and their ratio; the row takes the
      // medians over runs (equal to the single run's values when runs = 1).
      const per = timedRuns[ri]
        .map((r) => ({ ours: (r.ours?.[task] ?? null) as Timing | null, peer: (r.peer.times?.[task] ?? null) as Timing | null }))
        .filter((x): x is { ours: Timing; peer: Timing } => x.ours !== null && x.peer !== null);
      const last = timedRuns[ri][timedRuns[ri].length - 1];
      const ours: Timing | null = per.length ? { ...per[per.length - 1].ours, median: mid(per.map((x) => x.ours.median)) } : (last.ours?.[task] ?? null);
      const peer: Timing | null = per.length ? { ...per[per.length - 1].peer, median: mid(per.map((x) => x.peer.median)) } : (last.peer.times?.[task] ?? null);
      const runRatios = per.map((x) => x.peer.median / x.ours.median);
      const ratio = runRatios.length ? mid(runRatios) : null;
      rows.push({
        model: res.name,
        task: { train: 'training step', fit: 'K-FAC fit', predict: 'predictive pass' }[task],
        ours_s: ours?.median ?? null,
        peer_s: peer?.median ?? null,
        ratio,
        ours_spread: ours ? { min: ours.min, max: ours.max, n: ours.n } : null,
        peer_spread: peer ? { min: peer.min, max: peer.max, n: peer.n } : null,
        ...(runs > 1 ? { run_ratios: runRatios, met_in_runs: `${runRatios.filter((x) => x >= TARGET_RATIO).length} of ${runRatios.length}` } : {}),
        met: ratio !== null ? ratio >= TARGET_RATIO : false,
        ...(task === 'train' && floors[res.name]
          ? {
              gemm_floor_s: floors[res.name].seconds,
              max_ratio: peer ? peer.median / floors[res.name].seconds : null,
              ours_over_floor: ours ? ours.median / floors[res.name].seconds : null,
            }
          : {}),
        note: res.peer.parity?.ok ? undefined : 'not timed: parity failed or peer error',
      });
    }
  }
  const peerInfo = results.find((x) => x.peer.torch)?.peer;
  return {
    like_for_like: likeForLike ? true : `no: ${unlike}`,
    setup: {
      lora: LORA,
      classes: C,
      batch,
      seq,
      fit_examples: fitBatches * batch,
      fisher: 'exact',
      tokens: 'reduce',
      n_kfac: 10,
      threshold: 512,
      prior_precision: 1.0,
      predictive: 'probit (Lambda from Jacobians; ours: JacobianProjector, peer: functorch.jacrev + eigen projections)',
      train_step: 'forward + cross-entropy + backward + AdamW(lr 1e-4, wd 0)',
      repeats: reps,
      runs,
      timing: 'median of repeats (one untimed warm-up for train and predict); ratio = peer_s / ours_s; with runs > 1 the whole comparison ran that many times and ratio, ours_s and peer_s are medians over runs (run_ratios lists each; the spreads are from the last run)',
      threads,
      thread_env: 'OMP_NUM_THREADS = OPENBLAS_NUM_THREADS = MKL_NUM_THREADS = BAYESLORA_THREADS = threads; torch.set_num_threads(threads); OPENBLAS_CORETYPE and OPENBLAS_THREAD_TIMEOUT as our process loaded OpenBLAS with; OMP_WAIT_POLICY=PASSIVE for the peer unless set (its best setting here)',
      peer_env: (({ OPENBLAS_CORETYPE, OPENBLAS_THREAD_TIMEOUT, OMP_WAIT_POLICY }) => ({ OPENBLAS_CORETYPE, OPENBLAS_THREAD_TIMEOUT, OMP_WAIT_POLICY }))(threadEnv(threads)),
      parity_tolerance: TOL,
      gemm_floor:
        'training step only: the summed time of its unavoidable full-row frozen-weight GEMMs (forward X W^T of k/v in every layer and of q/o/gate/up/down in all but the last; input gradients dY W of k/v in layers 1..L-1, q in 1..L-2, o/gate/up/down in 0..L-2), each shape timed with the engine GEMM at the same threads; max_ratio = peer_s / gemm_floor_s bounds what any implementation on this BLAS could reach',
      gemm_floor_detail: floors,
      parity_checks: 'tiny (vocab 600, d 32, 2 layers, GQA 4/2 heads, right padding, lm_head G side low rank, nKfac 16): logits, LoRA grads, all K-FAC factors (low rank as L L^T), Lambda, probit probs; 20m/120m: logits and LoRA grads',
    },
    peer: {
      python: PYTHON,
      torch: torchVersion,
      threads: peerInfo?.threads ?? null,
      parallel_info: peerInfo?.parallel ?? null,
      blas: 'torch BLAS_INFO=generic -> libblas.so.3 alternative (see machine.blas for the library it resolves to)',
    },
    parity,
    rows,
    targets: { ratio_min: TARGET_RATIO, all_met: rows.length > 0 && rows.every((x) => (x as { met: boolean }).met) },
  };
}
