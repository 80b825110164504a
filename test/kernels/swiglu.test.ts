// SwiGLU activation: forward vs reference (including large |gate|),
// backward vs finite differences, accumulation, errors.
import { describe, expect, it } from 'vitest';
import { swigluBwd, swigluFwd } from '../../ts/kernels.ts';
import { Rng, add, dot, expectClose, expectError, expectGradClose, f64, fdGrad, swigluRef } from '../helpers/reference.ts';

describe('swiglu', () => {
  const r = new Rng(61);
  const n = 257;
  const gate = r.f32(n, 3);
  const up = r.f32(n);

  it('forward matches the reference', () => {
    // exp, a division and two products in float32: a few ulp
    expectClose(swigluFwd({ gate, up, n }), swigluRef(gate, up), { atol: 1e-7, rtol: 1e-6 }, 'out');
  });

  it('is finite for extreme gates', () => {
    const g = Float32Array.from([-1000, -90, 90, 1000, 0]);
    const u = Float32Array.from([1, 1, 1, 1, 1]);
    const out = swigluFwd({ gate: g, up: u, n: 5 });
    expectClose(out, swigluRef(g, u), { atol: 1e-30, rtol: 1e-6 }, 'out');
    const d = swigluBwd({ dout: u, gate: g, up: u, n: 5 });
    for (const v of [...d.dgate, ...d.dup]) expect(Number.isFinite(v)).toBe(true);
    expect(d.dgate[4]).toBeCloseTo(0.5, 7); // silu'(0) = 1/2
  });

  it('matches the reference over a wide range of gates (8-lane path and its tail)', () => {
    // gates from -100 to 100 (exp's clamp at |g| > 87 included), 1003 values: 125 vectors + a tail of 3
    const m = 1003;
    const g = Float32Array.from({ length: m }, (_, i) => -100 + (200 * i) / (m - 1));
    const u = r.f32(m);
    expectClose(swigluFwd({ gate: g, up: u, n: m }), swigluRef(g, u), { atol: 1e-30, rtol: 2e-6 }, 'out');
    const R = r.f32(m);
    const d = swigluBwd({ dout: R, gate: g, up: u, n: m });
    const gd = f64(g);
    const ud = f64(u);
    // analytic derivatives in float64
    const s = gd.map((x) => 1 / (1 + Math.exp(-x)));
    const dgRef = gd.map((x, i) => R[i] * ud[i] * s[i] * (1 + x * (1 - s[i])));
    const duRef = gd.map((x, i) => R[i] * x * s[i]);
    expectClose(d.dgate, dgRef, { atol: 1e-30, rtol: 5e-6 }, 'dgate');
    expectClose(d.dup, duRef, { atol: 1e-30, rtol: 5e-6 }, 'dup');
  });

  it('backward matches finite differences and accumulates', () => {
    const R = r.f32(n);
    const g = swigluBwd({ dout: R, gate, up, n });
    const gd = f64(gate);
    const ud = f64(up);
    expectGradClose(g.dgate, fdGrad((x) => dot(swigluRef(x, ud), R), gd), 'dgate');
    expectGradClose(g.dup, fdGrad((x) => dot(swigluRef(gd, x), R), ud), 'dup');
    const dg = r.f32(n);
    const du = r.f32(n);
    const acc = swigluBwd({ dout: R, gate, up, n, dgate: dg, dup: du });
    expectClose(acc.dgate, add(dg, g.dgate), { atol: 1e-6, rtol: 1e-6 }, 'dgate');
    expectClose(acc.dup, add(du, g.dup), { atol: 1e-6, rtol: 1e-6 }, 'dup');
  });

  it('rejects bad arguments', () => {
    expectError(() => swigluFwd({ gate, up: up.subarray(1), n }), 'SHAPE_MISMATCH');
    expectError(() => swigluBwd({ dout: gate, gate, up, n, dup: new Float32Array(1) }), 'SHAPE_MISMATCH');
    expectError(() => swigluFwd({ gate, up, n: -1 }), 'INVALID_ARGUMENT');
  });
});
