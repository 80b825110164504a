// The K-FAC building blocks and the bf16-weight GEMM behind the backend seam
// (Backend::token_reduce, kfac_accumulate, gram64, gemm_bf16w) on the CPU
// backend against float64 references, plus their argument checks. The CUDA
// versions are compared with these in test/gpu/ops.test.mjs (skipped without
// a GPU). None of them has a gradient (they build curvature sums or run a
// frozen-weight product), so there is no finite-difference check here.
import { describe, expect, it } from 'vitest';
import { loadNative } from '../../ts/native.ts';
import { f32ToBf16Bits, bf16BitsToF32 } from '../../ts/io/safetensors.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const ops = (loadNative() as any).ops;

function rnd(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 4294967296) * 2 - 1;
  });
}
function maxRel(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let m = 0, scale = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  for (let i = 0; i < want.length; i++) m = Math.max(m, Math.abs(got[i] - want[i]) / (scale || 1));
  return m;
}

describe('token_reduce (cpu)', () => {
  const [B, T, d] = [4, 5, 7];
  const X = rnd(B * T * d, 1);
  const mask = Uint8Array.from({ length: B * T }, (_, i) => (i % T < 1 + ((i / T) | 0) % T ? 1 : 0));
  mask.fill(0, 3 * T, 4 * T); // example 3: no real token
  const ex = Int32Array.from([2, 0, 3, 1, 2]);
  const ref = (mean: boolean) => {
    const out = new Float64Array(ex.length * d);
    ex.forEach((e, i) => {
      let cnt = 0;
      for (let t = 0; t < T; t++) {
        if (!mask[e * T + t]) continue;
        cnt++;
        for (let j = 0; j < d; j++) out[i * d + j] += X[(e * T + t) * d + j];
      }
      if (mean && cnt) for (let j = 0; j < d; j++) out[i * d + j] /= cnt;
    });
    return out;
  };
  for (const mean of [true, false]) {
    it(`${mean ? 'mean' : 'sum'} of the real tokens of the selected examples`, () => {
      const out = ops.token_reduce('cpu', { X, mask, ex, B, T, d, n: ex.length, mean });
      expect(out.length).toBe(ex.length * d);
      expect(maxRel(out, ref(mean))).toBeLessThan(1e-6);
      expect(Array.from(out.subarray(2 * d, 3 * d))).toEqual(new Array(d).fill(0)); // no real token: 0
    });
  }
  it('rejects an example index out of range', () => {
    expect(() => ops.token_reduce('cpu', { X, mask, ex: Int32Array.from([4]), B, T, d, n: 1 })).toThrow(/outside/);
  });
});

describe('kfac_accumulate (cpu)', () => {
  it('S += scale X^T X with a row stride, both triangles, float64 sums', () => {
    const [n, d, ldx] = [6, 5, 8];
    const X = rnd((n - 1) * ldx + d, 3);
    const S0 = Float64Array.from(rnd(d * d, 4));
    const scale = 0.37;
    const S = ops.kfac_accumulate('cpu', { X, n, d, ldx, scale, S: S0 });
    const want = Float64Array.from(S0);
    for (let a = 0; a < d; a++)
      for (let b = 0; b < d; b++) {
        let s = 0;
        for (let i = 0; i < n; i++) s += X[i * ldx + a] * X[i * ldx + b];
        want[a * d + b] += scale * s;
      }
    expect(S).toBeInstanceOf(Float64Array);
    expect(maxRel(S, want)).toBeLessThan(1e-6);
    for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) expect(S[a * d + b] - S0[a * d + b]).toBeCloseTo(S[b * d + a] - S0[b * d + a], 12);
  });
  it('n = 0 adds nothing; ldx < d is refused', () => {
    const S0 = Float64Array.from([1, 2, 3, 4]);
    expect(Array.from(ops.kfac_accumulate('cpu', { X: new Float32Array(0), n: 0, d: 2, scale: 1, S: S0 }))).toEqual([1, 2, 3, 4]);
    expect(() => ops.kfac_accumulate('cpu', { X: rnd(4, 1), n: 2, d: 2, ldx: 1, scale: 1 })).toThrow(/ldx/);
  });
});

describe('gram64 (cpu)', () => {
  it('G = M^T M in float64, exactly symmetric, with a row stride', () => {
    const [d, n, ldm] = [9, 4, 6];
    const M = Float64Array.from(rnd((d - 1) * ldm + n, 5), (v) => v * 3.1);
    const G = ops.gram64('cpu', { M, d, n, ldm });
    for (let a = 0; a < n; a++)
      for (let b = 0; b < n; b++) {
        let s = 0;
        for (let i = 0; i < d; i++) s += M[i * ldm + a] * M[i * ldm + b];
        expect(G[a * n + b]).toBeCloseTo(s, 12);
        expect(G[a * n + b]).toBe(G[b * n + a]);
      }
  });
});

describe('gemm_bf16w (cpu)', () => {
  for (const [ta, tb] of [[false, false], [false, true], [true, false], [true, true]] as const) {
    it(`C = alpha op(A) op(W) + beta C with W in bf16 (ta ${ta}, tb ${tb})`, () => {
      const [M, N, K] = [5, 6, 7];
      const A = rnd(M * K, 7);
      const Wf = rnd(K * N, 8);
      const W = Uint16Array.from(Wf, (v) => f32ToBf16Bits(v));
      const C0 = rnd(M * N, 9);
      const [alpha, beta] = [1.3, 0.5];
      const C = ops.gemm_bf16w('cpu', { ta, tb, M, N, K, alpha, beta, A, W, C: C0 });
      const a = (i: number, k: number) => (ta ? A[k * M + i] : A[i * K + k]);
      const w = (k: number, j: number) => bf16BitsToF32(tb ? W[j * K + k] : W[k * N + j]);
      const want = new Float64Array(M * N);
      for (let i = 0; i < M; i++)
        for (let j = 0; j < N; j++) {
          let s = 0;
          for (let k = 0; k < K; k++) s += a(i, k) * w(k, j);
          want[i * N + j] = alpha * s + beta * C0[i * N + j];
        }
      // CPU widens W exactly: only float32 summation rounding remains
      expect(maxRel(C, want)).toBeLessThan(1e-6);
    });
  }
  it('refuses a W of the wrong type or length', () => {
    const base = { M: 2, N: 2, K: 2, alpha: 1, A: rnd(4, 1) };
    expect(() => ops.gemm_bf16w('cpu', { ...base, W: rnd(4, 2) })).toThrow(/Uint16Array/);
    expect(() => ops.gemm_bf16w('cpu', { ...base, W: new Uint16Array(3) })).toThrow();
  });
});
