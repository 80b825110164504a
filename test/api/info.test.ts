import { describe, expect, it } from 'vitest';
import { cudaMemory, info, setThreads, BayesLoraError } from '../../ts/index.ts';

describe('info', () => {
  it('reports backend, blas, threads and simd', () => {
    const i = info();
    expect(i.backends).toContain('cpu');
    expect(typeof i.blas).toBe('string');
    expect(i.threads).toBeGreaterThanOrEqual(1);
    expect(['avx512', 'avx2', 'scalar']).toContain(i.simd);
  });
  it('cudaMemory: null without a CUDA backend in use; a bad argument is a typed error', () => {
    // test/gpu/memory.test.mjs checks the numbers on a (real or emulated) device.
    if (!info().cudaCompiled) expect(cudaMemory()).toBeNull();
    const m = cudaMemory();
    if (m !== null) for (const k of ['liveBytes', 'peakBytes', 'internalBytes', 'deviceFreeBytes', 'deviceTotalBytes'] as const) expect(m[k]).toBeGreaterThanOrEqual(0);
    try {
      cudaMemory('yes' as unknown as boolean);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(BayesLoraError);
      expect((e as BayesLoraError).code).toBe('INVALID_ARGUMENT');
    }
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
