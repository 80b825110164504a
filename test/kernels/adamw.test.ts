// AdamW: several steps vs the float64 reference (bias correction by 1-based
// step, gradient scaling, decoupled weight decay), the first-step closed form,
// and argument errors.
import { describe, expect, it } from 'vitest';
import { adamw } from '../../ts/kernels.ts';
import { type AdamHyper, Rng, adamwRef, expectClose, expectError } from '../helpers/reference.ts';

describe('adamw', () => {
  const hp: AdamHyper = { lr: 1e-2, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0.1, gradScale: 0.5 };
  const n = 1000;

  it('five steps match the float64 reference', () => {
    const r = new Rng(101);
    let p: Float32Array = r.f32(n);
    let m: Float32Array = new Float32Array(n);
    let v: Float32Array = new Float32Array(n);
    const pr = Float64Array.from(p);
    const mr = new Float64Array(n);
    const vr = new Float64Array(n);
    for (let step = 1; step <= 5; step++) {
      const g = r.f32(n, 2);
      ({ p, m, v } = adamw({ p, g, m, v, n, step, ...hp }));
      adamwRef(pr, g, mr, vr, step, hp);
    }
    // each step moves p by O(lr); float32 carries ~1e-7 relative per operation
    expectClose(m, mr, { atol: 1e-6, rtol: 1e-5 }, 'm');
    expectClose(v, vr, { atol: 1e-7, rtol: 1e-5 }, 'v');
    expectClose(p, pr, { atol: 1e-6, rtol: 1e-6 }, 'p');
  });

  it('first step: update is lr * (sign(g) + wd * p) for |g| >> eps', () => {
    const p = Float32Array.from([1, -2, 0.5]);
    const g = Float32Array.from([3, -0.1, 0]);
    const out = adamw({ p, g, m: new Float32Array(3), v: new Float32Array(3), n: 3, step: 1, ...hp });
    // mhat = g', vhat = g'^2 at step 1, so mhat/sqrt(vhat) = sign(g)
    expect(out.p[0]).toBeCloseTo(1 - 0.01 * (1 + 0.1 * 1), 6);
    expect(out.p[1]).toBeCloseTo(-2 - 0.01 * (-1 + 0.1 * -2), 6);
    expect(out.p[2]).toBeCloseTo(0.5 - 0.01 * 0.1 * 0.5, 7); // zero gradient: decay only
  });

  it('rejects bad arguments', () => {
    const a = new Float32Array(4);
    const ok = { p: a, g: a, m: a, v: a, n: 4, step: 1, ...hp };
    expect(() => adamw(ok)).not.toThrow();
    expectError(() => adamw({ ...ok, step: 0 }), 'INVALID_ARGUMENT');
    expectError(() => adamw({ ...ok, b2: 1 }), 'INVALID_ARGUMENT');
    expectError(() => adamw({ ...ok, eps: 0 }), 'INVALID_ARGUMENT');
    expectError(() => adamw({ ...ok, lr: NaN }), 'INVALID_ARGUMENT');
    expectError(() => adamw({ ...ok, v: new Float32Array(3) }), 'SHAPE_MISMATCH');
  });
});
