// The package as a dependent project gets it: what `npm pack` ships, that
// plain Node (no TypeScript loader) imports 'bayeslora' from the compiled
// dist/ and runs the native code through it, and that TypeScript resolves the
// published declarations. The imports go through the package's own name
// (Node's self-reference), i.e. through package.json "exports".
import { beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as src from '../../ts/index.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
// Children run plain Node: no loader inherited from the test runner.
const env = { ...process.env, NODE_OPTIONS: '' };

function run(args: string[], opts: { input?: string; cwd?: string } = {}) {
  const r = spawnSync(process.execPath, args, { cwd: opts.cwd ?? root, env, input: opts.input, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

beforeAll(() => {
  // dist/ is a build output (npm's prepare hook makes it); rebuild it so the
  // checks below see the current sources.
  const r = run(['scripts/build-ts.mjs']);
  expect(r.status, r.stdout + r.stderr).toBe(0);
}, 180_000);

describe('published package', () => {
  it('npm pack ships the compiled JS, the native sources, the built-in model and tasks, and nothing of the dev tree', () => {
    // npm's own CLI when npm runs the tests, else the one on the PATH.
    const npm = process.env.npm_execpath ? [process.execPath, process.env.npm_execpath] : ['npm'];
    const r = spawnSync(npm[0], [...npm.slice(1), 'pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, env, encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    const files = new Set<string>((JSON.parse(r.stdout)[0].files as { path: string }[]).map((f) => f.path));
    for (const f of [
      'package.json', 'README.md', 'LICENSE', 'bin/bayeslora.mjs', 'scripts/install.mjs', 'scripts/build-ts.mjs',
      'dist/index.js', 'dist/index.d.ts', 'dist/native.js', 'dist/cli/main.js', 'ts/index.ts', 'ts/cli/main.ts',
      'CMakeLists.txt', 'binding.gyp', 'cpp/napi/addon.cc', 'cpp/backend/backend.h', 'cuda/cuda_backend.cu',
      'models/wordnet-tiny/config.json', 'models/wordnet-tiny/model.safetensors', 'models/wordnet-tiny/tokenizer.json',
      'data/wn-category/train-small.jsonl', 'data/foldoc-word/test.jsonl',
    ])
      expect(files.has(f), f).toBe(true);
    for (const f of files) expect(f, 'a dev-tree file in the package').not.toMatch(/^(test|bench|fuzz|\.ci|build[^/]*|node_modules|runs|\.tmp)\//);
  }, 120_000);

  it('plain Node imports it from dist/: the same exports as the sources, the native addon, typed errors', async () => {
    const script = `
      import * as b from 'bayeslora';
      const tok = await b.Tokenizer.fromFile('models/wordnet-tiny/tokenizer.json');
      const model = await b.Model.load('models/wordnet-tiny');
      const ex = (await b.readMcJsonl('data/wn-category/test.jsonl')).slice(0, 3);
      const batch = b.collateMc(await b.encodeMc(tok, ex, { format: 'choice' }), { padId: tok.padId, maxLength: 96, side: 'left' });
      const r = await model.forward(batch);
      model.dispose(); model.dispose();
      let code = null;
      try { await b.Model.load('no/such/model/dir'); } catch (e) { code = e instanceof b.BayesLoraError ? e.code : 'not a BayesLoraError: ' + e; }
      console.log(JSON.stringify({ keys: Object.keys(b).sort(), logits: Array.from(r.logits), code }));`;
    const r = run(['--input-type=module', '-'], { input: script });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(out.keys).toEqual(Object.keys(src).sort());
    expect(typeof out.code).toBe('string');
    expect(out.code).not.toMatch(/^not a/);

    // The same forward through the sources, in this process.
    const tok = await src.Tokenizer.fromFile(path.join(root, 'models/wordnet-tiny/tokenizer.json'));
    const model = await src.Model.load(path.join(root, 'models/wordnet-tiny'));
    try {
      const ex = (await src.readMcJsonl(path.join(root, 'data/wn-category/test.jsonl'))).slice(0, 3);
      const batch = src.collateMc(await src.encodeMc(tok, ex, { format: 'choice' }), { padId: tok.padId!, maxLength: 96, side: 'left' });
      const want = (await model.forward(batch)).logits;
      expect(out.logits.length).toBe(want.length);
      for (let i = 0; i < want.length; i++) expect(Math.abs(out.logits[i] - want[i])).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(want[i])));
    } finally {
      model.dispose();
    }
  }, 120_000);

  // Node 20.19+ and 22.12+ load ES modules with require() (no top-level
  // await in our module graph), so CommonJS projects can use the package too.
  const [maj, min] = process.versions.node.split('.').map(Number);
  const requireEsm = (maj === 20 && min >= 19) || (maj === 22 && min >= 12) || maj >= 23;
  it.skipIf(!requireEsm)('CommonJS require() of the package works (Node 20.19+ / 22.12+)', () => {
    const r = run(['-e', "const b = require('bayeslora'); if (typeof b.Model !== 'function' || typeof b.Laplace !== 'function') process.exit(3); console.log(Object.keys(b).length)"]);
    expect(r.status, r.stderr).toBe(0);
    expect(Number(r.stdout.trim())).toBe(Object.keys(src).length);
  });

  it('TypeScript resolves the published declarations (a consumer file type-checks; a type error is caught)', () => {
    const dir = path.join(root, '.tmp', 'package-types');
    mkdirSync(dir, { recursive: true });
    const tsconfig = {
      compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: false, types: ['node'], typeRoots: [path.join(root, 'node_modules/@types')] },
      files: ['ok.ts'],
    };
    writeFileSync(path.join(dir, 'ok.ts'), [
      "import { Model, Laplace, BayesLoraError, type LaplaceFitOptions, type ErrorCode } from 'bayeslora';",
      "const opts: LaplaceFitOptions = { fisher: 'exact', tokens: 'reduce' };",
      "const load: Promise<Model> = Model.load('dir');",
      "const code: ErrorCode | string = new BayesLoraError('BAD_FILE', 'x').code;",
      'export { opts, load, code, Laplace };',
    ].join('\n'));
    writeFileSync(path.join(dir, 'bad.ts'), "import { Model } from 'bayeslora';\nexport const n: number = Model.load('dir');\n");
    const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify(tsconfig));
    const ok = run([tsc, '-p', dir]);
    expect(ok.status, ok.stdout + ok.stderr).toBe(0);
    writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({ ...tsconfig, files: ['bad.ts'] }));
    const bad = run([tsc, '-p', dir]);
    expect(bad.status).not.toBe(0);
    expect(bad.stdout).toMatch(/bad\.ts.*TS2322/);
  }, 120_000);
});
