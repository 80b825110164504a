// Kernel thread pool: spinning between jobs vs sleeping at once, paired in one
// process (`npm run bench -- pool`). The pool reads BAYESLORA_SPIN_US when it
// (re)starts, so each half of a round sets the variable and restarts the pool
// with setThreads; rounds alternate the order (sleep, spin / spin, sleep) so
// that bursts of host noise hit both alike. Per model (the engine bench's
// random 20m and 120m checkpoints, LoRA r = 8 on q_proj, v_proj and lm_head,
// 16 examples x 128 tokens in batches of 4, C = 4) and setting: one training
// epoch, a sampled-Fisher Laplace.fit (marglik prior) and one predictive batch
// (mc, 1000 samples). Rows: medians over rounds and the median of per-round
// ratios sleep / spin (> 1: spinning is faster). Which GEMM ran (OpenBLAS or
// the built-in kernel) is in the machine record.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ENGINE_MODELS, type EngineModelSpec } from './engine.ts';
import { summarize } from './machine.ts';
import { intFlag } from './flags.ts';
import { makeTinyCheckpoint } from '../ts/io/random-checkpoint.ts';
import { Model } from '../ts/model.ts';
import { Laplace } from '../ts/laplace/laplace.ts';
import { info, setThreads } from '../ts/info.ts';
import type { McBatch } from '../ts/data/batch.ts';
import { randomData } from './laplace.ts';

const C = 4;
const TASKS = ['training epoch', 'sampled fit', 'predictive batch'] as const;
type Task = (typeof TASKS)[number];

/** Restart the pool with BAYESLORA_SPIN_US = spin (undefined: the default). */
function usePool(spin: string | undefined, threads: number): void {
  if (spin === undefined) delete process.env.BAYESLORA_SPIN_US;
  else process.env.BAYESLORA_SPIN_US = spin;
  setThreads(threads);
}

async function timeTasks(model: Model, data: McBatch[]): Promise<Record<Task, number>> {
  const t0 = performance.now();
  for (const b of data) await model.trainStep(b, { lr: 1e-4 });
  const epoch = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  const la = await Laplace.fit(model, data, { fisher: 'sampled', samples: 1, seed: 5, nKfac: 10 });
  const fit = (performance.now() - t1) / 1000;
  try {
    const t2 = performance.now();
    await la.predict(data[0], { method: 'mc', samples: 1000, seed: 1 });
    return { 'training epoch': epoch, 'sampled fit': fit, 'predictive batch': (performance.now() - t2) / 1000 };
  } finally {
    la.dispose();
  }
}

async function measure(spec: EngineModelSpec, rounds: number, threads: number, log: (m: string) => void) {
  const dir = mkdtempSync(path.join(os.tmpdir(), `bayeslora-bench-pool-${spec.name}-`));
  try {
    makeTinyCheckpoint(dir, { arch: 'llama', ...spec, tie: false, seed: 7, maxPositionEmbeddings: 1024 });
    const model = await Model.load(dir);
    try {
      model.addLora({ r: 8, alpha: 16, dropout: 0, targetModules: ['q_proj', 'v_proj', 'lm_head'], seed: 1 });
      const data = randomData(Math.min(...ENGINE_MODELS.map((m) => m.vocab)), { examples: 16, seq: 128, batch: 4 }, 3);
      await timeTasks(model, data); // warm-up: workspaces, page faults
      const perTask = () => Object.fromEntries(TASKS.map((t) => [t, [] as number[]])) as Record<Task, number[]>;
      const sleep = perTask(), spin = perTask(), ratios = perTask();
      for (let r = 0; r < rounds; r++) {
        const order: ('sleep' | 'spin')[] = r % 2 ? ['spin', 'sleep'] : ['sleep', 'spin'];
        const got: Partial<Record<'sleep' | 'spin', Record<Task, number>>> = {};
        for (const which of order) {
          usePool(which === 'sleep' ? '0' : undefined, threads);
          got[which] = await timeTasks(model, data);
        }
        for (const t of TASKS) {
          sleep[t].push(got.sleep![t]);
          spin[t].push(got.spin![t]);
          ratios[t].push(got.sleep![t] / got.spin![t]);
        }
        log(`${spec.name}: round ${r + 1} of ${rounds}`);
      }
      return TASKS.map((task) => {
        const r = summarize(ratios[task]);
        return { model: spec.name, task, sleep_s: summarize(sleep[task]).median, spin_s: summarize(spin[task]).median, ratio: r.median, ratio_range: [r.min, r.max] };
      });
    } finally {
      model.dispose();
    }
  } finally {
    usePool(undefined, threads);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Flags: --rounds=N (default 5), --quick (20m only, 3 rounds). */
export async function run(args: string[]): Promise<object> {
  const quick = args.includes('--quick');
  const rounds = intFlag(args, 'pool', 'rounds', quick ? 3 : 5);
  const threads = info().threads;
  const log = (m: string) => console.error(`bench pool: ${m}`);
  const rows = [];
  for (const spec of ENGINE_MODELS.filter((m) => !quick || m.name === '20m')) rows.push(...(await measure(spec, rounds, threads, log)));
  return {
    what: 'kernel thread pool: workers spin (BAYESLORA_SPIN_US default) vs sleep at once (BAYESLORA_SPIN_US=0) between jobs, paired in one process',
    config: { threads, rounds, examples: 16, seq: 128, batch: 4, classes: C, lora: 'r 8 on q_proj, v_proj, lm_head', fit: 'sampled Fisher, nKfac 10, marglik prior', predict: 'mc, 1000 samples, one batch of 4' },
    rows,
  };
}
