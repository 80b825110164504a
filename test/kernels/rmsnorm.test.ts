// RMSNorm: forward and rstd vs the float64 reference, backward (dx, dw) vs
// finite differences, accumulation, nullable dw, errors.
import { describe, expect, it } from 'vitest';
import { rmsnormBwd, rmsnormFwd } from '../../ts/kernels.ts';
import { Rng, add, dot, expectClose, expectError, expectGradClose, f64, fdGrad, rmsnormRef } from '../helpers/reference.ts';

describe('rmsnorm', () => {
  const r = new Rng(31);
  const N = 6;
  const d = 37; // not a multiple of the kernel's 16 partial sums
  const eps = 1e-5;
  const x = r.f32(N * d, 2, 0.5);
  const w = r.f32(d, 0.3, 1);

  it('forward and rstd match the reference', () => {
    const { out, rstd } = rmsnormFwd({ x, w, N, d, eps });
    const ref = rmsnormRef(x, w, N, d, eps);
    // one float32 sum of d squares, a sqrt and two products: ~1e-6 relative
    expectClose(rstd, ref.rstd, { atol: 0, rtol: 2e-6 }, 'rstd');
    expectClose(out, ref.out, { atol: 1e-6, rtol: 4e-6 }, 'out');
  });

  it('a long row (d = 4096) keeps float32 accuracy', () => {
    const big = new Rng(32).f32(2 * 4096, 1, 3);
    const ones = new Float32Array(4096).fill(1);
    const { rstd } = rmsnormFwd({ x: big, w: ones, N: 2, d: 4096, eps });
    expectClose(rstd, rmsnormRef(big, ones, 2, 4096, eps).rstd, { atol: 0, rtol: 1e-5 }, 'rstd');
  });

  it('backward matches finite differences for dx and dw', () => {
    const R = r.f32(N * d);
    const { rstd } = rmsnormFwd({ x, w, N, d, eps });
    const g = rmsnormBwd({ dout: R, x, w, rstd, N, d });
    const xd = f64(x);
    const wd = f64(w);
    expectGradClose(g.dx, fdGrad((xx) => dot(rmsnormRef(xx, wd, N, d, eps).out, R), xd), 'dx');
    expectGradClose(g.dw, fdGrad((ww) => dot(rmsnormRef(xd, ww, N, d, eps).out, R), wd), 'dw');
  });

  it('accumulates into dx and dw; dw = null is skipped', () => {
    const R = r.f32(N * d);
    const { rstd } = rmsnormFwd({ x, w, N, d, eps });
    const fresh = rmsnormBwd({ dout: R, x, w, rstd, N, d });
    const dx = r.f32(N * d);
    const dw = r.f32(d);
    const acc = rmsnormBwd({ dout: R, x, w, rstd, N, d, dx, dw });
    expectClose(acc.dx, add(dx, fresh.dx), { atol: 1e-6, rtol: 1e-6 }, 'dx');
    expectClose(acc.dw, add(dw, fresh.dw!), { atol: 1e-6, rtol: 1e-6 }, 'dw');
    const skip = rmsnormBwd({ dout: R, x, w, rstd, N, d, dw: null });
    expect(skip.dw).toBeNull();
    expectClose(skip.dx, fresh.dx, { atol: 0 }, 'dx without dw');
  });

  it('rejects bad arguments', () => {
    expectError(() => rmsnormFwd({ x, w: w.subarray(1), N, d, eps }), 'SHAPE_MISMATCH');
    expectError(() => rmsnormFwd({ x, w, N, d, eps: -1 }), 'INVALID_ARGUMENT');
    expectError(() => rmsnormFwd({ x, w, N: -1, d, eps }), 'INVALID_ARGUMENT');
    expectError(() => rmsnormBwd({ dout: x, x, w, rstd: new Float32Array(N - 1), N, d }), 'SHAPE_MISMATCH');
  });
});
