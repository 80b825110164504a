// Where the Laplace phase's peak memory comes from (diagnostic for the memory
// bench, bench/memory.ts): runs the memory bench's LoRA + Laplace
// configuration in THIS process, phase by phase, and reports for each phase
// its own peak RSS (VmHWM is reset between phases through
// /proc/self/clear_refs), the RSS after it, the native byte counters (model,
// K-FAC accumulator, posterior, V8's external total) and glibc's heap
// statistics (held vs in use), so growth can be told apart from
// freed-but-held pages.
//   node --import tsx bench/memory-phases.ts [--model=5m|20m|120m] [--threshold=N] [--trim]
// (writes the checkpoint, then re-runs itself with --dir=<checkpoint> in a fresh process)
// --trim calls malloc_trim(0) after each phase (what fragmentation costs).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Model } from '../ts/model.ts';
import { KfacAccumulator, predictiveProbsReport, type Posterior } from '../ts/laplace/kfac.ts';
import { loadNative } from '../ts/native.ts';
import { makeTinyCheckpoint } from '../ts/io/random-checkpoint.ts';
import type { McBatch } from '../ts/data/batch.ts';
import { MEMORY_MODELS } from './memory.ts';

const MiB = 2 ** 20;
const arg = (name: string, def: string) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? def;

function status(): { hwm: number; rss: number } {
  const t = readFileSync('/proc/self/status', 'utf8');
  const kb = (k: string) => Number(new RegExp(`${k}:\\s*(\\d+) kB`).exec(t)?.[1] ?? NaN) * 1024;
  return { hwm: kb('VmHWM'), rss: kb('VmRSS') };
}

function data(vocab: number, examples: number, B: number, T: number, C: number): McBatch[] {
  let s = 3; // the memory bench's generator (bench/memory-child.ts)
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const out: McBatch[] = [];
  for (let i0 = 0; i0 < examples; i0 += B) {
    const b = Math.min(B, examples - i0);
    out.push({
      B: b,
      T,
      C,
      ids: new Int32Array(b * T).map(() => 4 + Math.floor(rnd() * (vocab - 4))),
      mask: new Uint8Array(b * T).fill(1),
      last: new Int32Array(b).fill(T - 1),
      rows: new Int32Array(b * C).map(() => 4 + Math.floor(rnd() * (vocab - 4))),
      labels: new Int32Array(b).map(() => Math.floor(rnd() * C)),
    });
  }
  return out;
}

async function main() {
  const name = arg('model', '20m');
  const threshold = Number(arg('threshold', '512'));
  const trim = process.argv.includes('--trim');
  const spec = MEMORY_MODELS.find((m) => m.name === name);
  if (!spec) throw new Error(`unknown model ${name}`);
  const given = arg('dir', '');
  if (!given) {
    // The checkpoint is written by this process, then measured in a fresh one
    // (writing it leaves JS garbage and written pages behind).
    const dir = mkdtempSync(path.join(os.tmpdir(), `bayeslora-memphases-${name}-`));
    try {
      makeTinyCheckpoint(dir, { arch: 'llama', ...spec, tie: false, seed: 7, maxPositionEmbeddings: 1024 });
      const r = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1), `--dir=${dir}`], { stdio: 'inherit' });
      process.exitCode = r.status ?? 1;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    return;
  }
  const dir = given;
  const n = loadNative();
  const rows: Record<string, unknown>[] = [];
  let acc: KfacAccumulator | null = null;
  let post: Posterior | null = null;
  let model: Model | null = null;
  let overall = 0;
  const phase = (label: string) => {
    if (trim) n.mallocTrim();
    const st = status();
    overall = Math.max(overall, st.hwm);
    const m = n.mallocInfo();
    rows.push({
      phase: label,
      peak_MiB: +(st.hwm / MiB).toFixed(1),
      rss_MiB: +(st.rss / MiB).toFixed(1),
      model_MiB: model ? +(model.info().nativeBytes / MiB).toFixed(1) : 0,
      kfac_MiB: acc && !acc.disposed ? +(acc.memory().currentBytes / MiB).toFixed(1) : 0,
      kfac_peak_MiB: acc && !acc.disposed ? +(acc.memory().peakBytes / MiB).toFixed(1) : 0,
      post_MiB: post && !post.disposed ? +(post.memoryBytes() / MiB).toFixed(1) : 0,
      ext_MiB: +(n.externalMemory() / MiB).toFixed(1),
      heap_inuse_MiB: +(m.inUseBytes / MiB).toFixed(1),
      heap_free_MiB: +(m.freeBytes / MiB).toFixed(1),
      mmap_MiB: +(m.mmapBytes / MiB).toFixed(1),
      js_heap_MiB: +(process.memoryUsage().heapUsed / MiB).toFixed(1),
    });
    writeFileSync('/proc/self/clear_refs', '5'); // next phase's peak starts from its RSS
  };
  try {
    const vocab = Math.min(...MEMORY_MODELS.map((s) => s.vocab));
    const batches = data(vocab, 16, 4, 128, 4);
    phase('start');
    model = await Model.load(dir);
    phase('load');
    model.addLora({ r: 8, alpha: 16, dropout: 0, targetModules: ['q_proj', 'v_proj', 'lm_head'], seed: 1 });
    for (const b of batches) await model.trainStep(b, { lr: 1e-4 });
    phase('train (4 steps)');
    const layers = n.laplaceModelLayers(model.native, { lastLayer: false });
    acc = new KfacAccumulator({ layers, tokens: 'reduce', threshold, nKfac: 10 });
    phase('accumulator created');
    let logLik = 0;
    for (let i = 0; i < batches.length; i++) {
      const r = await acc.fitBatch(model, batches[i], { fisher: 'exact', batchIndex: i });
      logLik += r.logLik;
      phase(`fit batch ${i}`);
    }
    post = await acc.posterior({ delta: 1 });
    phase('posterior (eigen)');
    const st = n.laplaceAdapterState(model.native);
    const thetaNormSq = Float64Array.from(post.layers().map((l) => st.thetaNormSq[l.id]));
    const fit = await post.optimizePrior({ logLik, thetaNormSq, min: 1e-8, max: 1e8 });
    phase('prior (marglik)');
    for (let i = 0; i < 2; i++) {
      const { logits, lambda } = await post.predictBatch(model, batches[i], {});
      await predictiveProbsReport(logits, lambda, { C: 4, method: 'mc', samples: 1000, seed: i });
      phase(`predict batch ${i}`);
    }
    acc.dispose();
    phase('accumulator disposed');
    process.stderr.write(`log marglik ${fit.logMarglik}, prior ${fit.deltas[0]}\n`);
  } finally {
    post?.dispose();
    acc?.dispose();
    model?.dispose();
  }
  console.table(rows);
  process.stdout.write(JSON.stringify({ model: name, threshold, trim, overall_peak_MiB: overall / MiB, rows }) + '\n');
}

main().catch((e) => {
  process.stderr.write(String(e?.stack ?? e) + '\n');
  process.exitCode = 1;
});
