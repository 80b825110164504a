// Validation of runMainJob's options (the API entry of the main job; the CLI
// checks its flags first, with flag names in the messages). Every problem is
// an INVALID_ARGUMENT naming the option, raised before any file is read or
// written, instead of a NaN deep inside training or an empty report.
import { invalid } from '../errors.ts';
import type { RunOptions } from './main-job.ts';

const isInt = (v: unknown, min: number): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= min;
const isPos = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v > 0;
const isPath = (v: unknown): v is string => typeof v === 'string' && v.length > 0;

export function checkRunOptions(o: RunOptions): void {
  if (o === null || typeof o !== 'object') throw invalid('runMainJob: options must be an object');
  const bad = (name: string, what: string, v: unknown) => invalid(`runMainJob: options.${name} must be ${what}, got ${JSON.stringify(v) ?? String(v)}`);
  for (const k of ['model', 'train', 'test', 'validation', 'out'] as const) if (!isPath(o[k])) throw bad(k, 'a non-empty path', o[k]);
  if (!Array.isArray(o.shift) || !o.shift.every(isPath)) throw bad('shift', 'an array of paths', o.shift);
  if (o.backend !== undefined && o.backend !== 'cpu' && o.backend !== 'cuda') throw bad('backend', "'cpu' or 'cuda'", o.backend);
  if (o.format !== 'choice' && o.format !== 'letter') throw bad('format', "'choice' or 'letter'", o.format);
  const ints: [keyof RunOptions, number][] = [
    ['seeds', 1], ['ensembleMembers', 0], ['maxLength', 2], ['epochs', 1], ['batchSize', 1],
    ['checkpoints', 1], ['mcdPasses', 1], ['laSamples', 1],
  ];
  for (const [k, min] of ints) if (!isInt(o[k], min)) throw bad(k, `an integer >= ${min}`, o[k]);
  if (!isPos(o.lr)) throw bad('lr', 'a finite number > 0', o.lr);
  if (o.nKfac !== 'auto' && !isInt(o.nKfac, 1)) throw bad('nKfac', "'auto' or an integer >= 1", o.nKfac);
  const l = o.lora;
  if (l === null || typeof l !== 'object') throw bad('lora', 'an object', l);
  if (!isInt(l.r, 1)) throw bad('lora.r', 'an integer >= 1', l.r);
  if (!isPos(l.alpha)) throw bad('lora.alpha', 'a finite number > 0', l.alpha);
  if (typeof l.dropout !== 'number' || !(l.dropout >= 0 && l.dropout < 1)) throw bad('lora.dropout', 'a number in [0, 1)', l.dropout);
  if (!Array.isArray(l.targetModules) || l.targetModules.length === 0 || !l.targetModules.every((t) => typeof t === 'string' && t))
    throw bad('lora.targetModules', 'a non-empty array of module names', l.targetModules);
  if (o.limits !== undefined)
    for (const [k, v] of Object.entries(o.limits)) if (v !== undefined && !isInt(v, 1)) throw bad(`limits.${k}`, 'an integer >= 1', v);
  if (typeof o.log !== 'function') throw bad('log', 'a function', typeof o.log);
}
