// Softmax cross-entropy: loss and probs vs reference (including huge logits),
// dlogits vs finite differences of dscale * sum(loss), ignored labels,
// optional outputs, errors.
import { describe, expect, it } from 'vitest';
import { softmaxXent } from '../../ts/kernels.ts';
import { Rng, expectClose, expectError, expectGradClose, f64, fdGrad, softmaxXentRef } from '../helpers/reference.ts';

describe('softmax_xent', () => {
  const r = new Rng(91);
  const N = 7;
  const C = 11;
  const logits = r.f32(N * C, 3);
  const labels = Int32Array.from([0, 10, -1, 4, 4, -100, 2]);

  it('loss and probs match the reference; ignored rows have zero loss and gradient', () => {
    const res = softmaxXent({ logits, labels, N, C, dscale: 1 });
    const ref = softmaxXentRef(logits, labels, N, C);
    // log-sum-exp in float64 of float32 differences: a few ulp of |loss|
    expectClose(res.loss, ref.loss, { atol: 1e-6, rtol: 1e-6 }, 'loss');
    expectClose(res.probs, ref.probs, { atol: 1e-7, rtol: 1e-6 }, 'probs');
    for (const i of [2, 5]) {
      expect(res.loss[i]).toBe(0);
      for (let c = 0; c < C; c++) expect(res.dlogits![i * C + c]).toBe(0);
    }
  });

  it('dlogits = dscale * d(sum loss)/dlogits (finite differences)', () => {
    const dscale = 0.37;
    const res = softmaxXent({ logits, labels, N, C, dscale });
    const fd = fdGrad((x) => dscale * softmaxXentRef(x, labels, N, C).loss.reduce((a, b) => a + b, 0), f64(logits));
    expectGradClose(res.dlogits, fd, 'dlogits');
  });

  it('is stable for huge logits (max subtraction)', () => {
    const big = Float32Array.from([1e4, 1e4 - 1, -1e4, 3e38, 3e38, 0]);
    const res = softmaxXent({ logits: big, labels: Int32Array.from([1, 2]), N: 2, C: 3, dscale: 1 });
    const ref = softmaxXentRef(big, [1, 2], 2, 3);
    expectClose(res.loss, ref.loss, { atol: 1e-5, rtol: 1e-6 }, 'loss');
    expectClose(res.probs, ref.probs, { atol: 1e-7, rtol: 1e-6 }, 'probs');
  });

  it('probs and dlogits are optional', () => {
    const res = softmaxXent({ logits, labels, N, C, dscale: 1, wantProbs: false, wantDlogits: false });
    expect(res.probs).toBeNull();
    expect(res.dlogits).toBeNull();
    expectClose(res.loss, softmaxXentRef(logits, labels, N, C).loss, { atol: 1e-6, rtol: 1e-6 }, 'loss');
  });

  it('rejects bad arguments', () => {
    expectError(() => softmaxXent({ logits, labels: Int32Array.from([0, 11, 0, 0, 0, 0, 0]), N, C, dscale: 1 }), 'INVALID_ARGUMENT');
    expectError(() => softmaxXent({ logits, labels: labels.subarray(1), N, C, dscale: 1 }), 'SHAPE_MISMATCH');
    expectError(() => softmaxXent({ logits, labels, N, C, dscale: Infinity }), 'INVALID_ARGUMENT');
    expectError(() => softmaxXent({ logits, labels, N, C: 0, dscale: 1 }), 'INVALID_ARGUMENT');
  });
});
