// Shared helpers for the GPU parity checks (plain node:test files, no build
// step, no npm packages: they run on the lent GPU machine where only a carried
// node binary exists). Loads the built addon directly.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const addonPath = process.env.BAYESLORA_ADDON
  ? path.resolve(process.env.BAYESLORA_ADDON)
  : path.join(root, 'build', 'Release', 'bayeslora.node');
export const addon = require(addonPath);
export const ops = addon.ops;

const inf = addon.info();
export const cudaUsable = Boolean(inf.cudaUsable);
export const cudaStatus = String(inf.cuda);
// The backend under test. BAYESLORA_GPU_TEST_BACKEND=cpu runs the whole suite
// cpu against cpu: a self-check of the test code on machines without a GPU
// (it proves nothing about CUDA).
export const GPU = process.env.BAYESLORA_GPU_TEST_BACKEND || 'cuda';
// gpu-check.sh sets BAYESLORA_REQUIRE_CUDA=1: there a missing device is a
// failure, elsewhere the checks are skipped with the reason.
export const skip = GPU !== 'cuda' || cudaUsable
  ? false
  : process.env.BAYESLORA_REQUIRE_CUDA === '1'
    ? false
    : `CUDA backend not usable: ${cudaStatus}`;

// Deterministic generator (mulberry32) so cpu and cuda see identical inputs.
export class Rng {
  constructor(seed) { this.s = seed >>> 0; }
  next() {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  f32(n, lo = -1, hi = 1) { return Float32Array.from({ length: n }, () => lo + (hi - lo) * this.next()); }
  i32(n, lo, hi) { return Int32Array.from({ length: n }, () => lo + Math.floor(this.next() * (hi - lo + 1))); }
}

// Tolerances by kind of result. float32 kernels on two backends sum in
// different orders; the bounds say how far that may move a value, nothing more.
export const TOL = {
  exact: { atol: 0, rtol: 0 },            // copies, bit-identical masks
  elementwise: { atol: 1e-6, rtol: 1e-6 }, // one or two roundings apart
  reduction: { atol: 1e-5, rtol: 1e-5 },   // sums over a row / column
  attention: { atol: 5e-5, rtol: 1e-4 },   // online softmax vs row softmax, T-long sums
};

// |got - want| <= atol + rtol |want| everywhere; the message names the worst element.
export function close(got, want, tol, what) {
  assert.ok(got instanceof Float32Array, `${what}: expected Float32Array, got ${got}`);
  assert.equal(got.length, want.length, `${what}: length`);
  let worst = -1, at = -1;
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i] - want[i]);
    const lim = tol.atol + tol.rtol * Math.abs(want[i]);
    const ratio = lim === 0 ? (err === 0 ? 0 : Infinity) : err / lim;
    if (!(ratio <= worst)) { worst = ratio; at = i; }  // NaN counts as worst
  }
  assert.ok(want.length === 0 || worst <= 1,
    `${what}: element ${at}: cuda ${got[at]} vs cpu ${want[at]} (${worst.toFixed(2)}x tolerance ${JSON.stringify(tol)})`);
}

// Like close, but the relative part scales with `mag[i]`, the sum of the
// magnitudes of the terms that element adds up (>= |want[i]|): the forward
// error of a float32 sum is bounded by a multiple of that, not of |result|,
// so an element that cancels to near zero is judged by what it summed.
export function closeSummed(got, want, mag, tol, what) {
  assert.ok(got instanceof Float32Array, `${what}: expected Float32Array, got ${got}`);
  assert.equal(got.length, want.length, `${what}: length`);
  let worst = -1, at = -1;
  for (let i = 0; i < want.length; i++) {
    const ratio = Math.abs(got[i] - want[i]) / (tol.atol + tol.rtol * mag[i]);
    if (!(ratio <= worst)) { worst = ratio; at = i; }
  }
  assert.ok(want.length === 0 || worst <= 1,
    `${what}: element ${at}: cuda ${got[at]} vs cpu ${want[at]}, summed magnitude ${mag[at]} (${worst.toFixed(2)}x tolerance ${JSON.stringify(tol)})`);
}

// Runs op on cpu and cuda with the same options; compares every array field
// (or the array itself), skipping the named fields (backend-private layouts).
export function same(name, opts, tol, skipFields = []) {
  const a = ops[name]('cpu', opts);
  const b = ops[name](GPU, opts);
  if (a instanceof Float32Array) return close(b, a, tol, name);
  for (const [k, va] of Object.entries(a)) {
    if (skipFields.includes(k)) continue;
    if (va === null) assert.equal(b[k], null, `${name}.${k} should be null`);
    else close(b[k], va, tol, `${name}.${k}`);
  }
  return { cpu: a, cuda: b };
}
