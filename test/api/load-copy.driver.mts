// Child process of test/api/load-copy.test.ts: loads the checkpoint in argv[2]
// with { mmap: false }, then overwrites and truncates its safetensors files in
// place and runs the model again. Prints the logits before and after as JSON.
import { readdirSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Model } from '../../ts/model.ts';
import { randomMcBatch } from '../helpers/random-mc-batch.ts';

const dir = process.argv[2];
const m = await Model.load(dir, { mmap: false });
const b = randomMcBatch(m.info().config.vocabSize);
const before = Array.from((await m.forward(b)).logits);
for (const f of readdirSync(dir).filter((f) => f.endsWith('.safetensors'))) {
  writeFileSync(path.join(dir, f), Buffer.alloc(64, 0x55)); // in place: same inode, truncated
  truncateSync(path.join(dir, f), 0);
}
const after = Array.from((await m.forward(b)).logits);
m.addLora({ r: 4, targetModules: ['q_proj', 'lm_head'] });
const loss = (await m.trainStep(b, { lr: 1e-3 })).loss;
m.dispose();
console.log(JSON.stringify({ before, after, loss }));
