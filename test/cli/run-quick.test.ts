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
import { runMainJob, type RunOptions } from '../../ts/run/main-job.ts';
import { DEFAULT_PRIOR_SCALES } from '../../ts/laplace/tune-prior.ts';

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

  it('the extra rows of a full run: LA-expand, LA-sampled, and LA-val with its prior a grid scale of the marglik one', async () => {
    const out = mkdtempSync(path.join(os.tmpdir(), 'bayeslora-run-extras-'));
    const calls: [string, number, number][] = [];
    try {
      const report = await runMainJob({
        model: 'models/wordnet-tiny', train: 'data/wn-category/train-small.jsonl', test: 'data/wn-category/test.jsonl',
        validation: 'data/wn-category/validation.jsonl', shift: [], out, seeds: 1, ensembleMembers: 0, format: 'choice', maxLength: 96,
        lora: { r: 4, alpha: 8, dropout: 0.1, targetModules: ['q_proj', 'v_proj', 'lm_head'] },
        lr: 2e-3, epochs: 1, batchSize: 16, checkpoints: 1, mcdPasses: 2, laSamples: 500, nKfac: 'auto', extras: true,
        limits: { train: 128, test: 64, validation: 96 }, log: () => {},
        progress: (label, done, total) => calls.push([label, done, total]),
      });
      // Every checkpoint's evaluation bar counts its units one by one and ends full,
      // so the planned total matches the work done (phases, sets, Laplace variants).
      const evalBars = new Map<string, [number, number][]>();
      for (const [label, done, total] of calls)
        if (label.endsWith(' eval')) evalBars.set(label, [...(evalBars.get(label) ?? []), [done, total]]);
      expect(evalBars.has('seed 0 step 8 eval')).toBe(true);
      // the final checkpoint's bar covers MCD, four Laplace fits and LA-val, far more than a MAP-only one
      expect(evalBars.get('seed 0 step 8 eval')![0][1]).toBeGreaterThan(5 * evalBars.get('seed 0 step 1 eval')![0][1]);
      for (const ticks of evalBars.values()) {
        ticks.forEach(([done, total], i) => {
          expect(done).toBe(i + 1);
          expect(total).toBe(ticks[0][1]);
        });
        expect(ticks.at(-1)![0]).toBe(ticks[0][1]);
      }
      const rows = report.rows.filter((r) => r.split === 'test' && r.step === 8);
      for (const m of ['LA', 'LA-expand', 'LA-sampled', 'LA-val']) expect(rows.some((r) => r.method === m), m).toBe(true);
      const prior = (method: string) => report.priors.find((p) => p.method === method && p.step === 8)!.delta[0];
      const scale = prior('LA-val') / prior('LA');
      expect(DEFAULT_PRIOR_SCALES.some((s) => Math.abs(scale / s - 1) < 1e-9), `scale ${scale}`).toBe(true);
      // the validation scan behind LA-val, kept in the report and drawn
      const grid = report.priors.find((p) => p.method === 'LA-val')!.grid!;
      expect(grid.map((g) => g.delta / prior('LA'))).toEqual(DEFAULT_PRIOR_SCALES.map((s) => expect.closeTo(s, 9)));
      const best = grid.reduce((a, g) => (g.nll < a.nll ? g : a));
      expect(best.delta).toBeCloseTo(prior('LA-val'), 9);
      expect(report.charts).toEqual(expect.arrayContaining(['prior-scan-validation.svg', 'prior-scan-validation.png']));
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 300_000);

  it('bad flags are INVALID_ARGUMENT naming the flag, before anything is read or written', async () => {
    const out = path.join(mkdtempSync(path.join(os.tmpdir(), 'bayeslora-run-')), 'out');
    const bad: [string[], RegExp][] = [
      [['--seeds', '0'], /--seeds must be an integer in \[1, 1000\], got '0'/],
      [['--epochs', 'abc'], /--epochs must be an integer/],
      [['--r', '-3'], /--r.*ambiguous/],
      [['--r=-3'], /--r must be an integer/],
      [['--lr', '0'], /--lr must be a finite number > 0/],
      [['--dropout', '1'], /--dropout must be a number in \[0, 1\)/],
      [['--batch', '2.5'], /--batch must be an integer/],
      [['--format', 'essay'], /--format must be one of choice\|letter/],
      [['--targets', ','], /--targets must name at least one module/],
      [['--bogus'], /Unknown option '--bogus'/],
      [['stray'], /unexpected argument 'stray'/],
      [['--n-kfac', '0'], /--n-kfac must be 'auto' or an integer/],
    ];
    for (const [args, msg] of bad) {
      let err: unknown;
      try {
        await run([...args, '--out', out]);
      } catch (e) {
        err = e;
      }
      expect(err, args.join(' ')).toBeInstanceOf(BayesLoraError);
      expect((err as BayesLoraError).code).toBe('INVALID_ARGUMENT');
      expect((err as Error).message, args.join(' ')).toMatch(msg);
      expect(existsSync(out), args.join(' ')).toBe(false);
    }
    rmSync(path.dirname(out), { recursive: true, force: true });
  });

  it('runMainJob (the API) checks its options the same way', async () => {
    const out = path.join(mkdtempSync(path.join(os.tmpdir(), 'bayeslora-run-')), 'out');
    const ok: RunOptions = {
      model: 'models/wordnet-tiny', train: 'a.jsonl', test: 'b.jsonl', validation: 'c.jsonl', shift: [], out,
      seeds: 1, ensembleMembers: 0, format: 'choice', maxLength: 96,
      lora: { r: 8, alpha: 16, dropout: 0.1, targetModules: ['q_proj'] },
      lr: 1e-3, epochs: 1, batchSize: 8, checkpoints: 1, mcdPasses: 2, laSamples: 100, nKfac: 'auto', extras: false,
      log: () => {},
    };
    const bad: [Partial<RunOptions>, RegExp][] = [
      [{ seeds: 0 }, /options\.seeds must be an integer >= 1, got 0/],
      [{ epochs: Number.NaN }, /options\.epochs/],
      [{ lr: -1 }, /options\.lr/],
      [{ lora: { ...ok.lora, dropout: 1 } }, /options\.lora\.dropout/],
      [{ lora: { ...ok.lora, targetModules: [] } }, /options\.lora\.targetModules/],
      [{ nKfac: 0 }, /options\.nKfac/],
      [{ format: 'essay' as 'choice' }, /options\.format/],
      [{ shift: [''] }, /options\.shift/],
      [{ limits: { train: 0 } }, /options\.limits\.train/],
      [{ backend: 'tpu' as 'cpu' }, /options\.backend/],
    ];
    for (const [patch, msg] of bad) {
      let err: unknown;
      try {
        await runMainJob({ ...ok, ...patch });
      } catch (e) {
        err = e;
      }
      expect((err as BayesLoraError)?.code, JSON.stringify(patch)).toBe('INVALID_ARGUMENT');
      expect((err as Error).message).toMatch(msg);
      expect(existsSync(out)).toBe(false);
    }
    rmSync(path.dirname(out), { recursive: true, force: true });
  });

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
    expect(m1).toMatch(/--device must be one of cpu\|cuda/);
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
