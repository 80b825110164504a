// CUDA failures become typed errors, never a crash (issue 5): device out of
// memory (CUDA_OOM, not permanent, nothing leaked by the failed load), a
// sticky device fault (CUDA_ERROR naming it, then "unusable" on every later
// CUDA call while the CPU backend keeps working, dispose still safe), and a
// cuBLAS failure (CUDA_ERROR, not permanent). The faults are injected by the
// CUDA emulator (docs/cuda-emulation.md), so this file runs only there: a
// real GPU cannot be made to fail on cue. Each case runs in a child process
// (fault-child.mjs), since a sticky error lasts for the process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cudaStatus, cudaUsable, GPU } from './common.mjs';
import { writeRandomLlama } from './random-model.mjs';

const emulated = cudaUsable && GPU === 'cuda' && cudaStatus.includes('emulator');
const skip = emulated ? false : 'needs the CUDA emulator (fault injection)';
const here = path.dirname(fileURLToPath(import.meta.url));

let dir;
function models() {
  if (dir) return dir;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bl-gpu-faults-'));
  writeRandomLlama(path.join(dir, 'small'), { vocab: 80, hidden: 64, intermediate: 96, layers: 1, heads: 4, kvHeads: 2, dtype: 'F32', seed: 1, std: 0.05 });
  // ~70 MB of float32 weights: more than the 96 MiB device has left after the
  // backend's 32 MiB cuBLAS workspace.
  writeRandomLlama(path.join(dir, 'big'), { vocab: 16000, hidden: 512, intermediate: 1024, layers: 2, heads: 8, kvHeads: 8, dtype: 'F32', seed: 2, std: 0.05 });
  return dir;
}
function child(which, env = {}) {
  const r = spawnSync(process.execPath, [path.join(here, 'fault-child.mjs'), which, models()], {
    env: { ...process.env, ...env }, encoding: 'utf8', timeout: 120_000,
  });
  assert.equal(r.status, 0, `child ${which} exited ${r.status} (signal ${r.signal}):\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

test('device out of memory: CUDA_OOM, nothing leaked, the next load works', { skip }, () => {
  const o = child('oom', { BL_EMU_DEVICE_BYTES: String(96 << 20) });
  assert.equal(o.big.ok, false);
  assert.equal(o.big.code, 'CUDA_OOM', o.big.message);
  assert.match(o.big.message, /cannot allocate/);
  assert.equal(o.liveAfterFailedLoad, 0, 'the failed load freed what it had allocated');
  assert.deepEqual(o.smallAfter, { ok: true });
});

test('sticky device fault: CUDA_ERROR, then unusable with the cause; dispose safe; cpu unaffected', { skip }, () => {
  const o = child('sticky');
  assert.deepEqual(o.first, { ok: true });
  assert.equal(o.faulted.ok, false);
  assert.equal(o.faulted.code, 'CUDA_ERROR', o.faulted.message);
  assert.match(o.faulted.message, /illegal memory access|IllegalAddress/);
  for (const k of ['after', 'load']) {
    assert.equal(o[k].ok, false, k);
    assert.equal(o[k].code, 'CUDA_ERROR', `${k}: ${o[k].message}`);
    assert.match(o[k].message, /unusable/, k);
  }
  assert.equal(o.info.cudaUsable, false);
  assert.match(o.info.cuda, /unusable/);
  assert.deepEqual(o.dispose, { ok: true });
  assert.deepEqual(o.cpu, { ok: true });
});

test('cuBLAS failure: CUDA_ERROR naming cuBLAS, not permanent', { skip }, () => {
  const o = child('cublas');
  assert.equal(o.failed.ok, false);
  assert.equal(o.failed.code, 'CUDA_ERROR', o.failed.message);
  assert.match(o.failed.message, /cuBLAS|CUBLAS_STATUS_EXECUTION_FAILED/);
  assert.deepEqual(o.after, { ok: true });
});

test.after(() => { if (dir) fs.rmSync(dir, { recursive: true, force: true }); });
