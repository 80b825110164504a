// Device memory of the CUDA backend (addon.cudaMemory()): every buffer a
// model, its LoRA, training, a K-FAC fit, a posterior and a predictive pass
// allocate is returned by their dispose(), and dispose() twice changes
// nothing. Skipped without a usable CUDA device (common.mjs); meaningless on
// the cpu self-check backend, so skipped there too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { addon, GPU, skip } from './common.mjs';
import { rng, writeRandomLlama } from './random-model.mjs';

const SHAPE = { vocab: 80, hidden: 64, intermediate: 96, layers: 2, heads: 4, kvHeads: 2 };

function batch(seed, B, T, C, V) {
  const u = rng(seed);
  const ids = Int32Array.from({ length: B * T }, () => Math.floor(u() * V));
  const mask = new Uint8Array(B * T).fill(1);
  const last = new Int32Array(B).fill(T - 1);
  const rows = Int32Array.from({ length: B * C }, (_, i) => (i * 7 + 3) % V);
  const labels = Int32Array.from({ length: B }, (_, b) => b % C);
  return { B, T, C, ids, mask, last, rows, labels };
}

test('device memory: dispose returns every buffer (model, LoRA, training, K-FAC, posterior, predictive)',
  { skip: skip || (GPU !== 'cuda' && 'cudaMemory() describes the CUDA backend only') }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bl-gpu-mem-'));
    writeRandomLlama(dir, { ...SHAPE, dtype: 'F32', seed: 3, std: 0.05 });
    // The first model creates the backend (cuBLAS handle, workspace): those
    // stay for the process and are reported apart, as internalBytes.
    (await addon.Model.load(dir, { backend: 'cuda' })).dispose();
    const base = addon.cudaMemory();
    assert.ok(base && base.deviceTotalBytes > 0, 'cudaMemory() after the backend exists');

    const m = await addon.Model.load(dir, { backend: 'cuda' });
    m.addLora({ r: 4, alpha: 8, targetModules: ['q_proj', 'v_proj', 'lm_head'], seed: 1 });
    for (let i = 0; i < 2; i++) await m.trainStep(batch(10 + i, 4, 12, 4, SHAPE.vocab), { lr: 1e-2 });
    const acc = new addon.KfacAccumulator({ layers: addon.laplaceModelLayers(m, {}), tokens: 'reduce', threshold: 48, nKfac: 16 });
    await acc.fitBatch(m, batch(20, 4, 12, 4, SHAPE.vocab), { fisher: 'exact' });
    const post = await acc.posterior({ delta: 1 });
    const pred = await post.predictBatch(m, batch(30, 3, 12, 4, SHAPE.vocab), {});
    assert.ok(pred.lambda.length > 0);
    const busy = addon.cudaMemory();
    assert.ok(busy.liveBytes > base.liveBytes, `buffers are in use (${busy.liveBytes} vs ${base.liveBytes} bytes)`);
    assert.ok(busy.peakBytes >= busy.liveBytes);

    for (const x of [post, acc, m]) x.dispose();
    const after = addon.cudaMemory();
    assert.equal(after.liveBytes, base.liveBytes, 'live device bytes back to the baseline after dispose');
    for (const x of [post, acc, m]) x.dispose();  // idempotent
    assert.equal(addon.cudaMemory().liveBytes, base.liveBytes);

    addon.cudaMemory(true);  // resetPeak
    assert.equal(addon.cudaMemory().peakBytes, base.liveBytes, 'resetPeak sets peak to live');
    fs.rmSync(dir, { recursive: true, force: true });
  });
