// Op-level benchmark, cpu vs cuda, through exports.ops (so each time includes
// the host<->device copies of the typed arrays: an end-to-end call cost, not a
// kernel time; the cuda/dev harnesses time the kernels alone).
// Usage: node test/gpu/bench.mjs [out.json]
import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { ops, cudaUsable, cudaStatus, Rng } from './common.mjs';

if (!cudaUsable) {
  console.error(`bench: CUDA not usable: ${cudaStatus}`);
  process.exit(1);
}
const r = new Rng(7);
const results = [];

function time(name, backend, fn, reps = 3) {
  fn(); // warm-up (first call also initialises the backend)
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) fn();
  const ms = (performance.now() - t0) / reps;
  results.push({ name, backend, ms });
  console.log(`  ${name.padEnd(48)} ${backend.padEnd(5)} ${ms.toFixed(2).padStart(10)} ms`);
  return ms;
}

function both(name, make) {
  const c = time(name, 'cpu', make('cpu'));
  const g = time(name, 'cuda', make('cuda'));
  console.log(`  ${''.padEnd(48)} speed-up ${(c / g).toFixed(1)}x`);
}

{
  const [B, T, H, Hkv, hd] = [2, 1024, 16, 4, 128];
  const q = r.f32(B * T * H * hd), k = r.f32(B * T * Hkv * hd), v = r.f32(B * T * Hkv * hd);
  const shape = { B, T, H, Hkv, hd, scale: 1 / Math.sqrt(hd) };
  const name = `attention fwd B${B} T${T} H${H}/${Hkv} hd${hd}`;
  both(name, (be) => () => ops.attention_fwd(be, { ...shape, q, k, v }));
  const dout = r.f32(B * T * H * hd);
  both(name.replace('fwd', 'fwd+bwd'), (be) => () => {
    const f = ops.attention_fwd(be, { ...shape, q, k, v });
    ops.attention_bwd(be, { ...shape, dout, saved: f.saved, q, k, v });
  });
}
{
  const [N, d] = [8192, 4096];
  const x = r.f32(N * d), w = r.f32(d);
  both(`rmsnorm fwd N${N} d${d}`, (be) => () => ops.rmsnorm_fwd(be, { x, w, N, d, eps: 1e-5 }));
}
{
  const [N, C] = [64, 32000];
  const logits = r.f32(N * C), labels = r.i32(N, 0, C - 1);
  both(`softmax_xent N${N} C${C}`, (be) => () => ops.softmax_xent(be, { logits, labels, N, C, dscale: 1 }));
}
{
  const n = 16 << 20;
  const p = r.f32(n), g = r.f32(n), m = new Float32Array(n), v = new Float32Array(n);
  both(`adamw n=${n}`, (be) => () =>
    ops.adamw(be, { p, g, m, v, n, lr: 1e-3, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0, step: 1, gradScale: 1 }));
}

const out = process.argv[2];
if (out) writeFileSync(out, JSON.stringify({ device: cudaStatus, note: 'end-to-end op calls incl. transfers', results }, null, 2));
