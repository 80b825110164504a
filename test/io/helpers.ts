// Shared helpers for the io tests: temp dirs, raw safetensors images with
// arbitrary (possibly hostile) headers, and a typed-error assertion that also
// checks the message names the offending file.
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';
import { BayesLoraError } from '../../ts/errors.ts';

/** A fresh temp dir; `memory` prefers /dev/shm (tight write loops on a disk-backed /tmp are slow). */
export function tempDir(tag: string, memory = false): { dir: string; cleanup: () => void } {
  let root = tmpdir();
  if (memory) {
    try {
      accessSync('/dev/shm', constants.W_OK);
      root = '/dev/shm';
    } catch {
      /* not Linux, or not writable: use tmpdir */
    }
  }
  const dir = mkdtempSync(path.join(root, `bl-io-${tag}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** u64 LE header length (or `len`), header bytes, data bytes. */
export function rawSafetensors(header: string | Uint8Array, data: Uint8Array = new Uint8Array(0), len?: bigint): Uint8Array {
  const h = typeof header === 'string' ? Buffer.from(header, 'utf8') : header;
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, len ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

/** Assert `fn` throws a BayesLoraError with `code` whose message contains every `mentions`. */
export function expectTypedError(fn: () => unknown, code: string, ...mentions: string[]): BayesLoraError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, 'expected a throw').toBeInstanceOf(BayesLoraError);
  const err = caught as BayesLoraError;
  expect(err.code, err.message).toBe(code);
  for (const m of mentions) expect(err.message).toContain(m);
  return err;
}
