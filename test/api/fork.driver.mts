// Child process of test/api/fork.test.ts: trains in the main thread for a few
// seconds while two worker threads spawn child processes (fork) in a loop.
// Prints {steps, spawns} as JSON; a hang is the test's timeout.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { makeTinyCheckpoint } from '../../ts/io/random-checkpoint.ts';
import { Model } from '../../ts/model.ts';
import { randomMcBatch } from '../helpers/random-mc-batch.ts';

const SECONDS = 4;
const dir = mkdtempSync(path.join(tmpdir(), 'bl-fork-'));
try {
  // Big enough that OpenBLAS runs its GEMMs on both threads.
  makeTinyCheckpoint(dir, { vocab: 1000, hidden: 256, layers: 3, heads: 4, intermediate: 512, seed: 5 });
  const spawner = `const { spawnSync } = require('node:child_process');
    const { parentPort } = require('node:worker_threads');
    let n = 0; const t0 = Date.now();
    while (Date.now() - t0 < ${SECONDS * 1000}) { spawnSync('true'); n++; }
    parentPort.postMessage(n);`;
  const workers = [0, 1].map(() => new Worker(spawner, { eval: true }));
  const spawns = Promise.all(workers.map((w) => new Promise<number>((res) => w.on('message', res))));
  const m = await Model.load(dir);
  m.addLora({ r: 4, targetModules: ['q_proj', 'v_proj', 'lm_head'] });
  const b = randomMcBatch(1000, 8, 64);
  let steps = 0;
  const t0 = Date.now();
  while (Date.now() - t0 < SECONDS * 1000) {
    await m.trainStep(b, { lr: 1e-3 });
    steps++;
  }
  m.dispose();
  console.log(JSON.stringify({ steps, spawns: await spawns }));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
