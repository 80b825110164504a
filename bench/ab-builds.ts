// Paired A/B of two addon builds in one process: both .node files are loaded
// side by side (each with its own model on the same random checkpoint) and
// their LoRA training steps alternate A B, B A, ... so that bursts of host
// noise hit both alike. On the shared dev VM, separate processes timed the
// same build 10-30% apart from run to run; the paired median ratio of an
// A/A run stays within ~0.5% of 1, which is what makes 1-3% changes visible.
//
//   npx tsx bench/ab-builds.ts DIR_A DIR_B [--model=20m|120m] [--rounds=30] [--threads=2]
//
// DIR_* are cmake-js output folders holding Release/bayeslora.node (e.g. two
// `npx cmake-js compile -O build-x` builds of different commits). Prints one
// JSON line: medians, minima and the median of per-round ratios B/A.
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeTinyCheckpoint } from '../ts/io/random-checkpoint.ts';
import { ENGINE_MODELS } from './engine.ts';
import { intFlag } from './flags.ts';

interface NativeModelLike {
  addLora(c: object): void;
  trainStep(batch: object, opts: object): Promise<unknown>;
  dispose(): void;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const dirs = args.filter((a) => !a.startsWith('--'));
  if (dirs.length !== 2) throw new Error('usage: ab-builds.ts DIR_A DIR_B [--model=20m] [--rounds=30] [--threads=2]');
  const name = args.find((a) => a.startsWith('--model='))?.slice('--model='.length) ?? '20m';
  const spec = ENGINE_MODELS.find((m) => m.name === name);
  if (!spec) throw new Error(`unknown model ${name} (known: ${ENGINE_MODELS.map((m) => m.name).join(', ')})`);
  const rounds = intFlag(args, 'ab-builds', 'rounds', 30);
  const threads = intFlag(args, 'ab-builds', 'threads', 2);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ab-builds-'));
  try {
    makeTinyCheckpoint(dir, {
      arch: 'llama',
      vocab: spec.vocab,
      hidden: spec.hidden,
      layers: spec.layers,
      heads: spec.heads,
      kvHeads: spec.kvHeads,
      intermediate: spec.intermediate,
      tie: false,
      seed: 7,
      maxPositionEmbeddings: 1024,
    });
    const require = createRequire(import.meta.url);
    const models: NativeModelLike[] = [];
    for (const d of dirs) {
      const addon = require(path.resolve(d, 'Release', 'bayeslora.node'));
      addon.setThreads(threads);
      const m = (await addon.Model.load(dir, { backend: 'cpu', fullTraining: false })) as NativeModelLike;
      m.addLora({ r: 8, alpha: 16, targetModules: ['q_proj', 'v_proj', 'lm_head'], seed: 1 });
      models.push(m);
    }
    const B = 4, T = 128, C = 4, V = spec.vocab;
    let s = 3;
    const rnd = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
    const batch = {
      B, T, C,
      ids: new Int32Array(B * T).map(() => 4 + Math.floor(rnd() * (V - 4))),
      mask: new Uint8Array(B * T).fill(1),
      last: new Int32Array(B).fill(T - 1),
      rows: new Int32Array(B * C).map(() => 4 + Math.floor(rnd() * (V - 4))),
      labels: new Int32Array(B).map(() => Math.floor(rnd() * C)),
    };
    for (const m of models) for (let i = 0; i < 2; i++) await m.trainStep(batch, { lr: 1e-4 });  // warm-up
    const t: number[][] = [[], []];
    for (let r = 0; r < rounds; r++) {
      for (const i of r % 2 ? [1, 0] : [0, 1]) {
        const t0 = performance.now();
        await models[i].trainStep(batch, { lr: 1e-4 });
        t[i].push((performance.now() - t0) / 1000);
      }
    }
    for (const m of models) m.dispose();
    const median = (a: number[]) => {
      const x = [...a].sort((p, q) => p - q);
      return x.length % 2 ? x[x.length >> 1] : (x[x.length / 2 - 1] + x[x.length / 2]) / 2;
    };
    console.log(
      JSON.stringify({
        model: name,
        threads,
        rounds,
        a: { dir: dirs[0], median_s: median(t[0]), min_s: Math.min(...t[0]) },
        b: { dir: dirs[1], median_s: median(t[1]), min_s: Math.min(...t[1]) },
        paired_ratio_b_over_a: median(t[1].map((x, i) => x / t[0][i])),
      }),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  },
);
