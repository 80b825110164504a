#!/usr/bin/env node
// `npm run test:native`: builds the native library (cpp/, without the N-API
// bindings) and test/native/*.cc with AddressSanitizer (+ LeakSanitizer, part
// of ASan on Linux) into build-native-asan/, runs the test binary, and exits
// non-zero on a failed check, a memory error or a leak. Incremental: an
// object is rebuilt when its source or a header it includes (g++ -MMD) is
// newer. A leak canary run first proves LeakSanitizer works in this
// environment. Options: --jobs N (default 2), --build-dir DIR, --no-run.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const jobs = Math.max(1, Number(opt('--jobs', '2')));
const out = path.resolve(root, opt('--build-dir', 'build-native-asan'));
const CXX = process.env.CXX || 'g++';
const FLAGS = ['-std=c++17', '-O1', '-g', '-fsanitize=address', '-fno-omit-frame-pointer', '-Wall', '-Wno-unused-parameter', '-Wno-maybe-uninitialized', `-I${path.join(root, 'cpp')}`];

function walk(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? walk(p) : [p];
  });
}

const sources = [
  ...walk(path.join(root, 'cpp')).filter((f) => f.endsWith('.cc') && !f.includes(`${path.sep}napi${path.sep}`)),
  ...walk(path.join(root, 'test', 'native')).filter((f) => f.endsWith('.cc')),
];

function objectOf(src) {
  return path.join(out, 'obj', path.relative(root, src).replace(/[\\/]/g, '_').replace(/\.cc$/, '.o'));
}

function stale(src, obj) {
  if (!existsSync(obj)) return true;
  const t = statSync(obj).mtimeMs;
  const dep = obj.replace(/\.o$/, '.d');
  if (!existsSync(dep)) return true;
  const files = readFileSync(dep, 'utf8').replace(/\\\n/g, ' ').split(':').slice(1).join(':').split(/\s+/).filter(Boolean);
  return [src, ...files].some((f) => !existsSync(f) || statSync(f).mtimeMs > t);
}

function compile(src) {
  const obj = objectOf(src);
  return new Promise((resolve, reject) => {
    const p = spawn(CXX, [...FLAGS, '-MMD', '-MF', obj.replace(/\.o$/, '.d'), '-c', src, '-o', obj], { stdio: 'inherit' });
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`compile failed: ${path.relative(root, src)}`))));
  });
}

const t0 = performance.now();
mkdirSync(path.join(out, 'obj'), { recursive: true });
const todo = sources.filter((s) => stale(s, objectOf(s)));
let next = 0;
await Promise.all(
  Array.from({ length: Math.min(jobs, todo.length) }, async () => {
    while (next < todo.length) await compile(todo[next++]);
  }),
);
const bin = path.join(out, 'native_test');
const link = spawnSync(CXX, ['-fsanitize=address', '-o', bin, ...sources.map(objectOf), '-ldl', '-lpthread'], { stdio: 'inherit' });
if (link.status !== 0) process.exit(1);
const tBuild = (performance.now() - t0) / 1000;
console.log(`test:native: built ${todo.length} of ${sources.length} objects in ${tBuild.toFixed(1)} s`);
if (args.includes('--no-run')) process.exit(0);

const env = {
    ...process.env,
    // detect_leaks: LeakSanitizer at exit; exitcode 23 on a leak (ASan's default), 1 on a failed check.
    ASAN_OPTIONS: `detect_leaks=1:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1${process.env.ASAN_OPTIONS ? ':' + process.env.ASAN_OPTIONS : ''}`,
    BAYESLORA_THREADS: process.env.BAYESLORA_THREADS ?? '2',
};
// The canary leaks on purpose: LeakSanitizer must report it, or leak checking
// does not work here (e.g. under ptrace) and a clean run would prove nothing.
const canary = spawnSync(bin, ['--leak-canary'], { env, encoding: 'utf8' });
if (canary.status === 0 || !/LeakSanitizer: detected memory leaks/.test(canary.stderr)) {
  console.error(`test:native: LeakSanitizer did not catch the canary leak (exit ${canary.status}); leak checking is not active:\n${canary.stderr}`);
  process.exit(1);
}
const t1 = performance.now();
const r = spawnSync(bin, [], { stdio: 'inherit', env });
console.log(`test:native: ran in ${((performance.now() - t1) / 1000).toFixed(1)} s, exit ${r.status ?? r.signal}`);
process.exit(r.status === 0 ? 0 : 1);
