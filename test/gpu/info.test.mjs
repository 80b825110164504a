// The CUDA backend is compiled in and usable, and says what it runs on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GPU, addon, cudaStatus, cudaUsable, skip as skipAll } from './common.mjs';

const skip = GPU !== 'cuda' ? 'self-check mode (BAYESLORA_GPU_TEST_BACKEND)' : skipAll;

test('cuda is compiled in and usable', { skip }, () => {
  const inf = addon.info();
  console.log(`  cuda: ${cudaStatus}`);
  assert.equal(inf.cudaCompiled, true, 'addon built without CUDA');
  assert.ok(cudaUsable, `CUDA not usable: ${cudaStatus}`);
  assert.match(inf.backends, /cuda/);
  assert.match(cudaStatus, /sm_\d+/);
  assert.match(cudaStatus, /cuBLAS/);
});

test('argument errors are typed the same on cuda', { skip }, () => {
  assert.throws(() => addon.ops.gather_rows('cuda', { n: 2, R: 3, d: 4, x: new Float32Array(12), idx: Int32Array.of(0, 3) }),
    (e) => e.code === 'INVALID_ARGUMENT');
  assert.throws(() => addon.ops.dropout_fwd('cuda', { n: 1, p: 1, seed: 1, x: new Float32Array(1) }),
    (e) => e.code === 'INVALID_ARGUMENT');
});
