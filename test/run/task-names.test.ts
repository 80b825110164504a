// Report names of the main job's evaluation files: every set gets its own
// name, so rows, tables and chart files of different sets never merge.
import { describe, expect, it } from 'vitest';
import { taskNames } from '../../ts/run/datasets.ts';

describe('taskNames', () => {
  it('names the built-in layout by folder', () => {
    expect(taskNames(['data/wn-category/test.jsonl', 'data/foldoc-word/test.jsonl', 'data/wn-word/test.jsonl'])).toEqual([
      'wn-category',
      'foldoc-word',
      'wn-word',
    ]);
  });
  it('names other files by file name, so sets in one folder stay apart', () => {
    expect(taskNames(['/tmp/x/test.jsonl', '/tmp/x/foldoc.jsonl', '/tmp/x/arc-easy.jsonl'])).toEqual(['x', 'foldoc', 'arc-easy']);
    expect(taskNames(['/tmp/x/test-small.jsonl', '/tmp/x/validation_2.jsonl'])).toEqual(['x', 'x-2']);
  });
  it('makes repeated names distinct', () => {
    expect(taskNames(['/a/t/test.jsonl', '/b/t/test.jsonl', '/c/t/test.jsonl', '/d/t-2.jsonl'])).toEqual(['t', 't-2', 't-3', 't-2-2']);
    expect(taskNames(['/tmp/e2e/test.jsonl', '/tmp/e2e/shift.jsonl'])).toEqual(['e2e', 'shift']);
  });
});
