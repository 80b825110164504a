// `bayeslora run --quick` end to end on the built-in model: every method row,
// the report files and charts, and calibration sanity (probabilities, metrics
// in range). Takes a couple of minutes on 2 cores.
import { describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { run } from '../../ts/cli/run.ts';
import { BayesLoraError } from '../../ts/errors.ts';
import { info } from '../../ts/info.ts';

describe('bayeslora run --quick', () => {
  it('fine-tunes, fits Laplace and writes the report', async () => {
    const out = mkdtempSync(path.join(os.tmpdir(), 'bayeslora-run-'));
    try {
      const code = await run(['--quick', '--out', out]);
      expect(code).toBe(0);
      const report = JSON.parse(readFileSync(path.join(out, 'report.json'), 'utf8'));
      const methods = new Set(report.rows.map((r: { method: string }) => r.method));
      for (const m of ['MAP', 'LA', 'LA-probit', 'LLLA', 'TS', 'MCD', 'CKPT-ENS']) expect(methods.has(m)).toBe(true);
      const splits = new Set(report.rows.map((r: { split: string }) => r.split));
      expect(splits.has('test')).toBe(true);
      expect(splits.has('shift')).toBe(true);
      for (const r of report.rows) {
        expect(r.acc).toBeGreaterThanOrEqual(0);
        expect(r.acc).toBeLessThanOrEqual(1);
        expect(r.ece).toBeGreaterThanOrEqual(0);
        expect(r.ece).toBeLessThanOrEqual(1);
        expect(Number.isFinite(r.nll)).toBe(true);
        expect(r.brier).toBeLessThanOrEqual(2);
      }
      for (const f of ['report.md', 'posterior.safetensors', 'adapter/adapter_model.safetensors', 'adapter/adapter_config.json']) {
        expect(existsSync(path.join(out, f))).toBe(true);
      }
      expect(report.charts.some((c: string) => c.endsWith('.png'))).toBe(true);
      expect(report.charts.some((c: string) => c.startsWith('reliability-'))).toBe(true);
      expect(report.peakRssBytes).toBeGreaterThan(0);
      // The default task teaches a skill the base model lacks: fine-tuning lifts
      // test accuracy well above the base model's zero-shot ranking (about 0.35).
      const test = report.rows.filter((r: { split: string; method: string }) => r.split === 'test' && r.method === 'MAP');
      const base = test.find((r: { step: number }) => r.step === 0);
      const last = test.reduce((a: { step: number }, b: { step: number }) => (b.step > a.step ? b : a));
      expect(last.acc).toBeGreaterThan(base.acc + 0.1);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 600_000);

  it('--device: cpu or cuda; cuda without a usable device is a typed error before any training', async () => {
    const code = async (args: string[]) => {
      try {
        await run(args);
      } catch (e) {
        expect(e).toBeInstanceOf(BayesLoraError);
        return [(e as BayesLoraError).code, (e as Error).message];
      }
      return ['no error', ''];
    };
    const [c1, m1] = await code(['--quick', '--device', 'tpu']);
    expect(c1).toBe('INVALID_ARGUMENT');
    expect(m1).toMatch(/--device must be cpu or cuda/);
    if (info().cudaUsable) return; // a CUDA (or emulated CUDA) build would run the job
    const out = mkdtempSync(path.join(os.tmpdir(), 'bayeslora-run-'));
    try {
      const [c2, m2] = await code(['--quick', '--device', 'cuda', '--out', out]);
      expect(c2).toBe('UNSUPPORTED');
      expect(m2).toMatch(/CUDA/);
      expect(existsSync(path.join(out, 'report.json'))).toBe(false);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 120_000);
});
