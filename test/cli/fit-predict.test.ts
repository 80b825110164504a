// `bayeslora fit` and `bayeslora predict` in-process on a tiny random model
// with a tiny WordLevel tokenizer: written files, prediction shapes, probs
// summing to 1, covariance symmetry, seeded reproducibility, encoding
// defaults carried from fit.json, metrics over labelled lines only, a
// posterior refused for another adapter, and typed errors for bad arguments.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BayesLoraError } from '../../ts/errors.ts';
import { Model } from '../../ts/model.ts';
import { run as fitRun } from '../../ts/cli/fit.ts';
import { run as predictRun, parsePredictArgs, predictPosterior } from '../../ts/cli/predict.ts';
import { makeTinyCheckpoint } from '../helpers/tiny-checkpoint.ts';
import { makeTinyTokenizer } from '../helpers/tiny-tokenizer.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'bl-cli-fit-'));
const modelDir = path.join(dir, 'model');
const adapterDir = path.join(dir, 'adapter');
const otherAdapterDir = path.join(dir, 'adapter-other');
const trainFile = path.join(dir, 'train.jsonl');
const testFile = path.join(dir, 'test.jsonl');
const C = 4;
const COLOURS = ['red', 'blue', 'green', 'yellow'];
const SUBJECTS = ['cat', 'dog', 'bird', 'fish', 'horse', 'cow', 'apple', 'banana', 'car', 'house', 'tree', 'flower'];
const N_TRAIN = 24;
const N_TEST = 10;

function mcLine(i: number, labelled: boolean): string {
  const s = SUBJECTS[i % SUBJECTS.length];
  const ex: Record<string, unknown> = { prompt: `the ${s} is ${i % 2 ? 'very' : 'often'}`, choices: COLOURS };
  if (labelled) ex.answer = (i * 7) % C;
  return JSON.stringify(ex);
}

/** Write an adapter whose B matrices are non-zero (a "fine-tuned" one). */
async function writeAdapter(out: string, seed: number): Promise<void> {
  const m = await Model.load(modelDir);
  try {
    m.addLora({ r: 2, alpha: 4, targetModules: ['q_proj', 'v_proj', 'lm_head'], seed });
    let s = seed;
    const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32 - 0.5) * 0.4;
    m.setLoraWeights(m.getLoraWeights().map((w) => ({ path: w.path, B: Float32Array.from(w.B, rnd) })));
    await m.saveAdapter(out);
  } finally {
    m.dispose();
  }
}

beforeAll(async () => {
  const tok = await makeTinyTokenizer(modelDir);
  makeTinyCheckpoint(modelDir, { vocab: tok.vocabSize, hidden: 32, layers: 2, heads: 4, intermediate: 48, seed: 3 });
  await writeAdapter(adapterDir, 11);
  await writeAdapter(otherAdapterDir, 12);
  writeFileSync(trainFile, Array.from({ length: N_TRAIN }, (_, i) => mcLine(i, true)).join('\n') + '\n');
  // lines 0, 3, 6, 9 unlabelled
  writeFileSync(testFile, Array.from({ length: N_TEST }, (_, i) => mcLine(100 + i, i % 3 !== 0)).join('\n') + '\n');
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function expectCode(f: () => Promise<unknown>, code: string, msg?: RegExp): Promise<void> {
  let err: unknown;
  try {
    await f();
  } catch (e) {
    err = e;
  }
  expect(err, `expected ${code}`).toBeInstanceOf(BayesLoraError);
  expect((err as BayesLoraError).code).toBe(code);
  if (msg) expect((err as Error).message).toMatch(msg);
}

interface PredLine {
  probs: number[];
  mean: number[];
  cov: number[][];
  label: number | null;
}

function readPreds(file: string): PredLine[] {
  return readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
}

/** Captures what a command writes to stdout/stderr. */
async function capture<T>(f: () => Promise<T>): Promise<{ value: T; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const wo = process.stdout.write.bind(process.stdout);
  const we = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((s: string) => (out.push(String(s)), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => (err.push(String(s)), true)) as typeof process.stderr.write;
  try {
    return { value: await f(), stdout: out.join(''), stderr: err.join('') };
  } finally {
    process.stdout.write = wo;
    process.stderr.write = we;
  }
}

describe('bayeslora fit + predict', () => {
  const fitOut = path.join(dir, 'fit');
  const base = () => ['--model', modelDir, '--adapter', fitOut, '--posterior', path.join(fitOut, 'posterior.safetensors'), '--data', testFile];

  it('fit writes the posterior, a copy of the adapter and a JSON summary', async () => {
    const r = await capture(() => fitRun(['--model', modelDir, '--adapter', adapterDir, '--data', trainFile, '--out', fitOut, '--batch', '8']));
    expect(r.value).toBe(0);
    for (const f of ['posterior.safetensors', 'adapter_config.json', 'adapter_model.safetensors', 'fit.json']) {
      expect(existsSync(path.join(fitOut, f)), f).toBe(true);
    }
    expect(readFileSync(path.join(fitOut, 'adapter_model.safetensors')).equals(readFileSync(path.join(adapterDir, 'adapter_model.safetensors')))).toBe(true);
    const printed = JSON.parse(r.stdout);
    const stored = JSON.parse(readFileSync(path.join(fitOut, 'fit.json'), 'utf8'));
    for (const s of [printed, stored]) {
      expect(s.examples).toBe(N_TRAIN);
      expect(s.C).toBe(C);
      expect(s.fisher).toBe('exact');
      // one shared prior precision, reported per layer
      expect(s.prior).toHaveLength(s.layers);
      expect(s.prior[0]).toBeGreaterThan(0);
      for (const d of s.prior) expect(d).toBe(s.prior[0]);
      expect(Number.isFinite(s.logMarglik)).toBe(true);
      expect(s.posteriorBytes).toBeGreaterThan(0);
      expect(s.seconds.total).toBeGreaterThan(0);
      // 2 layers x (q, v) + lm_head = 5 modules, A and B each
      expect(s.layers).toBe(10);
    }
  });

  it('predict writes one line per example: probs sum to 1, C-vector mean, symmetric C x C cov, labels', async () => {
    const out = path.join(dir, 'preds-mc.jsonl');
    const r = await capture(() => predictRun([...base(), '--out', out, '--samples', '200', '--seed', '5']));
    expect(r.value).toBe(0);
    const lines = readPreds(out);
    expect(lines).toHaveLength(N_TEST);
    for (const [i, l] of lines.entries()) {
      expect(l.probs).toHaveLength(C);
      expect(l.mean).toHaveLength(C);
      expect(l.cov).toHaveLength(C);
      expect(l.probs.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
      for (const p of l.probs) expect(p).toBeGreaterThanOrEqual(0);
      for (let a = 0; a < C; a++) {
        expect(l.cov[a]).toHaveLength(C);
        expect(l.cov[a][a]).toBeGreaterThan(0);
        for (let b = 0; b < C; b++) expect(l.cov[a][b]).toBeCloseTo(l.cov[b][a], 6);
      }
      expect(l.label).toBe(i % 3 !== 0 ? ((100 + i) * 7) % C : null);
    }
    // metrics over the 6 labelled lines go to stderr
    const m = JSON.parse(r.stderr.trim().split('\n').at(-1)!);
    expect(m.labelled).toBe(6);
    expect(m.n).toBe(6);
    for (const k of ['acc', 'ece', 'nll', 'brier']) expect(Number.isFinite(m[k])).toBe(true);
    // same seed -> same file; another seed -> other MC probabilities, same mean and cov
    const again = path.join(dir, 'preds-mc2.jsonl');
    await capture(() => predictRun([...base(), '--out', again, '--samples', '200', '--seed', '5']));
    expect(readFileSync(again, 'utf8')).toBe(readFileSync(out, 'utf8'));
    const other = path.join(dir, 'preds-mc3.jsonl');
    await capture(() => predictRun([...base(), '--out', other, '--samples', '200', '--seed', '6']));
    const o = readPreds(other);
    expect(o.map((l) => l.probs)).not.toEqual(lines.map((l) => l.probs));
    expect(o.map((l) => l.cov)).toEqual(lines.map((l) => l.cov));
  });

  it('predict methods: map is softmax(mean); probit and bridge are distributions; metrics match the file', async () => {
    for (const method of ['map', 'probit', 'bridge']) {
      const out = path.join(dir, `preds-${method}.jsonl`);
      const rep = await capture(() => predictPosterior(parsePredictArgs([...base(), '--out', out, '--method', method, '--batch', '3'])));
      const lines = readPreds(out);
      expect(lines).toHaveLength(N_TEST);
      for (const l of lines) {
        expect(l.probs.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
        if (method === 'map') {
          const mx = Math.max(...l.mean);
          const e = l.mean.map((x) => Math.exp(x - mx));
          const z = e.reduce((a, b) => a + b, 0);
          for (let c = 0; c < C; c++) expect(l.probs[c]).toBeCloseTo(e[c] / z, 6);
        }
      }
      const m = rep.value.metrics!;
      const labelled = lines.filter((l) => l.label !== null);
      const nll = -labelled.reduce((a, l) => a + Math.log(l.probs[l.label!]), 0) / labelled.length;
      expect(m.n).toBe(6);
      expect(m.nll).toBeCloseTo(nll, 5);
    }
  });

  it('fit variants: sampled Fisher, last layer, per-layer prior, expand, letter format carried to predict', async () => {
    const out = path.join(dir, 'fit-llla');
    const r = await capture(() =>
      fitRun([
        '--model', modelDir, '--adapter', adapterDir, '--data', trainFile, '--out', out,
        '--fisher', 'sampled', '--samples', '2', '--last-layer', '--per-layer-prior', '--tokens', 'expand',
        '--format', 'letter', '--n-kfac', '3', '--max-length', '24',
      ]),
    );
    expect(r.value).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.layers).toBe(2); // lm_head A and B
    expect(s.prior).toHaveLength(2);
    expect(s.fisher).toBe('sampled');
    expect(s.format).toBe('letter');
    const preds = path.join(dir, 'preds-llla.jsonl');
    const rep = await capture(() =>
      predictPosterior(parsePredictArgs(['--model', modelDir, '--adapter', out, '--posterior', path.join(out, 'posterior.safetensors'), '--data', testFile, '--out', preds, '--method', 'probit'])),
    );
    expect(rep.value.format).toBe('letter');
    expect(rep.value.maxLength).toBe(24);
    expect(readPreds(preds)).toHaveLength(N_TEST);
  });

  it('fit --validation chooses the prior on held-out data: a grid scale of the marglik prior, recorded in fit.json', async () => {
    const out = path.join(dir, 'fit-val');
    const valFile = path.join(dir, 'validation.jsonl');
    writeFileSync(valFile, Array.from({ length: 7 }, (_, i) => mcLine(200 + i, true)).join('\n') + '\n');
    const r = await capture(() =>
      fitRun(['--model', modelDir, '--adapter', adapterDir, '--data', trainFile, '--out', out, '--batch', '8', '--validation', valFile]),
    );
    expect(r.value).toBe(0);
    const s = JSON.parse(readFileSync(path.join(out, 'fit.json'), 'utf8'));
    const marglik = JSON.parse(readFileSync(path.join(fitOut, 'fit.json'), 'utf8')).prior[0];
    const t = s.priorTuning;
    expect(t.validation).toBe(valFile);
    expect(t.objective).toBe('nll');
    expect(t.n).toBe(7);
    expect(t.grid).toHaveLength(25);
    const best = t.grid.reduce((a: { nll: number }, g: { nll: number }) => (g.nll < a.nll ? g : a));
    expect(t.scale).toBe(best.scale);
    expect(Math.abs(s.prior[0] / (marglik * t.scale) - 1)).toBeLessThan(1e-12);
    // the saved posterior carries the chosen prior
    const rep = await capture(() =>
      predictPosterior(parsePredictArgs(['--model', modelDir, '--adapter', out, '--posterior', path.join(out, 'posterior.safetensors'), '--data', testFile, '--out', path.join(dir, 'preds-val.jsonl'), '--method', 'probit'])),
    );
    expect(rep.value.metrics!.n).toBe(6);
    // a validation file must be labelled: it is what the prior is chosen on
    await expectCode(
      () => fitRun(['--model', modelDir, '--adapter', adapterDir, '--data', trainFile, '--out', path.join(dir, 'never'), '--validation', testFile]),
      'BAD_FILE',
      /missing "answer"/,
    );
    await expectCode(
      () => fitRun(['--model', modelDir, '--adapter', adapterDir, '--data', trainFile, '--out', path.join(dir, 'never'), '--validation', path.join(dir, 'missing.jsonl')]),
      'BAD_FILE',
      /missing\.jsonl/,
    );
    expect(existsSync(path.join(dir, 'never'))).toBe(false);
  });

  it('predict refuses a posterior fitted for another adapter (typed error, no output)', async () => {
    const out = path.join(dir, 'preds-mismatch.jsonl');
    const args = ['--model', modelDir, '--adapter', otherAdapterDir, '--posterior', path.join(fitOut, 'posterior.safetensors'), '--data', testFile, '--out', out];
    await expectCode(() => predictRun(args), 'INVALID_ARGUMENT', /adapter mismatch/);
    expect(existsSync(out)).toBe(false);
  });

  it('bad arguments are typed INVALID_ARGUMENT errors', async () => {
    const fitBase = ['--model', modelDir, '--adapter', adapterDir, '--data', trainFile, '--out', path.join(dir, 'never')];
    const predBase = [...base(), '--out', path.join(dir, 'never.jsonl')];
    const bad: [typeof fitRun, string[], RegExp][] = [
      [fitRun, [...fitBase, '--bogus'], /bogus/],
      [fitRun, fitBase.slice(0, 4).concat(['--out', path.join(dir, 'never')]), /--data is required/],
      [fitRun, [...fitBase, '--fisher', 'kfac'], /--fisher/],
      [fitRun, [...fitBase, '--tokens', 'all'], /--tokens/],
      [fitRun, [...fitBase, '--n-kfac', '0'], /--n-kfac/],
      [fitRun, [...fitBase, '--batch', '2.5'], /--batch/],
      [fitRun, [...fitBase, '--prior', '-1'], /--prior/],
      [fitRun, [...fitBase, '--prior', '1', '--per-layer-prior'], /per-layer-prior/],
      [fitRun, [...fitBase, '--format', 'json'], /--format/],
      [fitRun, [...fitBase, '--device', 'gpu'], /--device/],
      [predictRun, [...predBase, '--device', 'tpu'], /--device/],
      [fitRun, [...fitBase, 'extra'], /unexpected argument/],
      [fitRun, ['--model', modelDir, '--adapter', dir, '--data', trainFile, '--out', path.join(dir, 'never')], /--adapter/],
      [predictRun, [...predBase, '--method', 'laplace'], /--method/],
      [predictRun, [...predBase, '--samples', '-3'], /--samples/],
      [predictRun, [...predBase, '--seed', 'x'], /--seed/],
      [predictRun, [...predBase, '--max-length', '1'], /--max-length/],
      [predictRun, base(), /--out is required/],
    ];
    for (const [f, args, msg] of bad) await expectCode(() => f(args), 'INVALID_ARGUMENT', msg);
    expect(existsSync(path.join(dir, 'never'))).toBe(false);
  });

  it('a missing posterior or data file is a typed error', async () => {
    await expectCode(
      () => predictRun([...base().slice(0, 4), '--posterior', path.join(dir, 'nope.safetensors'), '--data', testFile, '--out', path.join(dir, 'x.jsonl')]),
      'IO_ERROR',
      /nope\.safetensors/,
    );
    await expectCode(
      () => fitRun(['--model', modelDir, '--adapter', adapterDir, '--data', path.join(dir, 'nope.jsonl'), '--out', path.join(dir, 'y')]),
      'BAD_FILE',
      /nope\.jsonl/,
    );
    expect(existsSync(path.join(dir, 'y'))).toBe(false);
  });
});
