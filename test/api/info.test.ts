import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { cudaMemory, info, setThreads, BayesLoraError } from '../../ts/index.ts';
import { repoRoot } from '../helpers/ts-child.ts';

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
  it('a missing addon is NATIVE_UNAVAILABLE naming what was tried and how to build it', () => {
    // A child process: the addon is loaded once per process and cached.
    const code = `import { info } from './ts/index.ts';
      try { info(); console.log('loaded'); } catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message })); }`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
      cwd: repoRoot,
      encoding: 'utf8',
      env: { ...process.env, BAYESLORA_ADDON: '/nonexistent/bayeslora.node' },
      timeout: 60_000,
    });
    expect(r.status, r.stderr).toBe(0);
    const e = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(e.name).toBe('BayesLoraError');
    expect(e.code).toBe('NATIVE_UNAVAILABLE');
    expect(e.message).toContain('/nonexistent/bayeslora.node (missing)');
    expect(e.message).toContain('npm rebuild bayeslora');
  });
});
