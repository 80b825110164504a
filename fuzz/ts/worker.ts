// The TypeScript half of `npm run fuzz`: a mutation loop over every reader of
// user files reachable from the TypeScript API. Run by fuzz/ts/run.ts in a
// child process (a native crash kills only the child; the parent counts it,
// saves the case and restarts). Contract per case: the reader succeeds or
// throws BayesLoraError with a string `code`; any other throw is a crash (the
// input is saved under --artifacts and the loop goes on).
//
//   node --import tsx fuzz/ts/worker.ts --cases N --seed S --artifacts DIR [--start K]
//
// Prints JSON lines: {"case": k, "reader": name} before a case whose reader is
// native (so a crash can be attributed), {"done": n} every 250 cases, and
// {"untyped": {...}} per contract violation.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BayesLoraError } from '../../ts/errors.ts';
import { parseMcJsonl } from '../../ts/data/jsonl.ts';
import { convertData, type SourceKind } from '../../ts/data/convert.ts';
import { decodeSafetensors } from '../../ts/io/safetensors.ts';
import { parseModelConfigText } from '../../ts/io/native-io.ts';
import { makeTinyCheckpoint } from '../../ts/io/random-checkpoint.ts';
import { Tokenizer } from '../../ts/tokenizer.ts';
import { Model } from '../../ts/model.ts';
import { Laplace } from '../../ts/laplace/laplace.ts';
import type { McBatch } from '../../ts/data/batch.ts';
import { ENCODE_TEXTS, mutateTokenizerComponent, tokenizerSeeds } from './tokenizer-seeds.ts';

const args = process.argv.slice(2);
const flag = (n: string, d: string) => {
  const i = args.indexOf(`--${n}`);
  return i >= 0 ? args[i + 1] : d;
};
const CASES = Number(flag('cases', '1000'));
const START = Number(flag('start', '0'));
// Optional comma-separated reader names: fuzz only those (a focused campaign).
const ONLY = flag('readers', '').split(',').filter(Boolean);
const SEED = Number(flag('seed', '1'));
const ARTIFACTS = path.resolve(flag('artifacts', 'build-fuzz/ts-artifacts'));
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
mkdirSync(ARTIFACTS, { recursive: true });
const tmp = mkdtempSync(path.join(existsShm() ? '/dev/shm' : os.tmpdir(), 'bl-fuzz-ts-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

function existsShm(): boolean {
  try {
    writeFileSync('/dev/shm/.bl-fuzz-probe', '');
    rmSync('/dev/shm/.bl-fuzz-probe');
    return true;
  } catch {
    return false;
  }
}

// ---- deterministic randomness ---------------------------------------------------------
let state = (SEED * 2654435761 + START * 40503) >>> 0 || 1;
const rnd = (n: number) => {
  state ^= state << 13;
  state >>>= 0;
  state ^= state >>> 17;
  state ^= state << 5;
  state >>>= 0;
  return n > 0 ? state % n : 0;
};
const pick = <T>(a: readonly T[]): T => a[rnd(a.length)];

// ---- mutations ------------------------------------------------------------------------
const INTERESTING = [0, -1, 1, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 53, -(2 ** 53), 1e308, -1e308, 1e-320, 0.5, 65536, 1 << 20, 1e12];
const STRINGS = ['', '../x', '../../etc/passwd', '/abs', 'a/b', '\u0000', '\ud800', 'é', 'x'.repeat(5000), 'F32', 'BF16', 'F64', 'I64', 'U8', 'F8', 'q_proj', 'lm_head'];

function mutateBytes(b: Uint8Array): Uint8Array {
  let a = Buffer.from(b);
  const n = 1 + rnd(4);
  for (let k = 0; k < n; k++) {
    switch (rnd(7)) {
      case 0:
        if (a.length) a[rnd(a.length)] ^= 1 << rnd(8);
        break;
      case 1:
        if (a.length) a[rnd(a.length)] = rnd(256);
        break;
      case 2: {
        const w = pick([1, 2, 4, 8]);
        if (a.length >= w) {
          const at = rnd(a.length - w + 1);
          const v = BigInt.asUintN(64, BigInt(Math.trunc(pick(INTERESTING))));
          for (let i = 0; i < w; i++) a[at + i] = Number((v >> BigInt(8 * i)) & 0xffn);
        }
        break;
      }
      case 3:
        a = a.subarray(0, rnd(a.length + 1));
        break;
      case 4: {
        const at = rnd(a.length + 1);
        a = Buffer.concat([a.subarray(0, at), Buffer.from(pick(STRINGS)), a.subarray(at)]);
        break;
      }
      case 5: {
        const at = rnd(a.length + 1);
        const len = rnd(Math.min(64, a.length - at) + 1);
        a = Buffer.concat([a.subarray(0, at), a.subarray(at + len)]);
        break;
      }
      case 6: {
        const at = rnd(a.length + 1);
        const s = rnd(a.length + 1);
        a = Buffer.concat([a.subarray(0, at), a.subarray(s, s + rnd(32)), a.subarray(at)]);
        break;
      }
    }
  }
  return a;
}

/** Structural JSON mutation: change one value somewhere (type, size, sign, path-like strings). */
function mutateJsonValue(v: unknown, depth = 0): unknown {
  if (Array.isArray(v)) {
    if (v.length && rnd(4) > 0) {
      const c = v.slice();
      const i = rnd(c.length);
      if (rnd(5) === 0) c.splice(i, 1);
      else if (rnd(6) === 0) c.push(c[i]);
      else c[i] = mutateJsonValue(c[i], depth + 1);
      return c;
    }
  } else if (v && typeof v === 'object') {
    const keys = Object.keys(v as object);
    if (keys.length && rnd(4) > 0) {
      const c: Record<string, unknown> = { ...(v as Record<string, unknown>) };
      const k = pick(keys);
      if (rnd(6) === 0) delete c[k];
      else if (rnd(8) === 0) c[k + pick(['', '_x', '\u0000'])] = c[k];
      else c[k] = mutateJsonValue(c[k], depth + 1);
      return c;
    }
  }
  switch (rnd(8)) {
    case 0: return pick(INTERESTING);
    case 1: return typeof v === 'number' ? -v : pick(STRINGS);
    case 2: return pick(STRINGS);
    case 3: return null;
    case 4: return [v, v];
    case 5: return { x: v };
    case 6: return typeof v === 'number' ? v * pick([2, 1000, 1e-9]) : !v;
    default: return typeof v === 'string' ? v + pick(STRINGS) : rnd(2) === 0;
  }
}

function mutateText(text: string): string {
  if (rnd(2) === 0) {
    try {
      return JSON.stringify(mutateJsonValue(JSON.parse(text)));
    } catch {
      // not one JSON document (JSONL, CSV): fall through to bytes
    }
  }
  if (rnd(3) === 0 && text.includes('\n')) {
    // JSONL/CSV: mutate one line structurally
    const lines = text.split('\n');
    const i = rnd(lines.length);
    try {
      lines[i] = JSON.stringify(mutateJsonValue(JSON.parse(lines[i])));
      return lines.join('\n');
    } catch {
      lines[i] = Buffer.from(mutateBytes(Buffer.from(lines[i]))).toString('utf8');
      return lines.join('\n');
    }
  }
  return Buffer.from(mutateBytes(Buffer.from(text))).toString('latin1');
}

/** A text to encode: pieces of the probe texts, special-token spellings, marker characters and random code points. */
function randomText(): string {
  const pieces = ['<s>', '</s>', '<unk>', '[CLS]', '[SEP]', '<|begin_of_text|>', '▁', 'Ġ', '##', '</w>', ' ', '  ', '\n', '\t', '\u0301', '\u200d', 'the', 'word'];
  let out = '';
  for (let n = 1 + rnd(8); n > 0; n--) {
    switch (rnd(3)) {
      case 0: out += pick(pieces); break;
      case 1: { const t = pick(ENCODE_TEXTS); const at = rnd(t.length + 1); out += t.slice(at, at + 1 + rnd(12)); break; }
      default: out += String.fromCodePoint(pick([rnd(0x80), 0x80 + rnd(0x780), 0x800 + rnd(0xd000), 0x10000 + rnd(0x10000)]));
    }
  }
  return out;
}

// ---- seeds ----------------------------------------------------------------------------
const fx = (f: string) => readFileSync(path.join(root, 'test', 'fixtures', f));
const convertSeeds: [SourceKind, Buffer][] = [
  ['arc', fx('data/arc.jsonl')],
  ['arc', fx('data/arc-hf.jsonl')],
  ['openbookqa', fx('data/openbookqa.jsonl')],
  ['boolq', fx('data/boolq.jsonl')],
  ['winogrande', fx('data/winogrande.jsonl')],
  ['mmlu', fx('data/mmlu.csv')],
];
const jsonlSeeds = [
  fx('data/mc.jsonl').toString('utf8'),
  readFileSync(path.join(root, 'data', 'wn-category', 'validation.jsonl'), 'utf8').split('\n').slice(0, 8).join('\n'),
];
// A small valid tokenizer.json: the built-in one with the vocabulary cut to its first 80 entries.
const tokSeed = (() => {
  const t = JSON.parse(readFileSync(path.join(root, 'models', 'wordnet-tiny', 'tokenizer.json'), 'utf8'));
  const vocab = Object.entries(t.model.vocab as Record<string, number>).filter(([, id]) => id < 80);
  t.model.vocab = Object.fromEntries(vocab);
  t.added_tokens = (t.added_tokens ?? []).filter((a: { id: number }) => a.id < 80);
  return JSON.stringify(t);
})();
// The other tokenizer families (byte-level BPE, SentencePiece BPE, Unigram, WordPiece).
const tokSeeds = [tokSeed, ...Object.values(tokenizerSeeds())];
// Sibling files Tokenizer.fromFile reads to name the special tokens.
const tokConfigSeeds = [
  JSON.stringify({ bos_token: '<s>', eos_token: { content: '</s>', lstrip: false }, pad_token: null, model_max_length: 2048 }),
  JSON.stringify({ bos_token_id: 1, eos_token_id: 2, pad_token_id: 0, vocab_size: 64 }),
];
const configSeeds = ['llama-3.2-1b.config.json', 'qwen2.5-0.5b.config.json', 'mistral-7b-v0.1.config.json'].map((f) => fx(`io/${f}`).toString('utf8'));

const modelDir = path.join(tmp, 'model');
makeTinyCheckpoint(modelDir, { hidden: 8, layers: 1, heads: 2, vocab: 16, intermediate: 12, seed: 3 });
const modelFiles = { config: readFileSync(path.join(modelDir, 'config.json'), 'utf8'), weights: readFileSync(path.join(modelDir, 'model.safetensors')) };
const base = await Model.load(modelDir);
base.addLora({ r: 2, alpha: 4, targetModules: ['q_proj', 'v_proj', 'lm_head'], seed: 5 });
base.setLoraWeights(base.getLoraWeights().map((m) => ({ path: m.path, B: m.B.map((_, i) => Math.sin(i) * 0.1) })));
const adapterDir = path.join(tmp, 'adapter');
await base.saveAdapter(adapterDir);
const adapterFiles = {
  config: readFileSync(path.join(adapterDir, 'adapter_config.json'), 'utf8'),
  weights: readFileSync(path.join(adapterDir, 'adapter_model.safetensors')),
};
const batch: McBatch = {
  B: 3, T: 4, C: 3,
  ids: Int32Array.from({ length: 12 }, (_, i) => 4 + (i % 12)),
  mask: new Uint8Array(12).fill(1),
  last: new Int32Array(3).fill(3),
  rows: Int32Array.from({ length: 9 }, (_, i) => 4 + (i % 3)),
  labels: Int32Array.from([0, 1, 2]),
};
const postFile = path.join(tmp, 'posterior.safetensors');
{
  const la = await Laplace.fit(base, [batch], { prior: 1 });
  await la.save(postFile);
  la.dispose();
}
const postSeed = readFileSync(postFile);
const bare = await Model.load(modelDir);

// ---- readers --------------------------------------------------------------------------
type Reader = { name: string; native: boolean; run: () => Promise<{ input: Uint8Array | string; go: () => Promise<unknown> | unknown }> };
const caseDir = path.join(tmp, 'case');
mkdirSync(caseDir, { recursive: true });
const readers: Reader[] = [
  {
    name: 'jsonl', native: false,
    run: async () => {
      const input = mutateText(pick(jsonlSeeds));
      return { input, go: () => parseMcJsonl(input, 'fuzz.jsonl', { allowUnlabelled: rnd(2) === 0 }) };
    },
  },
  {
    name: 'convert', native: false,
    run: async () => {
      const [kind, seed] = pick(convertSeeds);
      const input = mutateText(seed.toString('utf8'));
      return { input, go: () => convertData(kind, input, `fuzz.${kind}`) };
    },
  },
  {
    name: 'safetensors-ts', native: false,
    run: async () => {
      const input = mutateBytes(pick([modelFiles.weights, adapterFiles.weights, postSeed]));
      return { input, go: () => decodeSafetensors(input, 'fuzz.safetensors') };
    },
  },
  {
    name: 'tokenizer', native: true,
    run: async () => {
      const seed = pick(tokSeeds);
      const text = rnd(2) === 0 ? pick(ENCODE_TEXTS) : randomText();
      const special = rnd(4) > 0;
      // Encode, then decode what came out: decoders (ByteFallback, Fuse, Strip,
      // Metaspace, WordPiece) see the ids a hostile file's model produces.
      const use = async (t: Tokenizer) => {
        const ids = await t.encode(text, { addSpecialTokens: special });
        if (rnd(3) === 0) await t.encodeBatch([text, pick(ENCODE_TEXTS)]);
        return t.decode(ids, { skipSpecialTokens: rnd(2) === 0 });
      };
      if (rnd(5) === 0) {
        // tokenizer_config.json / config.json beside a valid tokenizer.json, loaded by path
        const name = rnd(2) === 0 ? 'tokenizer_config.json' : 'config.json';
        const input = mutateText(tokConfigSeeds[name === 'config.json' ? 1 : 0]);
        const d = path.join(caseDir, 'tok');
        rmSync(d, { recursive: true, force: true });
        mkdirSync(d);
        writeFileSync(path.join(d, 'tokenizer.json'), seed);
        writeFileSync(path.join(d, name), input);
        return { input, go: async () => use(await Tokenizer.fromFile(path.join(d, 'tokenizer.json'))) };
      }
      let input: string;
      if (rnd(2) === 0) {
        // component swaps (1-3), sometimes followed by one value mutation
        const t = JSON.parse(seed) as Record<string, unknown>;
        for (let n = 1 + rnd(3); n > 0; n--) mutateTokenizerComponent(t, rnd);
        input = JSON.stringify(rnd(3) === 0 ? mutateJsonValue(t) : t);
      } else input = mutateText(seed);
      return { input, go: async () => use(await Tokenizer.fromJson(input, { source: 'fuzz/tokenizer.json' })) };
    },
  },
  {
    name: 'config', native: true,
    run: async () => {
      const input = mutateText(pick([...configSeeds, modelFiles.config]));
      return { input, go: () => parseModelConfigText(input, 'fuzz/config.json') };
    },
  },
  {
    name: 'model', native: true,
    run: async () => {
      const cfg = rnd(2) === 0;
      const input = cfg ? mutateText(modelFiles.config) : mutateBytes(modelFiles.weights);
      writeFileSync(path.join(caseDir, 'config.json'), cfg ? input : modelFiles.config);
      writeFileSync(path.join(caseDir, 'model.safetensors'), cfg ? modelFiles.weights : input);
      return {
        input,
        go: async () => {
          const m = await Model.load(caseDir);
          m.dispose();
        },
      };
    },
  },
  {
    name: 'adapter', native: true,
    run: async () => {
      const cfg = rnd(2) === 0;
      const input = cfg ? mutateText(adapterFiles.config) : mutateBytes(adapterFiles.weights);
      writeFileSync(path.join(caseDir, 'adapter_config.json'), cfg ? input : adapterFiles.config);
      writeFileSync(path.join(caseDir, 'adapter_model.safetensors'), cfg ? adapterFiles.weights : input);
      return {
        input,
        go: async () => {
          try {
            await bare.loadAdapter(caseDir);
          } finally {
            if (bare.info().lora) bare.removeLora();
          }
        },
      };
    },
  },
  {
    name: 'posterior', native: true,
    run: async () => {
      const input = mutateBytes(postSeed);
      const f = path.join(caseDir, 'posterior.safetensors');
      writeFileSync(f, input);
      return {
        input,
        go: async () => {
          const la = await Laplace.load(f, base);
          la.dispose();
        },
      };
    },
  },
];

let untyped = 0;
const outcome: Record<string, { ok: number; typed: number }> = {};
const active = ONLY.length ? readers.filter((r) => ONLY.includes(r.name)) : readers;
if (ONLY.length && active.length !== ONLY.length) throw new Error(`--readers: unknown name in ${ONLY.join(',')} (have ${readers.map((r) => r.name).join(', ')})`);
for (let k = START; k < START + CASES; k++) {
  const r = active[k % active.length];
  const { input, go } = await r.run();
  if (r.native) {
    // Attribute a native crash: the parent keeps the last case announced.
    const f = path.join(ARTIFACTS, `current-${process.pid}`);
    writeFileSync(f, typeof input === 'string' ? input : Buffer.from(input));
    process.stdout.write(JSON.stringify({ case: k, reader: r.name }) + '\n');
  }
  const o = (outcome[r.name] ??= { ok: 0, typed: 0 });
  try {
    await go();
    o.ok++;
  } catch (e) {
    if (e instanceof BayesLoraError && typeof e.code === 'string' && e.code.length > 0) o.typed++;
    else {
      untyped++;
      const f = path.join(ARTIFACTS, `untyped-${r.name}-${k}`);
      writeFileSync(f, typeof input === 'string' ? input : Buffer.from(input));
      process.stdout.write(JSON.stringify({ untyped: { reader: r.name, case: k, file: f, error: String((e as Error)?.stack ?? e).slice(0, 600) } }) + '\n');
    }
  }
  if ((k - START + 1) % 250 === 0) process.stdout.write(JSON.stringify({ done: k - START + 1 }) + '\n');
}
process.stdout.write(JSON.stringify({ done: CASES, untyped, outcome }) + '\n');
base.dispose();
bare.dispose();
