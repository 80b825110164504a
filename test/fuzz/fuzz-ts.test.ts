// The TypeScript fuzz loop (fuzz/ts, run in full by `npm run fuzz`), a short
// run in the test suite: every reader of user files reachable from the
// TypeScript API (JSONL tasks, dataset converters, safetensors decoding,
// tokenizer.json, config.json, model directories, adapters, posteriors)
// must succeed or throw BayesLoraError on mutated inputs; a native crash, an
// untyped error or a hang fails the test. Each reader must have seen both
// outcomes, so the mutations reach past the first check and valid inputs
// still load.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '..', '..');

describe('fuzz: TypeScript readers', () => {
  it('1600 mutated inputs: typed errors or success, nothing else', () => {
    const artifacts = mkdtempSync(path.join(os.tmpdir(), 'bl-fuzz-art-'));
    try {
      const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(root, 'fuzz', 'ts', 'run.ts'), '--cases', '1600', '--artifacts', artifacts, '--hang-seconds', '60'], {
        cwd: root,
        encoding: 'utf8',
        timeout: 240_000,
      });
      expect(r.status, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
      expect(out.cases).toBe(1600);
      expect(out.untyped).toEqual([]);
      expect(out.native).toEqual([]);
      expect(out.crashes).toBe(0);
      expect(out.hangs).toBe(0);
      const readers = ['jsonl', 'convert', 'safetensors-ts', 'tokenizer', 'config', 'model', 'adapter', 'posterior'];
      expect(Object.keys(out.outcome).sort()).toEqual([...readers].sort());
      for (const k of readers) {
        expect(out.outcome[k].ok, k).toBeGreaterThan(0);
        expect(out.outcome[k].typed, k).toBeGreaterThan(0);
      }
    } finally {
      rmSync(artifacts, { recursive: true, force: true });
    }
  }, 300_000);
});
