// One measurement of the memory bench, run in a fresh process so that peak
// RSS (VmHWM from /proc/self/status) belongs to this configuration alone:
//   node --import tsx bench/memory-child.ts '<json>'
// json: { dir, mode: 'baseline' | 'lora' | 'laplace', threshold?, examples, seq, batch, epochs, classes, predictBatches }
// baseline: loads the addon and the model, nothing else. lora: LoRA fine-tuning
// (trainStep over every batch, `epochs` times). laplace: the same fine-tuning,
// then Laplace.fit (exact Fisher, K-FAC, marglik prior) and the predictive
// (mc) on `predictBatches` batches; `threshold` is the K-FAC low-rank threshold
// (default 512; 2r makes every hidden-size side low rank, as at d = 4096).
// Prints one JSON line.
import { readFileSync } from 'node:fs';
import { Model } from '../ts/model.ts';
import { Laplace } from '../ts/laplace/laplace.ts';
import type { McBatch } from '../ts/data/batch.ts';

interface Job {
  dir: string;
  mode: 'baseline' | 'lora' | 'laplace';
  examples: number;
  seq: number;
  batch: number;
  epochs: number;
  classes: number;
  predictBatches: number;
  vocab: number;
  threshold?: number;
}

function status(): { hwm: number; rss: number } {
  const t = readFileSync('/proc/self/status', 'utf8');
  const kb = (k: string) => Number(new RegExp(`${k}:\\s*(\\d+) kB`).exec(t)?.[1] ?? NaN) * 1024;
  return { hwm: kb('VmHWM'), rss: kb('VmRSS') };
}

function data(j: Job): McBatch[] {
  let s = 3;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const out: McBatch[] = [];
  const C = j.classes;
  for (let i0 = 0; i0 < j.examples; i0 += j.batch) {
    const B = Math.min(j.batch, j.examples - i0);
    const T = j.seq;
    out.push({
      B,
      T,
      C,
      ids: new Int32Array(B * T).map(() => 4 + Math.floor(rnd() * (j.vocab - 4))),
      mask: new Uint8Array(B * T).fill(1),
      last: new Int32Array(B).fill(T - 1),
      rows: new Int32Array(B * C).map(() => 4 + Math.floor(rnd() * (j.vocab - 4))),
      labels: new Int32Array(B).map(() => Math.floor(rnd() * C)),
    });
  }
  return out;
}

async function main() {
  const j: Job = JSON.parse(process.argv[2]);
  const t0 = performance.now();
  const model = await Model.load(j.dir);
  const out: Record<string, unknown> = { mode: j.mode };
  try {
    const batches = data(j);
    if (j.mode !== 'baseline') {
      model.addLora({ r: 8, alpha: 16, dropout: 0, targetModules: ['q_proj', 'v_proj', 'lm_head'], seed: 1 });
      for (let e = 0; e < j.epochs; e++) for (const b of batches) await model.trainStep(b, { lr: 1e-4 });
      out.after_train = status();
      out.train_s = (performance.now() - t0) / 1000;
    }
    if (j.mode === 'laplace') {
      const t1 = performance.now();
      const la = await Laplace.fit(model, batches, { fisher: 'exact', prior: 'marglik', tokens: 'reduce', nKfac: 10, threshold: j.threshold ?? 512 });
      out.after_fit = status();
      for (let i = 0; i < Math.min(j.predictBatches, batches.length); i++) await la.predict(batches[i], { method: 'mc', samples: 1000, seed: i });
      const s = la.summary();
      out.laplace = { factor_bytes: s.factorBytes, posterior_bytes: s.posteriorBytes, prior: s.priorPrecision[0] };
      out.laplace_s = (performance.now() - t1) / 1000;
      la.dispose();
    }
    out.native_bytes = model.info().nativeBytes;
  } finally {
    model.dispose();
  }
  const st = status();
  out.peak_bytes = st.hwm;
  out.rss_end_bytes = st.rss;
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  process.stderr.write(String(e?.stack ?? e) + '\n');
  process.exitCode = 1;
});
