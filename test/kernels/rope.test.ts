// Rotary position embedding (HF rotate-half): forward vs the float64
// reference, backward (inverse rotation) vs finite differences, errors.
import { describe, expect, it } from 'vitest';
import { ropeBwd, ropeFwd } from '../../ts/kernels.ts';
import { Rng, dot, expectClose, expectError, expectGradClose, f64, fdGrad, ropeRef } from '../helpers/reference.ts';

function invFreq(hd: number, theta = 10000): Float32Array {
  // LLaMA: inv_freq[j] = theta^(-2j/hd)
  const a = new Float32Array(hd / 2);
  for (let j = 0; j < hd / 2; j++) a[j] = 1 / theta ** ((2 * j) / hd);
  return a;
}

describe('rope', () => {
  const r = new Rng(51);
  const N = 6;
  const H = 3;
  const hd = 8;
  const x = r.f32(N * H * hd);
  const pos = Int32Array.from([0, 1, 2, 7, 100, 4095]);
  const inv = invFreq(hd);

  it('forward matches the reference, including large positions', () => {
    // a 2x2 rotation in float32 of a float64-accurate angle: ~2 ulp per output
    expectClose(ropeFwd({ x, pos, invFreq: inv, N, H, hd }), ropeRef(x, pos, inv, N, H, hd), { atol: 1e-6, rtol: 1e-6 }, 'out');
  });

  it('position 0 is the identity and the rotation preserves norms', () => {
    const y = ropeFwd({ x, pos, invFreq: inv, N, H, hd });
    for (let k = 0; k < H * hd; k++) expect(y[k]).toBe(x[k]);
    const n2 = (a: ArrayLike<number>, i: number) => {
      let s = 0;
      for (let k = 0; k < H * hd; k++) s += a[i * H * hd + k] ** 2;
      return s;
    };
    for (let i = 0; i < N; i++) expect(n2(y, i)).toBeCloseTo(n2(x, i), 4);
  });

  it('backward matches finite differences and inverts the forward', () => {
    const R = r.f32(N * H * hd);
    const fd = fdGrad((xx) => dot(ropeRef(xx, pos, inv, N, H, hd), R), f64(x));
    expectGradClose(ropeBwd({ dy: R, pos, invFreq: inv, N, H, hd }), fd, 'dx');
    const back = ropeBwd({ dy: ropeFwd({ x, pos, invFreq: inv, N, H, hd }), pos, invFreq: inv, N, H, hd });
    expectClose(back, x, { atol: 2e-6, rtol: 2e-6 }, 'R^T R x');
  });

  it('model-style positions (max < N) across calls that change frequencies and lengths', () => {
    // These calls go through the kept cos/sin table: a stale table (other
    // frequencies, too few rows) would rotate by the wrong angles.
    const calls: Array<{ n: number; theta: number; hdim: number; pos: (i: number) => number }> = [
      { n: 12, theta: 10000, hdim: 8, pos: (i) => i },
      { n: 12, theta: 500000, hdim: 8, pos: (i) => i }, // same sizes, other frequencies
      { n: 40, theta: 500000, hdim: 8, pos: (i) => i }, // more rows than kept
      { n: 12, theta: 500000, hdim: 8, pos: (i) => i % 6 }, // two examples of 6 (fewer rows: reuse)
      { n: 12, theta: 10000, hdim: 16, pos: (i) => (i * 5) % 12 }, // other head size
      { n: 12, theta: 10000, hdim: 8, pos: (i) => 11 - i }, // back to the first frequencies
    ];
    for (const [c, k] of calls.map((c, k) => [c, k] as const)) {
      const p = Int32Array.from({ length: c.n }, (_, i) => c.pos(i));
      const f = invFreq(c.hdim, c.theta);
      const xx = r.f32(c.n * H * c.hdim);
      const y = ropeFwd({ x: xx, pos: p, invFreq: f, N: c.n, H, hd: c.hdim });
      expectClose(y, ropeRef(xx, p, f, c.n, H, c.hdim), { atol: 1e-6, rtol: 1e-6 }, `call ${k} forward`);
      const back = ropeBwd({ dy: y, pos: p, invFreq: f, N: c.n, H, hd: c.hdim });
      expectClose(back, xx, { atol: 2e-6, rtol: 2e-6 }, `call ${k} R^T R x`);
    }
  });

  it('rejects bad arguments', () => {
    expectError(() => ropeFwd({ x: new Float32Array(N * H * 7), pos, invFreq: new Float32Array(3), N, H, hd: 7 }), 'INVALID_ARGUMENT');
    expectError(() => ropeFwd({ x, pos, invFreq: new Float32Array(hd), N, H, hd }), 'SHAPE_MISMATCH');
    expectError(() => ropeFwd({ x, pos: pos.subarray(1), invFreq: inv, N, H, hd }), 'SHAPE_MISMATCH');
    expectError(() => ropeBwd({ dy: x.subarray(2), pos, invFreq: inv, N, H, hd }), 'SHAPE_MISMATCH');
  });
});
