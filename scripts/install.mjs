// npm "install" hook: use a prebuilt binary when one matches this platform,
// otherwise compile with cmake-js; fall back to node-gyp (CPU only) when
// cmake is missing. Never fails the install silently: prints what it did.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const prebuilt = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'bayeslora.node');
if (process.env.BAYESLORA_SKIP_BUILD === '1') process.exit(0);
if (existsSync(prebuilt) && process.env.BAYESLORA_FROM_SOURCE !== '1') {
  console.log(`bayeslora: using prebuilt ${path.relative(root, prebuilt)}`);
  process.exit(0);
}
function run(cmd, args) {
  console.log(`bayeslora: ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', shell: false });
  return r.status === 0;
}
const hasCmake = spawnSync('cmake', ['--version']).status === 0;
// cmake-js is a dependency, but where it lands depends on the installer: in
// a checkout it is node_modules/cmake-js, in a project that depends on us npm
// usually hoists it next to us. Resolve it the way Node would.
function resolveCmakeJs() {
  try {
    const req = createRequire(path.join(root, 'package.json'));
    return path.join(path.dirname(req.resolve('cmake-js/package.json')), 'bin', 'cmake-js');
  } catch {
    return null;
  }
}
const cmakeJs = resolveCmakeJs();
if (hasCmake && !cmakeJs) console.error('bayeslora: cmake-js not found (a dependency); trying node-gyp (CPU only)');
if (hasCmake && cmakeJs && existsSync(cmakeJs)) {
  if (run(process.execPath, [cmakeJs, 'compile', '--CDCMAKE_BUILD_TYPE=Release'])) process.exit(0);
  console.error('bayeslora: cmake-js build failed, trying node-gyp (CPU only)');
}
// node-gyp: npm's bundled copy (npm_config_node_gyp) or a global one; use the
// running node's own headers when present, so no header download is needed.
const prefix = path.resolve(path.dirname(process.execPath), '..');
const gypArgs = ['rebuild', '-j', '2'];
if (existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) gypArgs.push(`--nodedir=${prefix}`);
const gypJs = process.env.npm_config_node_gyp;
const gyp =
  gypJs && existsSync(gypJs)
    ? spawnSync(process.execPath, [gypJs, ...gypArgs], { cwd: root, stdio: 'inherit' })
    : spawnSync('node-gyp', gypArgs, { cwd: root, stdio: 'inherit' });
process.exit(gyp.status ?? 1);
