// `bayeslora run --resume DIR` after a kill -9: a child process runs a small
// main job on a tiny random model, is killed (SIGKILL) as soon as progress.json
// names its first training checkpoint, and a second process resumes it. The
// resumed run trains only the steps after that checkpoint, keeps the rows
// evaluated before it, and writes the complete report.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTinyCheckpoint } from '../helpers/tiny-checkpoint.ts';
import { makeTinyTokenizer } from '../helpers/tiny-tokenizer.ts';

const root = path.resolve(import.meta.dirname, '..', '..');
const dir = mkdtempSync(path.join(tmpdir(), 'bl-run-resume-'));
const modelDir = path.join(dir, 'model');
const out = path.join(dir, 'run');
const COLOURS = ['red', 'blue', 'green', 'yellow'];
const SUBJECTS = ['cat', 'dog', 'bird', 'fish', 'horse', 'cow', 'apple', 'banana', 'car', 'house', 'tree', 'flower'];

function jsonl(file: string, n: number, offset: number): void {
  const lines = Array.from({ length: n }, (_, k) => {
    const i = k + offset;
    const s = SUBJECTS[i % SUBJECTS.length];
    return JSON.stringify({ prompt: `the ${s} is ${i % 2 ? 'very' : 'often'}`, choices: COLOURS, answer: (i % SUBJECTS.length) % 4 });
  });
  writeFileSync(file, lines.join('\n') + '\n');
}

beforeAll(async () => {
  const tok = await makeTinyTokenizer(modelDir);
  makeTinyCheckpoint(modelDir, { vocab: tok.vocabSize, hidden: 32, layers: 2, heads: 4, intermediate: 48, seed: 5 });
  jsonl(path.join(dir, 'train.jsonl'), 64, 0);
  jsonl(path.join(dir, 'test.jsonl'), 24, 1000);
  jsonl(path.join(dir, 'val.jsonl'), 24, 2000);
  jsonl(path.join(dir, 'shift.jsonl'), 16, 3000);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function cli(args: string[]): { child: ReturnType<typeof spawn>; done: Promise<{ code: number | null; signal: string | null; stderr: string }> } {
  const child = spawn(process.execPath, [path.join(root, 'bin', 'bayeslora.mjs'), 'run', ...args], {
    cwd: root,
    env: process.env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += String(d)));
  const done = new Promise<{ code: number | null; signal: string | null; stderr: string }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal, stderr })),
  );
  return { child, done };
}

function progress(): { seedsDone: number; current: null | { step: number; checkpoint: string } } | null {
  try {
    return JSON.parse(readFileSync(path.join(out, 'progress.json'), 'utf8'));
  } catch {
    return null; // not written yet
  }
}

describe('bayeslora run --resume', () => {
  it('continues a run killed with SIGKILL after its first checkpoint', async () => {
    const first = cli([
      '--quick', '--model', modelDir, '--train', path.join(dir, 'train.jsonl'), '--test', path.join(dir, 'test.jsonl'),
      '--validation', path.join(dir, 'val.jsonl'), '--shift', path.join(dir, 'shift.jsonl'), '--out', out,
      '--epochs', '6', '--batch', '8', '--r', '2', '--alpha', '4', '--max-length', '16',
    ]);
    // 8 steps per epoch, 48 steps, an evaluation and a checkpoint every 8 steps.
    const t0 = Date.now();
    let killedAt: number | null = null;
    while (Date.now() - t0 < 40_000) {
      const p = progress();
      if (p?.current) {
        first.child.kill('SIGKILL');
        killedAt = p.current.step;
        break;
      }
      if (first.child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    const r1 = await first.done;
    expect(killedAt, `no checkpoint seen; child stderr:\n${r1.stderr}`).not.toBe(null);
    expect(r1.signal).toBe('SIGKILL');
    expect(existsSync(path.join(out, 'report.json'))).toBe(false);
    // The progress file may have moved on between our read and the kill; what counts is what is on disk now.
    const at = progress()!.current!.step;
    expect(at).toBeGreaterThanOrEqual(killedAt!);
    expect(at).toBeLessThan(48);

    const second = cli(['--resume', out]);
    const r2 = await second.done;
    expect(r2.code, r2.stderr).toBe(0);
    expect(r2.stderr).toContain(`resuming at step ${at}`);
    expect(r2.stderr).toContain(`seed 0: trained steps ${at + 1}..48 in this process`);
    const report = JSON.parse(readFileSync(path.join(out, 'report.json'), 'utf8'));
    const mapSteps = [...new Set(report.seedRows.filter((r: { method: string }) => r.method === 'MAP').map((r: { step: number }) => r.step))].sort(
      (a, b) => (a as number) - (b as number),
    );
    // Rows evaluated by the killed process (step 0 and the checkpoints up to `at`) survive.
    expect(mapSteps).toEqual([0, 8, 16, 24, 32, 40, 48]);
    const methods = new Set(report.rows.map((r: { method: string }) => r.method));
    for (const m of ['MAP', 'LA', 'LLLA', 'TS', 'CKPT-ENS']) expect(methods.has(m)).toBe(true);
    for (const f of ['report.md', 'adapter/adapter_model.safetensors', 'posterior.safetensors']) expect(existsSync(path.join(out, f))).toBe(true);
    expect(progress()!.seedsDone).toBe(1);
  }, 90_000);
});
