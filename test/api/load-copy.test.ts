// Model.load(dir, { mmap: false }): the checkpoint is read into private memory,
// so the model gives the same numbers as the zero-copy mapping and keeps working
// when its files are overwritten or truncated in place afterwards (with the
// mapping, the next read of a truncated page is a SIGBUS that kills the
// process). The overwrite runs in a child process (load-copy.driver.mts).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeTinyCheckpoint } from '../../ts/io/random-checkpoint.ts';
import { Model } from '../../ts/model.ts';
import { BayesLoraError } from '../../ts/errors.ts';
import { randomMcBatch } from '../helpers/random-mc-batch.ts';
import { lastJsonLine, runTsChild } from '../helpers/ts-child.ts';

const root = mkdtempSync(path.join(tmpdir(), 'bl-load-copy-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function logits(dir: string, mmap?: boolean): Promise<number[]> {
  const m = await Model.load(dir, mmap === undefined ? {} : { mmap });
  try {
    return Array.from((await m.forward(randomMcBatch(m.info().config.vocabSize))).logits);
  } finally {
    m.dispose();
  }
}

describe('Model.load mmap option', () => {
  for (const shards of [1, 3]) {
    it(`mmap: false gives the numbers of the mapped load (${shards} shard(s)) and survives the files being overwritten`, async () => {
      const dir = path.join(root, `ckpt-${shards}`);
      makeTinyCheckpoint(dir, { vocab: 300, hidden: 64, layers: 2, heads: 4, intermediate: 128, shards, seed: 9 });
      const mapped = await logits(dir);
      expect(await logits(dir, false)).toEqual(mapped);
      expect(await logits(dir, true)).toEqual(mapped);
      const out = lastJsonLine(runTsChild(path.join(import.meta.dirname, 'load-copy.driver.mts'), [dir]).stdout);
      expect(out.before).toEqual(mapped);
      expect(out.after).toEqual(mapped);
      expect(Number.isFinite(out.loss)).toBe(true);
    }, 150_000);
  }

  it('a non-boolean mmap is INVALID_ARGUMENT', async () => {
    const dir = path.join(root, 'ckpt-1');
    let err: unknown;
    try {
      await Model.load(dir, { mmap: 'no' as unknown as boolean });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BayesLoraError);
    expect((err as BayesLoraError).code).toBe('INVALID_ARGUMENT');
  });
});
