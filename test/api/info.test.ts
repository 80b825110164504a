import { describe, expect, it } from 'vitest';
import { cudaMemory, info, setGemmImpl, setThreads, BayesLoraError } from '../../ts/index.ts';
import { lastJsonLine, runTsSnippet } from '../helpers/ts-child.ts';

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
  it('setGemmImpl: a bad name is INVALID_ARGUMENT and changes nothing', () => {
    const before = info().gemm;
    for (const bad of ['fast', '', 3, undefined]) {
      try {
        setGemmImpl(bad as unknown as 'auto');
        expect.unreachable();
      } catch (e) {
        expect(e).toBeInstanceOf(BayesLoraError);
        expect((e as BayesLoraError).code).toBe('INVALID_ARGUMENT');
      }
    }
    expect(info().gemm).toBe(before);
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
  it('threadSpinUs: BAYESLORA_SPIN_US at start (default 50, bad values ignored), re-read by setThreads', () => {
    // A child: the kernel pool reads the variable when it starts.
    const code = `import { info, setThreads } from './ts/index.ts';
      const a = info().threadSpinUs; process.env.BAYESLORA_SPIN_US = '0'; setThreads(info().threads);
      console.log(JSON.stringify({ a, b: info().threadSpinUs }));`;
    const probe = (v: string | undefined) => lastJsonLine(runTsSnippet(code, { ...process.env, BAYESLORA_SPIN_US: v }).stdout);
    expect(probe(undefined)).toEqual({ a: 50, b: 0 });
    expect(probe('250')).toEqual({ a: 250, b: 0 });
    for (const bad of ['-1', 'fast', '2000000', '12x']) expect(probe(bad).a).toBe(50);
  });
  it('a missing addon is NATIVE_UNAVAILABLE naming what was tried and how to build it', () => {
    // A child process: the addon is loaded once per process and cached.
    const code = `import { info } from './ts/index.ts';
      try { info(); console.log('loaded'); } catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message })); }`;
    const e = lastJsonLine(runTsSnippet(code, { ...process.env, BAYESLORA_ADDON: '/nonexistent/bayeslora.node' }).stdout);
    expect(e.name).toBe('BayesLoraError');
    expect(e.code).toBe('NATIVE_UNAVAILABLE');
    expect(e.message).toContain('/nonexistent/bayeslora.node (missing)');
    expect(e.message).toContain('npm rebuild bayeslora');
  });
  it('auto GEMM: OpenBLAS unless the CPU has AVX-512 and OpenBLAS runs a core type without it', () => {
    // Each setting in a child: OpenBLAS reads OPENBLAS_CORETYPE when it loads.
    const code = `import { info, setGemmImpl } from './ts/index.ts';
      const a = info(); setGemmImpl('builtin'); const b = info(); setGemmImpl('auto');
      console.log(JSON.stringify({ simd: a.simd, blas: a.blas, core: a.openblasCoretype, gemm: a.gemm, why: a.gemmReason, forced: b.gemm, forcedWhy: b.gemmReason }));`;
    const probe = (env: Record<string, string | undefined>) =>
      lastJsonLine(runTsSnippet(code, { ...process.env, OPENBLAS_CORETYPE: undefined, BAYESLORA_SIMD: undefined, BAYESLORA_BLAS: undefined, ...env }).stdout);
    const base = probe({});
    const blasLoaded = base.blas !== 'builtin';
    const cases = [
      probe({ OPENBLAS_CORETYPE: 'Haswell' }),
      probe({ OPENBLAS_CORETYPE: 'SkylakeX' }),
      probe({ OPENBLAS_CORETYPE: 'Haswell', BAYESLORA_SIMD: 'avx2' }),
      probe({ BAYESLORA_BLAS: 'none' }),
      base,
    ];
    for (const c of cases) {
      const avx512Core = ['skylakex', 'cooperlake', 'sapphirerapids'].includes(String(c.core).toLowerCase());
      const want = c.blas === 'builtin' ? 'builtin' : c.simd === 'avx512' && !avx512Core ? 'builtin' : 'blas';
      expect(c.gemm, JSON.stringify(c)).toBe(want);
      expect(c.why.length).toBeGreaterThan(0);
      expect(c.forced).toBe('builtin');
      expect(c.forcedWhy).toContain('setGemmImpl');
    }
    expect(cases[3].gemm).toBe('builtin');
    expect(cases[3].why).toContain('no BLAS');
    expect(cases[2].simd).not.toBe('avx512');  // the cap keeps the built-in kernel at AVX2
    if (blasLoaded) {
      expect(cases[2].gemm).toBe('blas');  // no AVX-512 kernel of ours to prefer
      expect(cases[1].gemm).toBe('blas');
      // On an AVX-512 host (OpenBLAS accepts the SkylakeX core there) the forced
      // Haswell core hands the large products to the built-in AVX-512 kernel.
      if (cases[0].simd === 'avx512') expect(cases[0].gemm).toBe('builtin');
    }
  });
});
