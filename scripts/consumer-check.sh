#!/usr/bin/env bash
# The package as a dependent project installs it: `npm pack`, then
# `npm install <tarball>` into a fresh project (dependencies from the npm
# registry; the install hook builds the addon with cmake-js, CUDA included
# when nvcc is present, as it would for a user), then plain Node imports
# 'bayeslora', runs a forward pass of the built-in model, checks a typed
# error, runs `npx bayeslora info` and `npx bayeslora run --quick`. About 4
# minutes on 2 cores (the native build, then the quick main job).
# Usage: bash scripts/consumer-check.sh [DIR] (default: a temporary
# directory, removed afterwards).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-$(mktemp -d)}"
[ $# -eq 0 ] && trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir"
cd "$root" && npm pack --silent --pack-destination "$dir" >/dev/null
cd "$dir"
npm init -y >/dev/null && npm pkg set type=module
echo "consumer-check: npm install $(ls bayeslora-*.tgz) in $dir"
npm install --no-audit --no-fund --foreground-scripts ./bayeslora-*.tgz > install.log 2>&1 || { tail -40 install.log; exit 1; }
grep -m1 '^bayeslora: ' install.log || true
cat > check.mjs <<'JS'
import { Model, Tokenizer, info, readMcJsonl, encodeMc, collateMc, BayesLoraError } from 'bayeslora';
import { createRequire } from 'node:module';
import path from 'node:path';
const root = path.dirname(createRequire(import.meta.url).resolve('bayeslora/package.json'));
const i = info();
const tok = await Tokenizer.fromFile(path.join(root, 'models/wordnet-tiny/tokenizer.json'));
const m = await Model.load(path.join(root, 'models/wordnet-tiny'));
const ex = (await readMcJsonl(path.join(root, 'data/wn-category/test.jsonl'))).slice(0, 4);
const r = await m.forward(collateMc(await encodeMc(tok, ex, { format: 'choice' }), { padId: tok.padId, maxLength: 96, side: 'left' }));
m.dispose();
if (!r.probs.every(Number.isFinite)) throw new Error('non-finite probabilities');
let code = null;
try { await Model.load(path.join(root, 'no-such-model')); } catch (e) { if (!(e instanceof BayesLoraError)) throw e; code = e.code; }
if (!code) throw new Error('loading a missing model did not fail');
console.log(`consumer-check: import ok (addon ${i.addon ?? ''}), forward ok, missing model -> ${code}`);
JS
node check.mjs
npx --no-install bayeslora info | head -3
# The main job from the installed package (its built-in model, tasks, charts).
npx --no-install bayeslora run --quick --out "$dir/run" > run.log 2>&1 || { tail -20 run.log; exit 1; }
node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); if (!r.rows.some((x) => x.method === "LA")) process.exit(1); console.log(`consumer-check: bayeslora run --quick ok (${r.rows.length} report rows)`)' "$dir/run/report.json"
echo "consumer-check: passed"
