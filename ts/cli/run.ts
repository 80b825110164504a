// `bayeslora run` (what `npm start` calls): the main job on the built-in model
// and task by default, or on any LLaMA-family checkpoint and JSONL task.
import path from 'node:path';
import { packageRoot } from '../native.ts';
import { invalid } from '../errors.ts';
import { runMainJob, type RunOptions } from '../run/main-job.ts';
import { choiceArg, intArg, numberArg, parseCli, positiveArg, strArg } from './args.ts';

const CMD = 'run';

const HELP = `usage: bayeslora run [options]
  --model DIR         LLaMA-family checkpoint with tokenizer.json (default: models/wordnet-tiny)
  --task NAME         built-in task: wn-category (default) | wn-word; uses data/NAME/{train-small,validation,test}.jsonl
  --train FILE        training JSONL (default: the task's train-small.jsonl, 640 items)
  --test FILE         test JSONL (default: the task's test.jsonl)
  --validation FILE   validation JSONL for temperature scaling and LA-val (default: the task's validation.jsonl)
  --shift FILE        distribution-shift test JSONL, repeatable (default: data/foldoc-word/test.jsonl,
                      computing definitions from another dictionary; add data/wn-word/test.jsonl for
                      a second shift set)
  --out DIR           output directory (default: runs/<timestamp>)
  --device D          cpu (default) | cuda (a CUDA build with a usable GPU; see \`bayeslora info\`)
  --seeds N           seeds to average over (default 2)
  --format F          answer format: choice (default) | letter
  --epochs N --lr X --batch N --checkpoints N --r N --alpha X --dropout X --targets a,b,c
                      (defaults: 8 epochs, lr 2e-3, batch 16, r 8, alpha 16, dropout 0.1, all linear
                      layers + lm_head; chosen on the wn-category validation split)
  --n-kfac N|auto     rank of low-rank K-FAC factor sides (default auto: max(10, distinct answer
                      tokens of the training set), so the LM head keeps every answer row)
  --no-ensemble       skip the deep ensemble (3 members)
  --quick             a small, fast run (used by tests): subsets, 1 seed, no ensemble
  --resume DIR        continue an interrupted run in DIR with its original options (completed
                      seeds are kept, training continues from the last checkpoint)
`;

// Built-in tasks and their default distribution-shift test sets.
const SHIFTS: Record<string, string[]> = {
  'wn-category': ['foldoc-word'],
  'wn-word': ['foldoc-word'],
};

function bar(label: string, done: number, total: number): void {
  if (!process.stderr.isTTY) return;
  const w = 30;
  const f = Math.round((w * done) / Math.max(1, total));
  process.stderr.write(`\r${label} [${'#'.repeat(f)}${'.'.repeat(w - f)}] ${done}/${total}`);
  if (done >= total) process.stderr.write('\n');
}

export async function run(args: string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(HELP);
    return 0;
  }
  const values = parseCli(CMD, args, {
    model: { type: 'string', default: path.join(packageRoot, 'models', 'wordnet-tiny') },
    task: { type: 'string', default: 'wn-category' },
    train: { type: 'string' },
    test: { type: 'string' },
    validation: { type: 'string' },
    shift: { type: 'string', multiple: true },
    out: { type: 'string' },
    device: { type: 'string' },
    seeds: { type: 'string' },
    format: { type: 'string' },
    epochs: { type: 'string' },
    lr: { type: 'string' },
    batch: { type: 'string' },
    checkpoints: { type: 'string' },
    r: { type: 'string' },
    alpha: { type: 'string' },
    dropout: { type: 'string' },
    targets: { type: 'string', default: 'q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj,lm_head' },
    'max-length': { type: 'string' },
    'n-kfac': { type: 'string', default: 'auto' },
    'no-ensemble': { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    resume: { type: 'string' },
  });
  const resumeDir = strArg(values, 'resume');
  if (resumeDir !== undefined) return resume(path.resolve(resumeDir), args);
  const data = (p: string) => path.join(packageRoot, 'data', p);
  const train = strArg(values, 'train');
  const custom = train !== undefined;
  if (custom && (!values.test || !values.validation)) throw invalid('with --train also give --test and --validation');
  const quick = values.quick === true;
  const task = strArg(values, 'task')!;
  if (!(task in SHIFTS)) throw invalid(`--task must be one of ${Object.keys(SHIFTS).join(', ')}, got ${task}`);
  const device = choiceArg(CMD, values, 'device', ['cpu', 'cuda'] as const, 'cpu');
  const shift = values.shift as string[] | undefined;
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const o: RunOptions = {
    model: path.resolve(strArg(values, 'model')!),
    backend: device,
    train: path.resolve(train ?? data(`${task}/train-small.jsonl`)),
    test: path.resolve(strArg(values, 'test') ?? data(`${task}/test.jsonl`)),
    validation: path.resolve(strArg(values, 'validation') ?? data(`${task}/validation.jsonl`)),
    shift: (shift ?? (custom ? [] : SHIFTS[task].map((t) => data(`${t}/test.jsonl`)))).map((f) => path.resolve(f)),
    out: path.resolve(strArg(values, 'out') ?? path.join('runs', stamp)),
    seeds: intArg(CMD, values, 'seeds', quick ? 1 : 2, 1, 1000),
    ensembleMembers: values['no-ensemble'] === true || quick ? 0 : 3,
    format: choiceArg(CMD, values, 'format', ['choice', 'letter'] as const, 'choice'),
    maxLength: intArg(CMD, values, 'max-length', 96, 2, 1 << 20),
    lora: {
      r: intArg(CMD, values, 'r', 8, 1, 4096),
      alpha: positiveArg(CMD, values, 'alpha') ?? 16,
      dropout: numberArg(CMD, values, 'dropout', 0.1, (n) => n >= 0 && n < 1, 'in [0, 1)'),
      targetModules: strArg(values, 'targets')!.split(',').map((s) => s.trim()).filter(Boolean),
    },
    lr: positiveArg(CMD, values, 'lr') ?? 2e-3,
    epochs: intArg(CMD, values, 'epochs', quick ? 3 : 8, 1, 1_000_000),
    batchSize: intArg(CMD, values, 'batch', 16, 1, 1 << 20),
    checkpoints: intArg(CMD, values, 'checkpoints', 2, 1, 1000),
    mcdPasses: quick ? 3 : 10,
    laSamples: quick ? 1000 : 10000,
    nKfac: nKfacArg(strArg(values, 'n-kfac')!),
    extras: !quick,
    limits: quick ? { train: 256, test: 200, validation: 150, shift: 150 } : undefined,
    log: (s) => process.stderr.write(`run: ${s}\n`),
    progress: bar,
  };
  if (o.lora.targetModules.length === 0) throw invalid('--targets must name at least one module');
  return finish(o);
}

function nKfacArg(v: string): number | 'auto' {
  if (v === 'auto') return 'auto';
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 4096) throw invalid(`--n-kfac must be 'auto' or an integer in [1, 4096], got ${v}`);
  return n;
}

/** `--resume DIR`: the options come from DIR/progress.json; other flags are refused. */
async function resume(dir: string, args: string[]): Promise<number> {
  const others = args.filter((a, i) => a.startsWith('--') && a !== '--resume' && args[i - 1] !== '--resume' && !a.startsWith('--resume='));
  if (others.length) throw invalid(`--resume takes no other options (the run keeps its own): ${others.join(' ')}`);
  const { readProgress } = await import('../run/progress.ts');
  const p = readProgress<Omit<RunOptions, 'log' | 'progress' | 'resume'>, unknown>(dir);
  return finish({ ...p.config, out: dir, resume: true, log: (s) => process.stderr.write(`run: ${s}\n`), progress: bar });
}

async function finish(o: RunOptions): Promise<number> {
  const report = await runMainJob(o);
  const { renderMarkdown } = await import('../run/main-job.ts');
  process.stdout.write(renderMarkdown(report));
  process.stderr.write(`run: wrote ${o.out}/report.json, report.md, charts, adapter/ and posterior.safetensors\n`);
  return 0;
}
