// Fused LoRA branch (Backend::lora_fwd / lora_bwd) on the CPU backend against
// a float64 reference and finite differences of a scalar loss.
import { describe, expect, it } from 'vitest';
import { loadNative } from '../../ts/native.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const ops = (loadNative() as any).ops;

function rnd(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 4294967296) * 2 - 1;
  });
}

// y0 + s * (x A^T) B^T in float64
function branch(x: ArrayLike<number>, A: ArrayLike<number>, B: ArrayLike<number>, y0: ArrayLike<number>, N: number, dIn: number, dOut: number, r: number, s: number): number[] {
  const y = Array.from(y0, Number);
  for (let n = 0; n < N; n++) {
    const u = new Array(r).fill(0);
    for (let j = 0; j < r; j++) for (let k = 0; k < dIn; k++) u[j] += x[n * dIn + k] * A[j * dIn + k];
    for (let c = 0; c < dOut; c++) for (let j = 0; j < r; j++) y[n * dOut + c] += s * u[j] * B[c * r + j];
  }
  return y;
}

function maxRel(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < want.length; i++) m = Math.max(m, Math.abs(got[i] - want[i]) / (1e-6 + Math.abs(want[i])));
  return m;
}

describe('lora_fwd / lora_bwd (cpu)', () => {
  const [N, dIn, dOut, r, s] = [9, 13, 11, 3, 1.7];
  const x = rnd(N * dIn, 1), A = rnd(r * dIn, 2), B = rnd(dOut * r, 3), y0 = rnd(N * dOut, 4), g = rnd(N * dOut, 5);

  it('forward adds s B (A x) to the frozen output', () => {
    const out = ops.lora_fwd('cpu', { x, A, B, y: y0, N, dIn, dOut, r, s });
    expect(maxRel(out.y, branch(x, A, B, y0, N, dIn, dOut, r, s))).toBeLessThan(1e-5);
  });

  it('backward matches finite differences of sum(g * y) and accumulates', () => {
    const { u } = ops.lora_fwd('cpu', { x, A, B, N, dIn, dOut, r, s });
    const dA0 = rnd(r * dIn, 6);
    const res = ops.lora_bwd('cpu', { g, x, u, A, B, N, dIn, dOut, r, s, dA: dA0 });
    const loss = (xx: ArrayLike<number>, AA: ArrayLike<number>, BB: ArrayLike<number>) =>
      branch(xx, AA, BB, new Float64Array(N * dOut), N, dIn, dOut, r, s).reduce((a, v, i) => a + v * g[i], 0);
    const fd = (arr: Float32Array, which: number) => {
      const out: number[] = [];
      const base = Float64Array.from(arr);
      for (let i = 0; i < arr.length; i++) {
        const p = Float64Array.from(base), m = Float64Array.from(base);
        p[i] += 1e-4;
        m[i] -= 1e-4;
        const args = (v: Float64Array) => (which === 0 ? loss(v, A, B) : which === 1 ? loss(x, v, B) : loss(x, A, v));
        out.push((args(p) - args(m)) / 2e-4);
      }
      return out;
    };
    const wantDA = fd(A, 1).map((v, i) => v + dA0[i]);
    expect(maxRel(res.dA, wantDA)).toBeLessThan(1e-4);
    expect(maxRel(res.dB, fd(B, 2))).toBeLessThan(1e-4);
    expect(maxRel(res.dx, fd(x, 0))).toBeLessThan(1e-4);
    const none = ops.lora_bwd('cpu', { g, x, u, A, B, N, dIn, dOut, r, s, dA: null, dB: null, dx: null });
    expect(none.dA).toBeNull();
    expect(Array.from(none.gu)).toEqual(Array.from(res.gu));
  });
});
