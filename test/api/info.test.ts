import { describe, expect, it } from 'vitest';
import { info, setThreads, BayesLoraError } from '../../ts/index.ts';

describe('info', () => {
  it('reports backend, blas, threads and simd', () => {
    const i = info();
    expect(i.backends).toContain('cpu');
    expect(typeof i.blas).toBe('string');
    expect(i.threads).toBeGreaterThanOrEqual(1);
    expect(['avx512', 'avx2', 'scalar']).toContain(i.simd);
  });
  it('rejects a bad thread count with a typed error', () => {
    try {
      setThreads(0);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(BayesLoraError);
      expect((e as BayesLoraError).code).toBe('INVALID_ARGUMENT');
    }
  });
});
