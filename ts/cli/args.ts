// Argument parsing for the `fit` and `predict` subcommands: node's parseArgs
// with every problem (unknown flag, missing value, bad number, value outside
// a set) turned into a typed INVALID_ARGUMENT error, so `run(args)` callers
// and the dispatcher see one error kind.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { invalid } from '../errors.ts';

type Options = NonNullable<ParseArgsConfig['options']>;

/** parseArgs in strict mode; its own errors (unknown option, missing value) become INVALID_ARGUMENT. */
export function parseCli(cmd: string, args: string[], options: Options): Record<string, string | boolean | string[] | undefined> {
  const { values, positionals } = parseCliPositionals(cmd, args, options);
  if (positionals.length) throw invalid(`${cmd}: unexpected argument '${positionals[0]}'`);
  return values;
}

/** parseCli for commands that also take positional arguments (returned as given). */
export function parseCliPositionals(
  cmd: string,
  args: string[],
  options: Options,
): { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] } {
  if (!Array.isArray(args) || args.some((a) => typeof a !== 'string')) throw invalid(`${cmd}: args must be an array of strings`);
  try {
    const { values, positionals } = parseArgs({ args, options, strict: true, allowPositionals: true });
    return { values: values as Record<string, string | boolean | string[] | undefined>, positionals };
  } catch (e) {
    if (e instanceof Error && e.name === 'BayesLoraError') throw e;
    throw invalid(`${cmd}: ${(e as Error).message}`);
  }
}

/** A string flag (its default applies when absent). */
export function strArg(v: Record<string, unknown>, name: string): string | undefined {
  const s = v[name];
  return typeof s === 'string' ? s : undefined;
}

export function required(cmd: string, v: Record<string, unknown>, name: string): string {
  const s = v[name];
  if (typeof s !== 'string' || s.length === 0) throw invalid(`${cmd}: --${name} is required`);
  return s;
}

/** An integer flag in [min, max]; `def` when absent. */
export function intArg(cmd: string, v: Record<string, unknown>, name: string, def: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const s = v[name];
  if (s === undefined) return def;
  const n = typeof s === 'string' && /^\s*[+-]?\d+\s*$/.test(s) ? Number(s) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw invalid(`${cmd}: --${name} must be an integer in [${min}, ${max === Number.MAX_SAFE_INTEGER ? 'inf' : max}], got '${String(s)}'`);
  }
  return n;
}

/** A finite positive number flag. */
export function positiveArg(cmd: string, v: Record<string, unknown>, name: string): number | undefined {
  const s = v[name];
  if (s === undefined) return undefined;
  const n = typeof s === 'string' && s.trim() !== '' ? Number(s) : NaN;
  if (!Number.isFinite(n) || n <= 0) throw invalid(`${cmd}: --${name} must be a finite number > 0, got '${String(s)}'`);
  return n;
}

/** A finite number flag with `ok(n)` true, described by `what` (e.g. 'in [0, 1)'); `def` when absent. */
export function numberArg(cmd: string, v: Record<string, unknown>, name: string, def: number, ok: (n: number) => boolean, what: string): number {
  const s = v[name];
  if (s === undefined) return def;
  const n = typeof s === 'string' && s.trim() !== '' ? Number(s) : NaN;
  if (!Number.isFinite(n) || !ok(n)) throw invalid(`${cmd}: --${name} must be a number ${what}, got '${String(s)}'`);
  return n;
}

/** A flag restricted to a fixed set of words. */
export function choiceArg<T extends string>(cmd: string, v: Record<string, unknown>, name: string, allowed: readonly T[], def: T): T {
  const s = v[name];
  if (s === undefined) return def;
  if (typeof s !== 'string' || !(allowed as readonly string[]).includes(s)) {
    throw invalid(`${cmd}: --${name} must be one of ${allowed.join('|')}, got '${String(s)}'`);
  }
  return s as T;
}
