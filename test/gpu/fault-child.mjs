// Child process of faults.test.mjs (a CUDA failure can be permanent for the
// process, so each case runs in its own): `node fault-child.mjs CASE DIR`
// where DIR holds `small/` and `big/` random checkpoints. Prints one JSON line
// of observations; the parent asserts on them. Only meaningful on the CUDA
// emulator, whose fault injection (BL_EMU_FAULT, BL_CUBLAS_EMU_FAIL,
// BL_EMU_DEVICE_BYTES) stands in for a GPU failing.
import path from 'node:path';
import { addon } from './common.mjs';
import { rng } from './random-model.mjs';

const [, , which, dir] = process.argv;
const small = path.join(dir, 'small');
const big = path.join(dir, 'big');
const V = 80;

function batch(seed) {
  const u = rng(seed);
  const B = 2, T = 8, C = 4;
  return {
    B, T, C,
    ids: Int32Array.from({ length: B * T }, () => Math.floor(u() * V)),
    mask: new Uint8Array(B * T).fill(1),
    last: new Int32Array(B).fill(T - 1),
    rows: Int32Array.from({ length: B * C }, (_, i) => (i * 7 + 3) % V),
    labels: Int32Array.from({ length: B }, (_, b) => b % C),
  };
}
// Resolves to {ok: true} or {ok: false, code, message}.
async function attempt(f) {
  try {
    await f();
    return { ok: true };
  } catch (e) {
    return { ok: false, code: e.code ?? null, message: String(e.message), typed: e instanceof Error && typeof e.code === 'string' };
  }
}

const out = {};
if (which === 'oom') {
  // BL_EMU_DEVICE_BYTES is set by the parent: the backend's workspace fits,
  // the big model does not.
  (await addon.Model.load(small, { backend: 'cuda' })).dispose();
  const before = addon.cudaMemory().liveBytes;
  out.big = await attempt(async () => (await addon.Model.load(big, { backend: 'cuda' })).dispose());
  out.liveAfterFailedLoad = addon.cudaMemory().liveBytes - before;
  const m = await addon.Model.load(small, { backend: 'cuda' });
  out.smallAfter = await attempt(() => m.forward(batch(1)));
  m.dispose();
} else if (which === 'sticky') {
  const m = await addon.Model.load(small, { backend: 'cuda' });
  m.addLora({ r: 4, alpha: 8, targetModules: ['q_proj', 'v_proj', 'lm_head'], seed: 1 });
  out.first = await attempt(() => m.trainStep(batch(1), { lr: 1e-2 }));
  process.env.BL_EMU_FAULT = 'illegal-address';
  out.faulted = await attempt(() => m.trainStep(batch(2), { lr: 1e-2 }));
  delete process.env.BL_EMU_FAULT;
  out.after = await attempt(() => m.forward(batch(3)));
  out.load = await attempt(async () => (await addon.Model.load(small, { backend: 'cuda' })).dispose());
  out.info = addon.info();
  out.dispose = await attempt(async () => { m.dispose(); m.dispose(); });
  const c = await addon.Model.load(small, { backend: 'cpu' });
  out.cpu = await attempt(() => c.forward(batch(3)));
  c.dispose();
} else if (which === 'cublas') {
  const m = await addon.Model.load(small, { backend: 'cuda', weightDtype: 'f32' });
  process.env.BL_CUBLAS_EMU_FAIL = '1';
  out.failed = await attempt(() => m.forward(batch(1)));
  delete process.env.BL_CUBLAS_EMU_FAIL;
  out.after = await attempt(() => m.forward(batch(1)));
  m.dispose();
} else {
  throw new Error(`unknown case ${which}`);
}
process.stdout.write(JSON.stringify(out) + '\n');
