// Builds the project's multiple-choice tasks and the pretraining corpus from
// Debian's dictionaries (WordNet 3.0 and FOLDOC). Deterministic: the same
// inputs and seed give byte-identical files (`bayeslora data build`).
//
// Tasks (all in the `choice` answer format: each class logit is the LM-head
// logit of that choice's single token after the prompt):
// - wn-word      WordNet definition -> the defined word; distractors are words
//                of the same lexicographer category (hard: same domain).
// - wn-category  WordNet noun definition -> its lexicographer category name
//                (animal, artifact, food, ...); fine-tuning teaches a new skill.
// - foldoc-word  FOLDOC (computing) definition -> term: distribution shift.
// Every choice is one in-vocabulary token of the built-in tokenizer, so
// choices never collide and `choice` logits are well defined.
import { existsSync, mkdirSync, mkdtempSync, readdirSync } from 'node:fs';
import { writeFileAtomic } from '../io/safetensors.ts';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { readWordNet, type Synset } from './wordnet.ts';
import { readFoldoc, type FoldocEntry } from './foldoc.ts';
import { Rng } from '../data/rng.ts';
import type { McExample } from '../data/jsonl.ts';
import { BayesLoraError } from '../errors.ts';

export const WORD_RE = /^[a-z][a-z-]*[a-z]$/;
const MAX_DEF_WORDS = 40;

export interface DictionaryText {
  synsets: Synset[];
  foldoc: FoldocEntry[];
}

/** Locate FOLDOC: the installed package, or extract Debian's .deb into a temp dir (needs apt-get). */
export function findFoldocDir(): string {
  const installed = '/usr/share/dictd';
  if (existsSync(path.join(installed, 'foldoc.index'))) return installed;
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'bayeslora-foldoc-'));
  try {
    execFileSync('apt-get', ['download', 'dict-foldoc'], { cwd: tmp, stdio: 'ignore' });
    const deb = readdirSync(tmp).find((f) => f.endsWith('.deb'));
    if (!deb) throw new Error('no .deb downloaded');
    execFileSync('dpkg', ['-x', deb, 'root'], { cwd: tmp, stdio: 'ignore' });
  } catch (e) {
    throw new BayesLoraError('IO_ERROR', `FOLDOC not found: run 'apt-get install dict-foldoc' (or apt-get update first): ${(e as Error).message}`);
  }
  return path.join(tmp, 'root', 'usr', 'share', 'dictd');
}

export function readDictionaries(): DictionaryText {
  return { synsets: readWordNet(), foldoc: readFoldoc(findFoldocDir()) };
}

/** Normalise a definition: lower case, single spaces, at most MAX_DEF_WORDS words. */
export function cleanDefinition(s: string): string {
  const words = s
    .toLowerCase()
    .replace(/[\u2018\u2019]/g, "'")
    .replace(/[\u201c\u201d]/g, '"')
    .replace(/\s+/g, ' ')
    .trim()
    .split(' ');
  return words.slice(0, MAX_DEF_WORDS).join(' ');
}

/**
 * Pretraining text: every single-word lemma with its definition in both
 * directions ("word : definition" and "definition = word"), from WordNet and
 * FOLDOC. Never contains a task in multiple-choice form.
 */
export function pretrainingLines(d: DictionaryText): string[] {
  const lines: string[] = [];
  for (const s of d.synsets) {
    if (!s.definition) continue;
    const def = cleanDefinition(s.definition);
    for (const w of s.words) {
      if (!WORD_RE.test(w)) continue;
      lines.push(`${w} : ${def}`);
      lines.push(`${def} = ${w}`);
    }
  }
  for (const f of d.foldoc) {
    if (!WORD_RE.test(f.term)) continue;
    const def = cleanDefinition(f.definition);
    lines.push(`${f.term} : ${def}`);
    lines.push(`${def} = ${f.term}`);
  }
  return lines;
}

export interface TaskSplits {
  name: string;
  description: string;
  splits: Record<string, McExample[]>;
}

interface Item {
  prompt: string;
  answer: string;
  pool: string; // distractor pool key
  exclude: Set<string>;
}

/** True when `word` occurs as a whole word in `text` (the item would be solvable by copying). */
function mentions(text: string, word: string): boolean {
  return ` ${text.replace(/[^a-z-]+/g, ' ')} `.includes(` ${word} `);
}

function makeExamples(items: Item[], pools: Map<string, string[]>, rng: Rng, nChoices = 4): McExample[] {
  const out: McExample[] = [];
  for (const it of items) {
    const pool = pools.get(it.pool) ?? [];
    const distractors: string[] = [];
    const used = new Set<string>([it.answer, ...it.exclude]);
    for (let tries = 0; distractors.length < nChoices - 1 && tries < 200; tries++) {
      const w = pool[rng.int(pool.length)];
      if (!used.has(w) && !mentions(it.prompt, w)) {
        used.add(w);
        distractors.push(w);
      }
    }
    if (distractors.length < nChoices - 1) continue;
    const answer = rng.int(nChoices);
    const choices = [...distractors];
    choices.splice(answer, 0, it.answer);
    out.push({ prompt: it.prompt, choices, answer });
  }
  return out;
}

function split(all: Item[], rng: Rng, sizes: { test: number; validation: number; train: number }) {
  // One item per prompt text: different synsets can share a definition, and
  // a repeated prompt must not land in two splits.
  const seen = new Set<string>();
  const items = all.filter((it) => !seen.has(it.prompt) && (seen.add(it.prompt), true));
  const order = rng.shuffle(items.map((_, i) => i));
  const take = (a: number, n: number) => order.slice(a, a + n).map((i) => items[i]);
  const test = take(0, sizes.test);
  const validation = take(sizes.test, sizes.validation);
  const train = take(sizes.test + sizes.validation, sizes.train);
  return { test, validation, train };
}

export interface TaskBuildOptions {
  seed?: number;
  isSingleToken: (word: string) => boolean;
  sizes?: { test: number; validation: number; train: number; trainSmall: number };
}

export function buildTasks(d: DictionaryText, opts: TaskBuildOptions): TaskSplits[] {
  const seed = opts.seed ?? 1234;
  const sizes = opts.sizes ?? { test: 1000, validation: 500, train: 4000, trainSmall: 640 };
  const ok = (w: string) => WORD_RE.test(w) && opts.isSingleToken(w);
  const tasks: TaskSplits[] = [];

  // ---- wn-word --------------------------------------------------------------
  {
    const rng = new Rng(seed);
    const pools = new Map<string, string[]>();
    const items: Item[] = [];
    for (const s of d.synsets) {
      if (s.pos !== 'n' && s.pos !== 'v') continue;
      const words = s.words.filter(ok);
      for (const w of words) {
        const p = pools.get(s.lexName) ?? [];
        p.push(w);
        pools.set(s.lexName, p);
      }
      const def = cleanDefinition(s.definition);
      const answer = words.find((w) => !mentions(def, w));
      if (!answer || def.split(' ').length < 3) continue;
      items.push({ prompt: `${def} =`, answer, pool: s.lexName, exclude: new Set(s.words) });
    }
    for (const [k, v] of pools) pools.set(k, [...new Set(v)].sort());
    const sp = split(items, rng, sizes);
    const ex = (xs: Item[]) => makeExamples(xs, pools, rng);
    const train = ex(sp.train);
    tasks.push({
      name: 'wn-word',
      description: 'WordNet definition -> defined word; 4 choices, distractors from the same lexicographer category',
      splits: { train, 'train-small': train.slice(0, sizes.trainSmall), validation: ex(sp.validation), test: ex(sp.test) },
    });
  }

  // ---- wn-category ------------------------------------------------------------
  {
    const rng = new Rng(seed + 1);
    const cats = [...new Set(d.synsets.filter((s) => s.pos === 'n').map((s) => s.lexName))]
      .filter((c) => c !== 'noun.Tops')
      .map((c) => c.slice('noun.'.length))
      .filter(ok)
      .sort();
    const pools = new Map<string, string[]>([['cats', cats]]);
    const items: Item[] = [];
    for (const s of d.synsets) {
      if (s.pos !== 'n') continue;
      const cat = s.lexName.slice('noun.'.length);
      if (!cats.includes(cat)) continue;
      const def = cleanDefinition(s.definition);
      if (def.split(' ').length < 3 || mentions(def, cat)) continue;
      items.push({ prompt: `${def} . category :`, answer: cat, pool: 'cats', exclude: new Set() });
    }
    const sp = split(items, rng, sizes);
    const ex = (xs: Item[]) => makeExamples(xs, pools, rng);
    const train = ex(sp.train);
    tasks.push({
      name: 'wn-category',
      description: 'WordNet noun definition -> lexicographer category (animal, artifact, food, ...); 4 choices',
      splits: { train, 'train-small': train.slice(0, sizes.trainSmall), validation: ex(sp.validation), test: ex(sp.test) },
    });
  }

  // ---- foldoc-word (shift) ------------------------------------------------------
  {
    const rng = new Rng(seed + 2);
    const terms = [...new Set(d.foldoc.map((f) => f.term).filter(ok))].sort();
    const pools = new Map<string, string[]>([['terms', terms]]);
    const items: Item[] = [];
    const seen = new Set<string>();
    for (const f of d.foldoc) {
      if (!ok(f.term) || seen.has(f.term)) continue;
      seen.add(f.term);
      const def = cleanDefinition(f.definition);
      if (def.split(' ').length < 3 || mentions(def, f.term)) continue;
      items.push({ prompt: `${def} =`, answer: f.term, pool: 'terms', exclude: new Set() });
    }
    const sp = split(items, rng, { test: Math.min(sizes.test, items.length), validation: 0, train: 0 });
    tasks.push({
      name: 'foldoc-word',
      description: 'FOLDOC (computing) definition -> term; 4 choices; a distribution-shift test set',
      splits: { test: makeExamples(sp.test, pools, rng) },
    });
  }
  return tasks;
}

export function writeJsonlAtomic(file: string, rows: unknown[]): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileAtomic(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
}
