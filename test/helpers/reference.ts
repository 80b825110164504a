// Float64 reference implementations of the backend ops, written directly from
// the math in cpp/backend/backend.h (independently of the C++ kernels), plus
// the test utilities the kernel tests share: a seeded RNG, central finite
// differences, tolerance checks that report the worst element, and a typed
// error assertion.
import { expect } from 'vitest';
import { BayesLoraError } from '../../ts/errors.ts';

export type Vec = ArrayLike<number>;

// ---- random data -----------------------------------------------------------------------

/** Small seeded PRNG (mulberry32) so every test is reproducible. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  f32(n: number, scale = 1, shift = 0): Float32Array {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = shift + scale * this.normal();
    return a;
  }
  i32(n: number, lo: number, hi: number): Int32Array {
    const a = new Int32Array(n);
    for (let i = 0; i < n; i++) a[i] = this.int(lo, hi);
    return a;
  }
}

export function f64(a: Vec): Float64Array {
  return Float64Array.from(a as ArrayLike<number>);
}

export function dot(a: Vec, b: Vec): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

export function add(a: Vec, b: Vec): Float64Array {
  const r = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) r[i] = a[i] + b[i];
  return r;
}

export function maxAbs(a: Vec): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

// ---- checks -------------------------------------------------------------------------------

export interface Tol {
  /** absolute tolerance */
  atol: number;
  /** relative tolerance (to |expected|) */
  rtol?: number;
}

/**
 * Element-wise |actual - expected| <= atol + rtol |expected|; on failure the
 * message names the worst element so a broken kernel is easy to locate.
 */
export function expectClose(actual: Vec | null, expected: Vec, tol: Tol, what = 'value'): void {
  expect(actual, `${what} is missing`).not.toBeNull();
  const a = actual as Vec;
  expect(a.length, `${what} length`).toBe(expected.length);
  const rtol = tol.rtol ?? 0;
  let worst = -1;
  let worstRatio = 0;
  for (let i = 0; i < a.length; i++) {
    const err = Math.abs(a[i] - expected[i]);
    const ratio = err / (tol.atol + rtol * Math.abs(expected[i]));
    if (!(ratio <= worstRatio) || Number.isNaN(err)) {
      worstRatio = Number.isNaN(err) ? Infinity : ratio;
      worst = i;
    }
  }
  if (worstRatio > 1) {
    expect.fail(
      `${what}[${worst}] = ${a[worst]}, expected ${expected[worst]} ` +
        `(|err| = ${Math.abs(a[worst] - expected[worst]).toExponential(3)}, atol ${tol.atol}, rtol ${rtol})`,
    );
  }
}

/**
 * Compare a kernel gradient with a finite-difference gradient. The tolerance is
 * relative to the largest gradient entry: float32 kernels carry rounding of
 * ~1e-6 of the gradient's scale; the float64 central differences are accurate
 * to ~1e-8 (h = 1e-4, truncation O(h^2)). 1e-4 of the scale leaves a wide
 * margin for rounding yet catches any missing or wrong term (O(1) errors).
 */
export function expectGradClose(actual: Vec | null, fd: Vec, what = 'grad', rel = 1e-4): void {
  const scale = Math.max(maxAbs(fd), 1e-3);
  expectClose(actual, fd, { atol: rel * scale, rtol: rel }, what);
}

/** Central differences of a scalar float64 function f at x (x is restored). */
export function fdGrad(f: (x: Float64Array) => number, x: Float64Array, h = 1e-4): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const xi = x[i];
    x[i] = xi + h;
    const fp = f(x);
    x[i] = xi - h;
    const fm = f(x);
    x[i] = xi;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}

/** Central differences at selected coordinates only (for inputs too large to sweep). */
export function fdGradAt(f: (x: Float64Array) => number, x: Float64Array, idx: number[], h = 1e-4): Float64Array {
  const g = new Float64Array(idx.length);
  idx.forEach((i, n) => {
    const xi = x[i];
    x[i] = xi + h;
    const fp = f(x);
    x[i] = xi - h;
    const fm = f(x);
    x[i] = xi;
    g[n] = (fp - fm) / (2 * h);
  });
  return g;
}

/** Assert that fn throws a BayesLoraError with the given code. */
export function expectError(fn: () => unknown, code: string): void {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  expect(thrown, `expected a ${code} error`).toBeInstanceOf(BayesLoraError);
  expect((thrown as BayesLoraError).code).toBe(code);
}

// ---- references (float64) -------------------------------------------------------------------

export function gatherRowsRef(x: Vec, idx: Vec, d: number): Float64Array {
  const out = new Float64Array(idx.length * d);
  for (let i = 0; i < idx.length; i++) for (let k = 0; k < d; k++) out[i * d + k] = x[idx[i] * d + k];
  return out;
}

export function rmsnormRef(x: Vec, w: Vec, N: number, d: number, eps: number): { out: Float64Array; rstd: Float64Array } {
  const out = new Float64Array(N * d);
  const rstd = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    let ss = 0;
    for (let k = 0; k < d; k++) ss += x[i * d + k] ** 2;
    const r = 1 / Math.sqrt(ss / d + eps);
    rstd[i] = r;
    for (let k = 0; k < d; k++) out[i * d + k] = x[i * d + k] * r * w[k];
  }
  return { out, rstd };
}

export function addBiasRef(x: Vec, bias: Vec, N: number, d: number): Float64Array {
  const out = new Float64Array(N * d);
  for (let i = 0; i < N; i++) for (let k = 0; k < d; k++) out[i * d + k] = x[i * d + k] + bias[k];
  return out;
}

/** HF rotate-half RoPE; sign -1 applies the inverse rotation. */
export function ropeRef(x: Vec, pos: Vec, invFreq: Vec, N: number, H: number, hd: number, sign = 1): Float64Array {
  const out = new Float64Array(N * H * hd);
  const half = hd / 2;
  for (let i = 0; i < N; i++)
    for (let h = 0; h < H; h++) {
      const o = (i * H + h) * hd;
      for (let j = 0; j < half; j++) {
        const ang = pos[i] * invFreq[j];
        const c = Math.cos(ang);
        const s = sign * Math.sin(ang);
        const a = x[o + j];
        const b = x[o + j + half];
        out[o + j] = a * c - b * s;
        out[o + j + half] = b * c + a * s;
      }
    }
  return out;
}

export interface AttnDims {
  B: number;
  T: number;
  H: number;
  Hkv: number;
  hd: number;
}

/**
 * Causal attention with key padding and grouped-query heads, straight from the
 * definition. Returns the output and the probabilities P [B, H, T, T].
 */
export function attentionRef(
  q: Vec,
  k: Vec,
  v: Vec,
  mask: Vec | undefined,
  s: AttnDims,
  scale: number,
): { out: Float64Array; probs: Float64Array } {
  const { B, T, H, Hkv, hd } = s;
  const group = H / Hkv;
  const out = new Float64Array(B * T * H * hd);
  const probs = new Float64Array(B * H * T * T);
  const real = (b: number, t: number) => (mask ? mask[b * T + t] === 1 : true);
  const qi = (b: number, t: number, h: number) => ((b * T + t) * H + h) * hd;
  const ki = (b: number, t: number, g: number) => ((b * T + t) * Hkv + g) * hd;
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / group);
      for (let t = 0; t < T; t++) {
        if (!real(b, t)) continue;
        const vis: number[] = [];
        for (let u = 0; u <= t; u++) if (real(b, u)) vis.push(u);
        if (vis.length === 0) continue;
        const sc = vis.map((u) => {
          let acc = 0;
          for (let j = 0; j < hd; j++) acc += q[qi(b, t, h) + j] * k[ki(b, u, g) + j];
          return scale * acc;
        });
        const mx = Math.max(...sc);
        const e = sc.map((z) => Math.exp(z - mx));
        const z = e.reduce((a, c) => a + c, 0);
        vis.forEach((u, n) => {
          const p = e[n] / z;
          probs[((b * H + h) * T + t) * T + u] = p;
          for (let j = 0; j < hd; j++) out[qi(b, t, h) + j] += p * v[ki(b, u, g) + j];
        });
      }
    }
  return { out, probs };
}

export function siluRef(g: number): number {
  return g / (1 + Math.exp(-g));
}

export function swigluRef(gate: Vec, up: Vec): Float64Array {
  const out = new Float64Array(gate.length);
  for (let i = 0; i < gate.length; i++) out[i] = siluRef(gate[i]) * up[i];
  return out;
}

// The counter-based uniform of backend.h (splitmix64 finaliser), in BigInt.
const M64 = (1n << 64n) - 1n;
function mix64(x: bigint): bigint {
  x = (x + 0x9e3779b97f4a7c15n) & M64;
  x = ((x ^ (x >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
  x = ((x ^ (x >> 27n)) * 0x94d049bb133111ebn) & M64;
  return x ^ (x >> 31n);
}
export function uniform01(seed: bigint, i: number): number {
  const x = mix64((seed * 0x632be59bd9b4e019n + BigInt(i)) & M64);
  return Number(x >> 40n) / 16777216;
}

/** Keep mask of dropout: u >= p, p compared in float32 as the kernels see it. */
export function dropoutKeep(n: number, p: number, seed: bigint): Uint8Array {
  const pf = Math.fround(p);
  const keep = new Uint8Array(n);
  for (let i = 0; i < n; i++) keep[i] = uniform01(seed, i) >= pf ? 1 : 0;
  return keep;
}

export function dropoutRef(x: Vec, p: number, seed: bigint): Float64Array {
  const keep = dropoutKeep(x.length, p, seed);
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = keep[i] ? x[i] / (1 - p) : 0;
  return out;
}

export function rowsDotRef(h: Vec, W: Vec, rows: Vec, Bn: number, C: number, d: number): Float64Array {
  const out = new Float64Array(Bn * C);
  for (let b = 0; b < Bn; b++)
    for (let c = 0; c < C; c++) {
      let acc = 0;
      for (let k = 0; k < d; k++) acc += h[b * d + k] * W[rows[b * C + c] * d + k];
      out[b * C + c] = acc;
    }
  return out;
}

export function softmaxXentRef(
  logits: Vec,
  labels: Vec,
  N: number,
  C: number,
): { loss: Float64Array; probs: Float64Array } {
  const loss = new Float64Array(N);
  const probs = new Float64Array(N * C);
  for (let i = 0; i < N; i++) {
    let mx = -Infinity;
    for (let c = 0; c < C; c++) mx = Math.max(mx, logits[i * C + c]);
    let z = 0;
    for (let c = 0; c < C; c++) z += Math.exp(logits[i * C + c] - mx);
    for (let c = 0; c < C; c++) probs[i * C + c] = Math.exp(logits[i * C + c] - mx) / z;
    loss[i] = labels[i] < 0 ? 0 : Math.log(z) + mx - logits[i * C + labels[i]];
  }
  return { loss, probs };
}

export interface AdamHyper {
  lr: number;
  b1: number;
  b2: number;
  eps: number;
  wd: number;
  gradScale: number;
}

/** One AdamW step in float64 (decoupled decay with p before the update); updates p, m, v in place. */
export function adamwRef(p: Float64Array, g: Vec, m: Float64Array, v: Float64Array, step: number, o: AdamHyper): void {
  for (let i = 0; i < p.length; i++) {
    const gi = g[i] * o.gradScale;
    m[i] = o.b1 * m[i] + (1 - o.b1) * gi;
    v[i] = o.b2 * v[i] + (1 - o.b2) * gi * gi;
    const mhat = m[i] / (1 - o.b1 ** step);
    const vhat = v[i] / (1 - o.b2 ** step);
    p[i] -= o.lr * (mhat / (Math.sqrt(vhat) + o.eps) + o.wd * p[i]);
  }
}
