// Restricted LM head: logits over a few vocabulary rows per example. Forward
// vs reference, backward (dh, dW) vs finite differences, repeated rows,
// accumulation, nullable dW, errors.
import { describe, expect, it } from 'vitest';
import { rowsDotBwd, rowsDotFwd } from '../../ts/kernels.ts';
import { Rng, add, dot, expectClose, expectError, expectGradClose, f64, fdGrad, rowsDotRef } from '../helpers/reference.ts';

describe('rows_dot', () => {
  const r = new Rng(81);
  const Bn = 4;
  const C = 3;
  const V = 9;
  const d = 21;
  const h = r.f32(Bn * d);
  const W = r.f32(V * d);
  // row 2 appears for several examples (dW must sum them)
  const rows = Int32Array.from([2, 5, 7, 2, 0, 8, 1, 2, 3, 6, 2, 4]);

  it('forward matches the reference', () => {
    // float32 dot products of length d with partial sums: ~sqrt(d) ulp of sum |h||W|
    expectClose(rowsDotFwd({ h, W, rows, Bn, C, V, d }), rowsDotRef(h, W, rows, Bn, C, d), { atol: 2e-6, rtol: 1e-6 }, 'logits');
  });

  it('a long row (d = 5000) stays accurate', () => {
    const rr = new Rng(82);
    const hh = rr.f32(5000);
    const WW = rr.f32(2 * 5000);
    const rw = Int32Array.from([1, 0]);
    const want = rowsDotRef(hh, WW, rw, 1, 2, 5000);
    // |terms| ~ 1, sum ~ sqrt(5000) ~ 70: error budget ~1e-4 absolute
    expectClose(rowsDotFwd({ h: hh, W: WW, rows: rw, Bn: 1, C: 2, V: 2, d: 5000 }), want, { atol: 1e-4 }, 'logits');
  });

  it('backward matches finite differences', () => {
    const R = r.f32(Bn * C);
    const g = rowsDotBwd({ dlogits: R, h, W, rows, Bn, C, V, d });
    const hd = f64(h);
    const Wd = f64(W);
    expectGradClose(g.dh, fdGrad((x) => dot(rowsDotRef(x, Wd, rows, Bn, C, d), R), hd), 'dh');
    expectGradClose(g.dW, fdGrad((x) => dot(rowsDotRef(hd, x, rows, Bn, C, d), R), Wd), 'dW');
  });

  it('accumulates; dW = null is skipped', () => {
    const R = r.f32(Bn * C);
    const fresh = rowsDotBwd({ dlogits: R, h, W, rows, Bn, C, V, d });
    const dh = r.f32(Bn * d);
    const dW = r.f32(V * d);
    const acc = rowsDotBwd({ dlogits: R, h, W, rows, Bn, C, V, d, dh, dW });
    expectClose(acc.dh, add(dh, fresh.dh), { atol: 1e-6, rtol: 1e-6 }, 'dh');
    expectClose(acc.dW, add(dW, fresh.dW!), { atol: 1e-6, rtol: 1e-6 }, 'dW');
    const skip = rowsDotBwd({ dlogits: R, h, W, rows, Bn, C, V, d, dW: null });
    expect(skip.dW).toBeNull();
    expect(skip.dh).toEqual(fresh.dh);
  });

  it('rejects bad arguments', () => {
    expectError(() => rowsDotFwd({ h, W, rows: Int32Array.from([...rows.subarray(1), V]), Bn, C, V, d }), 'INVALID_ARGUMENT');
    expectError(() => rowsDotFwd({ h, W, rows: rows.subarray(1), Bn, C, V, d }), 'SHAPE_MISMATCH');
    expectError(() => rowsDotFwd({ h, W, rows, Bn, C, V: V + 1, d }), 'SHAPE_MISMATCH');
    expectError(() => rowsDotBwd({ dlogits: new Float32Array(Bn * C), h, W, rows, Bn, C, V, d, dW: new Float32Array(2) }), 'SHAPE_MISMATCH');
  });
});
