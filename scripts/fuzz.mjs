#!/usr/bin/env node
// `npm run fuzz -- --seconds N`: the fuzz harness of every reader of user files.
//  1. builds the C++ targets (fuzz/targets/*.cc) against the native library
//     (cpp/ without the N-API bindings) with ASan + UBSan: libFuzzer when
//     clang++ has it (coverage-guided), else g++ with fuzz/driver/standalone.cc
//     (random mutations; same contract). Objects are incremental (-MMD).
//  2. writes the seed corpora (fuzz/seeds.cc: valid files from the library's
//     own writers) and replays fuzz/regressions/<target>/* (every crash found
//     becomes a regression input there);
//  3. runs each C++ target for N / targets seconds (per-input timeout: a hang);
//  4. runs the TypeScript mutation loop (fuzz/ts/run.ts) for --ts-cases cases;
//  5. writes bench/results/fuzz.json {cpp_execs, ts_cases, crashes, hangs, ...}.
// Options: --seconds N (C++ total, default 60), --ts-cases N (default 20000),
// --driver auto|libfuzzer|standalone, --targets a,b, --no-ts, --no-cpp,
// --parallel N (targets run at once; default min(2, cores)), --jobs N, --out FILE (default bench/results/fuzz.json; "-" = none).
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  if (i >= 0) return args[i + 1];
  const eq = args.find((a) => a.startsWith(`${name}=`));
  return eq ? eq.slice(name.length + 1) : dflt;
};
const seconds = Number(opt('--seconds', '60'));
const tsCases = Number(opt('--ts-cases', '20000'));
const jobs = Math.max(1, Number(opt('--jobs', '2')));
const outFile = opt('--out', path.join('bench', 'results', 'fuzz.json'));
const ALL = ['json', 'safetensors', 'checkpoint', 'config', 'adapter', 'posterior'];
const targets = opt('--targets', ALL.join(',')).split(',').filter(Boolean);
for (const t of targets) if (!ALL.includes(t)) throw new Error(`unknown target ${t} (have ${ALL.join(', ')})`);

function hasLibFuzzer() {
  const probe = spawnSync('clang++', ['-print-file-name=libclang_rt.fuzzer-x86_64.a'], { encoding: 'utf8' });
  if (probe.status !== 0) return false;
  const p = probe.stdout.trim();
  if (path.isAbsolute(p) && existsSync(p)) return true;
  // older layouts: ask the driver for the runtime directory
  const dir = spawnSync('clang++', ['-print-runtime-dir'], { encoding: 'utf8' });
  return dir.status === 0 && existsSync(path.join(dir.stdout.trim(), 'libclang_rt.fuzzer-x86_64.a'));
}
let driver = opt('--driver', 'auto');
if (driver === 'auto') driver = hasLibFuzzer() ? 'libfuzzer' : 'standalone';
const CXX = driver === 'libfuzzer' ? 'clang++' : process.env.CXX || 'g++';
const out = path.join(root, 'build-fuzz', driver);
const SAN = ['-fsanitize=address,undefined', '-fno-sanitize-recover=undefined', '-fno-omit-frame-pointer'];
const BASE = ['-std=c++17', '-O1', '-g', ...SAN, '-Wno-unused-parameter', `-I${path.join(root, 'cpp')}`, `-I${path.join(root, 'fuzz')}`];
// Library code gets coverage instrumentation (libFuzzer) but no fuzzer main.
const LIBFLAGS = driver === 'libfuzzer' ? [...BASE, '-fsanitize=fuzzer-no-link'] : BASE;

function walk(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? walk(p) : [p];
  });
}
const libSources = walk(path.join(root, 'cpp')).filter((f) => f.endsWith('.cc') && !f.includes(`${path.sep}napi${path.sep}`));
const objectOf = (src) => path.join(out, 'obj', path.relative(root, src).replace(/[\\/]/g, '_').replace(/\.cc$/, '.o'));
function stale(src, obj) {
  if (!existsSync(obj)) return true;
  const t = statSync(obj).mtimeMs;
  const dep = obj.replace(/\.o$/, '.d');
  if (!existsSync(dep)) return true;
  const files = readFileSync(dep, 'utf8').replace(/\\\n/g, ' ').split(':').slice(1).join(':').split(/\s+/).filter(Boolean);
  return [src, ...files].some((f) => !existsSync(f) || statSync(f).mtimeMs > t);
}
function compile(src, flags) {
  const obj = objectOf(src);
  return new Promise((resolve, reject) => {
    const p = spawn(CXX, [...flags, '-MMD', '-MF', obj.replace(/\.o$/, '.d'), '-c', src, '-o', obj], { stdio: 'inherit' });
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`compile failed: ${path.relative(root, src)}`))));
  });
}
function link(bin, objs, extra = []) {
  const r = spawnSync(CXX, [...SAN, ...extra, '-o', bin, ...objs, '-ldl', '-lpthread'], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`link failed: ${bin}`);
}

const t0 = performance.now();
const result = {
  cpp_execs: 0,
  ts_cases: 0,
  crashes: 0,
  hangs: 0,
  driver,
  targets: [],
  ts: null,
  regressions_replayed: 0,
};

if (!args.includes('--no-cpp')) {
  // ---- 1. build -----------------------------------------------------------------------
  mkdirSync(path.join(out, 'obj'), { recursive: true });
  const targetSources = targets.map((t) => path.join(root, 'fuzz', 'targets', `fuzz_${t}.cc`));
  const extra = [path.join(root, 'fuzz', 'seeds.cc'), ...(driver === 'standalone' ? [path.join(root, 'fuzz', 'driver', 'standalone.cc')] : [])];
  const todo = [...libSources.map((s) => [s, LIBFLAGS]), ...targetSources.map((s) => [s, LIBFLAGS]), ...extra.map((s) => [s, BASE])].filter(
    ([s]) => stale(s, objectOf(s)),
  );
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(jobs, todo.length) }, async () => {
      while (next < todo.length) {
        const [s, f] = todo[next++];
        await compile(s, f);
      }
    }),
  );
  const libObjs = libSources.map(objectOf);
  const seedsBin = path.join(out, 'seeds');
  link(seedsBin, [...libObjs, objectOf(path.join(root, 'fuzz', 'seeds.cc'))]);
  const bins = {};
  for (const t of targets) {
    bins[t] = path.join(out, `fuzz_${t}`);
    const objs = [...libObjs, objectOf(path.join(root, 'fuzz', 'targets', `fuzz_${t}.cc`))];
    if (driver === 'libfuzzer') link(bins[t], objs, ['-fsanitize=fuzzer']);
    else link(bins[t], [...objs, objectOf(path.join(root, 'fuzz', 'driver', 'standalone.cc'))]);
  }
  console.log(`fuzz: built ${todo.length} objects with ${CXX} (${driver}) in ${((performance.now() - t0) / 1000).toFixed(0)} s`);

  // ---- 2. seeds and regressions -------------------------------------------------------
  const seedDir = path.join(out, 'seeds-out');
  rmSync(seedDir, { recursive: true, force: true });
  const env = { ...process.env, BAYESLORA_THREADS: '1', ASAN_OPTIONS: `detect_leaks=1:allocator_may_return_null=1${process.env.ASAN_OPTIONS ? ':' + process.env.ASAN_OPTIONS : ''}`, UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1' };
  const sr = spawnSync(seedsBin, [seedDir, root], { stdio: 'inherit', env });
  if (sr.status !== 0) throw new Error('seed generation failed');
  for (const t of targets) {
    const reg = path.join(root, 'fuzz', 'regressions', t);
    const files = existsSync(reg) ? readdirSync(reg).map((f) => path.join(reg, f)) : [];
    if (!files.length) continue;
    const r = spawnSync(bins[t], files, { stdio: 'inherit', env });
    result.regressions_replayed += files.length;
    if (r.status !== 0) {
      result.crashes++;
      console.log(`fuzz: regression inputs of ${t} fail (exit ${r.status})`);
    }
  }

  // ---- 3. run: `--parallel` targets at a time (default: the machine's cores, at most 2) ----
  const parallel = Math.max(1, Number(opt('--parallel', String(Math.min(2, os.cpus().length)))));
  const per = (seconds * parallel) / targets.length;
  const runTarget = (t) =>
    new Promise((resolve) => {
      const corpus = path.join(out, 'corpus', t);
      mkdirSync(corpus, { recursive: true });
      if (existsSync(path.join(seedDir, t))) cpSync(path.join(seedDir, t), corpus, { recursive: true });
      const artifacts = path.join(out, 'artifacts', t);
      mkdirSync(artifacts, { recursive: true });
      const dict = path.join(root, 'fuzz', 'json.dict');
      const flags = [
        corpus,
        `-max_total_time=${Math.max(1, Math.round(per))}`,
        '-timeout=10',
        '-rss_limit_mb=2560',
        '-malloc_limit_mb=2048',
        '-print_final_stats=1',
        `-artifact_prefix=${artifacts}/`,
        ...(t !== 'safetensors' && t !== 'posterior' ? [`-dict=${dict}`] : []),
      ];
      const ts = performance.now();
      const child = spawn(bins[t], flags, { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      const keep = (d) => (text = (text + d).slice(-200000));
      child.stdout.on('data', keep);
      child.stderr.on('data', keep);
      child.on('exit', (status) => {
        const m = text.match(/stat::number_of_executed_units:\s*(\d+)/);
        const execs = m ? Number(m[1]) : 0;
        const hang = /ALARM: working on the last Unit for|-- timeout|standalone: timeout/.test(text);
        const crash = status !== 0 && !hang;
        if (status !== 0) writeFileSync(path.join(artifacts, 'log.txt'), text.slice(-20000));
        const row = { name: t, driver, execs, seconds: (performance.now() - ts) / 1000, crashes: crash ? 1 : 0, hangs: hang ? 1 : 0, exit: status };
        console.log(`fuzz: ${t}: ${execs} execs in ${row.seconds.toFixed(0)} s, ${row.crashes} crash(es), ${row.hangs} hang(s)${status !== 0 ? ` (see ${path.relative(root, artifacts)})` : ''}`);
        resolve(row);
      });
    });
  let nextTarget = 0;
  const rows = [];
  await Promise.all(
    Array.from({ length: Math.min(parallel, targets.length) }, async () => {
      while (nextTarget < targets.length) rows.push(await runTarget(targets[nextTarget++]));
    }),
  );
  for (const t of targets) {
    const row = rows.find((r) => r.name === t);
    result.targets.push(row);
    result.cpp_execs += row.execs;
    result.crashes += row.crashes;
    result.hangs += row.hangs;
  }
}

// ---- 4. TypeScript loop -----------------------------------------------------------------
if (!args.includes('--no-ts') && tsCases > 0) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(root, 'fuzz', 'ts', 'run.ts'), '--cases', String(tsCases), '--artifacts', path.join(root, 'build-fuzz', 'ts-artifacts')], {
    encoding: 'utf8',
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 28,
  });
  const last = (r.stdout ?? '').trim().split('\n').pop() ?? '{}';
  let ts;
  try {
    ts = JSON.parse(last);
  } catch {
    ts = { cases: 0, crashes: 1, hangs: 0, error: `ts runner printed: ${last.slice(0, 300)}` };
  }
  result.ts = ts;
  result.ts_cases = ts.cases ?? 0;
  result.crashes += ts.crashes ?? 0;
  result.hangs += ts.hangs ?? 0;
  console.log(`fuzz: TypeScript: ${result.ts_cases} cases, ${ts.crashes} crash(es) (untyped errors + native), ${ts.hangs} hang(s)`);
}

const git = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' });
const record = {
  ...result,
  seconds_total: (performance.now() - t0) / 1000,
  machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, loadavg: os.loadavg() },
  commit: git.stdout?.trim() || null,
  // Files under test that differed from the commit (a shared checkout: others' work in progress is compiled in too).
  uncommitted: (spawnSync('git', ['status', '--porcelain', '--', 'cpp', 'ts', 'fuzz'], { cwd: root, encoding: 'utf8' }).stdout ?? '')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.slice(3)),
  command: `npm run fuzz -- ${args.join(' ')}`.trim(),
  date: new Date().toISOString(),
};
if (outFile !== '-') {
  mkdirSync(path.dirname(path.resolve(root, outFile)), { recursive: true });
  writeFileSync(path.resolve(root, outFile), JSON.stringify(record, null, 2) + '\n');
}
console.log(`fuzz: ${record.cpp_execs} C++ executions, ${record.ts_cases} TypeScript cases, ${record.crashes} crash(es), ${record.hangs} hang(s)`);
process.exit(record.crashes || record.hangs ? 1 : 0);
