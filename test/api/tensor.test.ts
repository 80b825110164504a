import { describe, expect, it } from 'vitest';
import { Tensor, BayesLoraError, info } from '../../ts/index.ts';

function code(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(BayesLoraError);
    return (e as BayesLoraError).code;
  }
  return undefined;
}

describe('Tensor', () => {
  it('is a zero-copy view of an f32 array on the CPU', () => {
    const a = new Float32Array([1, 2, 3, 4, 5, 6]);
    const t = Tensor.from(a, [2, 3]);
    expect(t.shape).toEqual([2, 3]);
    expect(t.dtype).toBe('f32');
    expect(t.device).toBe('cpu');
    expect(t.zeroCopy).toBe(true);
    expect(t.view()).toBe(a);
    a[0] = 42;
    expect(t.toArray()[0]).toBe(42); // shares memory
    t.dispose();
  });

  it('stores f16 and bf16 with round-to-nearest and converts back', () => {
    const a = new Float32Array([1, -2.5, 1 / 3, 65504, 1e-3]);
    const h = Tensor.from(a, [5], { dtype: 'f16' });
    const b = Tensor.from(a, [5], { dtype: 'bf16' });
    expect(h.zeroCopy).toBe(false);
    expect(h.byteLength).toBe(10);
    const hv = h.toArray();
    const bv = b.toArray();
    for (let i = 0; i < a.length; i++) {
      expect(Math.abs(hv[i] - a[i])).toBeLessThanOrEqual(Math.abs(a[i]) * 2 ** -11);
      expect(Math.abs(bv[i] - a[i])).toBeLessThanOrEqual(Math.abs(a[i]) * 2 ** -8);
    }
    expect(hv[0]).toBe(1);
    expect(bv[1]).toBe(-2.5);
    h.dispose();
    b.dispose();
  });

  it('dispose is idempotent and use after dispose is DISPOSED', () => {
    const t = Tensor.from(new Float32Array(4), [4], { dtype: 'bf16' });
    t.dispose();
    t.dispose();
    expect(t.disposed).toBe(true);
    expect(code(() => t.toArray())).toBe('DISPOSED');
    expect(code(() => t.view())).toBe('DISPOSED');
  });

  it('rejects bad shapes, dtypes and devices with typed errors', () => {
    expect(code(() => Tensor.from(new Float32Array(5), [2, 3]))).toBe('SHAPE_MISMATCH');
    expect(code(() => Tensor.from(new Float32Array(6), [2, -3]))).toBe('INVALID_ARGUMENT');
    expect(code(() => Tensor.from(new Float32Array(6), [6], { dtype: 'f64' as never }))).toBe('INVALID_ARGUMENT');
    expect(code(() => Tensor.from(new Float32Array(6), [6], { device: 'tpu' as never }))).toBe('INVALID_ARGUMENT');
    if (!info().cudaUsable) expect(code(() => Tensor.from(new Float32Array(6), [6], { device: 'cuda' }))).toMatch(/UNSUPPORTED|CUDA_ERROR/);
  });
});
