// Dropout with the shared counter-based mask: forward vs the reference mask
// (computed independently from the backend.h hash), in-place aliasing,
// backward as the adjoint (finite differences), accumulation, errors.
import { describe, expect, it } from 'vitest';
import { dropoutBwd, dropoutFwd } from '../../ts/kernels.ts';
import { Rng, add, dot, dropoutKeep, dropoutRef, expectClose, expectError, expectGradClose, f64, fdGrad } from '../helpers/reference.ts';

describe('dropout', () => {
  const r = new Rng(71);
  const n = 20000; // > one parallel chunk, so indices must be global
  const x = r.f32(n);
  const p = 0.3;
  const seed = 1234n;

  it('forward uses the documented mask and scaling', () => {
    const out = dropoutFwd({ x, n, p, seed });
    expectClose(out, dropoutRef(x, p, seed), { atol: 0, rtol: 2e-7 }, 'out');
    const kept = dropoutKeep(n, p, seed).reduce((a, b) => a + b, 0);
    expect(Math.abs(kept / n - (1 - p))).toBeLessThan(0.015); // binomial sd ~0.0032
  });

  it('is deterministic in the seed, differs across seeds, accepts number seeds', () => {
    const a = dropoutFwd({ x, n, p, seed: 99 });
    expect(dropoutFwd({ x, n, p, seed: 99n })).toEqual(a);
    expect(dropoutFwd({ x, n, p, seed: 100 })).not.toEqual(a);
    // seeds above 2^53 are reachable as BigInt
    const big = (1n << 63n) + 5n;
    expectClose(dropoutFwd({ x, n, p, seed: big }), dropoutRef(x, p, big), { atol: 0, rtol: 2e-7 }, 'big seed');
  });

  it('in place (out aliases x) gives the same result', () => {
    expect(dropoutFwd({ x, n, p, seed, inPlace: true })).toEqual(dropoutFwd({ x, n, p, seed }));
  });

  it('p = 0 is the identity', () => {
    expect(dropoutFwd({ x, n, p: 0, seed })).toEqual(x);
  });

  it('backward uses the same mask (finite differences) and accumulates', () => {
    const m = 300;
    const xs = x.subarray(0, m);
    const R = r.f32(m);
    const g = dropoutBwd({ dout: R, n: m, p, seed });
    expectGradClose(g, fdGrad((xx) => dot(dropoutRef(xx, p, seed), R), f64(xs)), 'dx');
    const init = r.f32(m);
    expectClose(dropoutBwd({ dout: R, n: m, p, seed, dx: init }), add(init, g), { atol: 1e-6, rtol: 1e-6 }, 'accumulated');
  });

  it('rejects bad arguments', () => {
    expectError(() => dropoutFwd({ x, n, p: 1, seed }), 'INVALID_ARGUMENT');
    expectError(() => dropoutFwd({ x, n, p: -0.1, seed }), 'INVALID_ARGUMENT');
    expectError(() => dropoutFwd({ x, n, p, seed: -1 }), 'INVALID_ARGUMENT');
    expectError(() => dropoutFwd({ x, n, p, seed: 1.5 }), 'INVALID_ARGUMENT');
    expectError(() => dropoutFwd({ x, n, p, seed: 1n << 64n }), 'INVALID_ARGUMENT');
    expectError(() => dropoutFwd({ x, n: n + 1, p, seed }), 'SHAPE_MISMATCH');
  });
});
