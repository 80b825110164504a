// Worker side of test/api/worker-threads.test.ts (run by worker-threads.driver.mts
// in a worker thread): loads the checkpoint it is given, then trains, fits or
// predicts until told to stop or terminated.
import { parentPort, workerData } from 'node:worker_threads';
import { Model } from '../../ts/model.ts';
import { Laplace } from '../../ts/laplace/laplace.ts';
import { randomMcBatch } from '../helpers/random-mc-batch.ts';

const { dir, mode, steps } = workerData as { dir: string; mode: 'train' | 'fit' | 'predict'; steps: number };
const model = await Model.load(dir);
model.addLora({ r: 4, alpha: 8, dropout: 0, targetModules: ['q_proj', 'v_proj', 'lm_head'], seed: 3 });
const b = randomMcBatch(model.info().config.vocabSize);
parentPort!.postMessage({ started: true });
const losses: number[] = [];
for (let i = 0; i < steps; i++) {
  if (mode === 'train') losses.push((await model.trainStep(b, { lr: 1e-3 })).loss ?? NaN);
  else if (mode === 'fit') (await Laplace.fit(model, [b, b], { fisher: 'exact', nKfac: 8 })).dispose();
  else {
    const la = await Laplace.fit(model, [b], { fisher: 'sampled', nKfac: 8 });
    for (let k = 0; k < 50; k++) await la.predict(b, { method: 'probit' });
    la.dispose();
  }
}
model.dispose();
parentPort!.postMessage({ losses });
