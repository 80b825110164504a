// Child process of test/api/worker-threads.test.ts (node --import tsx). Loads
// the addon in worker threads next to the main thread: concurrent training in
// three environments, then workers terminated while their native work runs.
// Prints one JSON line; a crash shows as a signal or non-zero exit status.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { makeTinyCheckpoint } from '../../ts/io/random-checkpoint.ts';
import { Model } from '../../ts/model.ts';
import { randomMcBatch } from '../helpers/random-mc-batch.ts';

// Workers do not inherit the main thread's --import hooks on Node 20, so each
// registers tsx itself before importing the TypeScript body.
const tsxApi = import.meta.resolve('tsx/esm/api');
const body = new URL('./worker-threads.body.ts', import.meta.url).href;
const source = `import(${JSON.stringify(tsxApi)}).then((a) => { a.register(); return import(${JSON.stringify(body)}); })`;

type Mode = 'train' | 'fit' | 'predict';
function start(dir: string, mode: Mode, steps: number) {
  const w = new Worker(source, { eval: true, workerData: { dir, mode, steps } });
  const started = new Promise<void>((res, rej) => {
    w.on('message', (m) => m.started && res());
    w.on('error', rej);
  });
  const result = new Promise<{ losses?: number[]; exit: number; error?: string }>((res) => {
    let losses: number[] | undefined;
    let error: string | undefined;
    w.on('message', (m) => m.losses && (losses = m.losses));
    w.on('error', (e) => (error = String(e)));
    w.on('exit', (exit) => res({ losses, exit, error }));
  });
  return { w, started, result };
}

const dir = mkdtempSync(path.join(tmpdir(), 'bl-wt-'));
const out: Record<string, unknown> = {};
try {
  makeTinyCheckpoint(dir, { vocab: 1000, hidden: 128, layers: 3, heads: 4, intermediate: 256, seed: 5 });

  // 1. The same training in the main thread and in two workers at once.
  const STEPS = 4;
  const ws = [start(dir, 'train', STEPS), start(dir, 'train', STEPS)];
  const model = await Model.load(dir);
  model.addLora({ r: 4, alpha: 8, dropout: 0, targetModules: ['q_proj', 'v_proj', 'lm_head'], seed: 3 });
  const b = randomMcBatch(model.info().config.vocabSize);
  const main: number[] = [];
  for (let i = 0; i < STEPS; i++) main.push((await model.trainStep(b, { lr: 1e-3 })).loss ?? NaN);
  const inWorkers = await Promise.all(ws.map((x) => x.result));
  out.concurrent = { main, workers: inWorkers };

  // 2. Terminate workers at several points of their native work.
  const terminated: { mode: Mode; delayMs: number; exit: number; error?: string }[] = [];
  for (const mode of ['train', 'fit', 'predict'] as Mode[])
    for (const delayMs of [0, 2, 10, 40]) {
      const x = start(dir, mode, 1000);
      await x.started;
      await new Promise((r) => setTimeout(r, delayMs));
      await x.w.terminate();
      const r = await x.result;
      terminated.push({ mode, delayMs, exit: r.exit, error: r.error });
    }
  out.terminated = terminated;

  // 3. The main thread's model still works.
  out.after = (await model.trainStep(b, { lr: 1e-3 })).loss;
  model.dispose();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(JSON.stringify(out));
