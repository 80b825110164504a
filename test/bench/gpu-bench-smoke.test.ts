// The GPU benchmark script (test/gpu/bench7b.mjs, plain node for the lent GPU
// machine) run end to end on the CPU backend with a tiny shape, so the script
// cannot rot between GPU sessions: it writes a random bf16 checkpoint, loads
// it, trains, fits the Laplace posterior, predicts and writes its JSON. The
// numbers mean nothing here; the checks are that every section is present,
// finite and consistent with the FLOP formula of the script's header.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadNative, nativePath, packageRoot } from '../../ts/native.ts';

describe('test/gpu/bench7b.mjs on the CPU (tiny shape)', () => {
  it('writes a complete JSON report', () => {
    loadNative();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bl-bench7b-smoke-'));
    try {
      const out = path.join(dir, 'gpu.json');
      const [L, d, I, H, V, B, T] = [2, 64, 96, 4, 200, 2, 16];
      execFileSync(
        process.execPath,
        [path.join(packageRoot, 'test/gpu/bench7b.mjs'), '--device', 'cpu', '--layers', `${L}`, '--hidden', `${d}`,
          '--ffn', `${I}`, '--heads', `${H}`, '--vocab', `${V}`, '--batch', `${B}`, '--seq', `${T}`,
          '--batches', '2', '--out', out],
        { env: { ...process.env, BAYESLORA_ADDON: nativePath() }, stdio: 'pipe', timeout: 60_000 },
      );
      const r = JSON.parse(readFileSync(out, 'utf8'));
      expect(r.device).toBe('cpu');
      expect(r.params).toBe(2 * V * d + L * (4 * d * d + 3 * d * I + 2 * d) + d);
      const N = B * T, pLayer = 4 * d * d + 3 * d * I;
      expect(r.flops_per_step.frozen_linear).toBe(2 * N * pLayer * L + 2 * N * (pLayer * L - 3 * d * d));
      expect(r.flops_per_step.attention).toBe(3 * 2 * B * T * (T + 1) * d * L);
      expect(r.setup.batches).toBe(2);
      for (const v of [r.train.tokens_per_s, r.train.mfu_vs_bf16_peak, r.fit.fit_s, r.fit.ratio_to_epoch,
        r.fit.log_marglik, r.memory.posterior_bytes, r.memory.ratio, r.predict.s_per_example])
        expect(Number.isFinite(v) && v !== 0).toBe(true);
      expect(r.train.step_s.n).toBe(2);
      expect(r.memory.posterior_bytes).toBeLessThan(r.memory.train_peak_bytes);
      expect(typeof r.targets.mfu_ok).toBe('boolean');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
