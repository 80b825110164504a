// Per-feature bias add and its gradient (column sums).
import { describe, it } from 'vitest';
import { addBias, biasBwd } from '../../ts/kernels.ts';
import { Rng, add, addBiasRef, dot, expectClose, expectError, expectGradClose, f64, fdGrad } from '../helpers/reference.ts';

describe('bias', () => {
  const r = new Rng(41);
  const N = 70;
  const d = 13;
  const x = r.f32(N * d);
  const bias = r.f32(d);

  it('add_bias: one float32 addition per element (exact to rounding)', () => {
    expectClose(addBias({ x, bias, N, d }), addBiasRef(x, bias, N, d), { atol: 0, rtol: 6e-8 }, 'out');
  });

  it('bias_bwd matches finite differences and accumulates', () => {
    const R = r.f32(N * d);
    const g = biasBwd({ dout: R, N, d });
    expectGradClose(g, fdGrad((b) => dot(addBiasRef(x, b, N, d), R), f64(bias)), 'dbias');
    const init = r.f32(d);
    expectClose(biasBwd({ dout: R, N, d, dbias: init }), add(init, g), { atol: 1e-6, rtol: 1e-6 }, 'accumulated');
  });

  it('bias_bwd sums many rows accurately (float64 accumulation)', () => {
    const Nbig = 20000;
    const ones = new Float32Array(Nbig * 2).fill(0.1);
    // 20000 * float32(0.1), exactly representable sum in float64 terms
    const want = 20000 * Math.fround(0.1);
    expectClose(biasBwd({ dout: ones, N: Nbig, d: 2 }), [want, want], { atol: 0, rtol: 1e-7 }, 'dbias');
  });

  it('rejects bad arguments', () => {
    expectError(() => addBias({ x, bias: new Float32Array(d + 1), N, d }), 'SHAPE_MISMATCH');
    expectError(() => biasBwd({ dout: x, N, d, dbias: new Float32Array(1) }), 'SHAPE_MISMATCH');
  });
});
