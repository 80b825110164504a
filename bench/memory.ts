// Memory bench (issue 6, part 2): peak resident memory of plain LoRA
// fine-tuning against the same fine-tuning followed by Laplace (K-FAC fit with
// the exact Fisher, marglik prior, mc predictive), same run configuration,
// several model sizes. Each configuration runs in a fresh child process
// (bench/memory-child.ts) and reports VmHWM, so peaks never mix; a 'baseline'
// child (addon + model loaded, nothing run) is measured too, so the overhead
// can also be read against what the run itself adds, and the Laplace run again
// with every hidden-size factor side low rank (the paper's regime at d = 4096).
//   overhead = laplace_peak_bytes / lora_peak_bytes - 1
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ENGINE_MODELS, type EngineModelSpec } from './engine.ts';
import { makeTinyCheckpoint } from '../ts/io/random-checkpoint.ts';
import { intFlag } from './flags.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const CHILD = path.join(here, 'memory-child.ts');
const TARGET = 0.01;
/** Every factor side above r = 8 low rank (the paper's regime, d = 4096 > threshold). */
const LOW_THRESHOLD = 16;

export const MEMORY_MODELS: EngineModelSpec[] = [
  { name: '5m', vocab: 4000, hidden: 256, layers: 4, heads: 4, kvHeads: 4, intermediate: 688 },
  ...ENGINE_MODELS,
];

function child(job: object): Record<string, any> {
  const r = spawnSync(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(job)], {
    encoding: 'utf8',
    cwd: path.dirname(here),
    maxBuffer: 16 << 20,
  });
  if (r.status !== 0) throw new Error(`bench memory: child failed (exit ${r.status}): ${r.stderr.slice(-1500)}`);
  return JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}');
}

const flag = (args: string[], name: string, def: number): number => intFlag(args, 'memory', name, def);

/** Flags: --quick (5m and 20m), --examples=N (16), --seq=N (128), --batch=N (4), --epochs=N (1). */
export async function run(args: string[] = []): Promise<object> {
  const quick = args.includes('--quick');
  const cfg = {
    examples: flag(args, 'examples', 16),
    seq: flag(args, 'seq', 128),
    batch: flag(args, 'batch', 4),
    epochs: flag(args, 'epochs', 1),
    classes: 4,
    predictBatches: 2,
  };
  const log = (m: string) => process.stderr.write(`bench memory: ${m}\n`);
  const specs = quick ? MEMORY_MODELS.slice(0, 2) : MEMORY_MODELS;
  const vocab = Math.min(...specs.map((s) => s.vocab));
  const rows = [];
  for (const spec of specs) {
    const dir = mkdtempSync(path.join(os.tmpdir(), `bayeslora-bench-memory-${spec.name}-`));
    try {
      makeTinyCheckpoint(dir, { arch: 'llama', ...spec, tie: false, seed: 7, maxPositionEmbeddings: 1024 });
      const base = { dir, vocab, ...cfg };
      const baseline = child({ ...base, mode: 'baseline' });
      const lora = child({ ...base, mode: 'lora' });
      const laplace = child({ ...base, mode: 'laplace' });
      const lowrank = child({ ...base, mode: 'laplace', threshold: LOW_THRESHOLD });
      const overhead = laplace.peak_bytes / lora.peak_bytes - 1;
      const addedLora = lora.peak_bytes - baseline.peak_bytes;
      log(`${spec.name}: lora ${(lora.peak_bytes / 2 ** 20).toFixed(0)} MiB, laplace ${(laplace.peak_bytes / 2 ** 20).toFixed(0)} MiB, overhead ${(100 * overhead).toFixed(1)}%`);
      rows.push({
        model: spec.name,
        lora_peak_bytes: lora.peak_bytes,
        laplace_peak_bytes: laplace.peak_bytes,
        overhead,
        met: overhead <= TARGET,
        laplace_lowrank_peak_bytes: lowrank.peak_bytes,
        overhead_lowrank: lowrank.peak_bytes / lora.peak_bytes - 1,
        baseline_peak_bytes: baseline.peak_bytes,
        overhead_vs_run_added: addedLora > 0 ? (laplace.peak_bytes - lora.peak_bytes) / addedLora : null,
        detail: { baseline, lora, laplace, lowrank },
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return {
    setup: {
      ...cfg,
      lora: { r: 8, alpha: 16, targets: ['q_proj', 'v_proj', 'lm_head'] },
      laplace: { fisher: 'exact', tokens: 'reduce', n_kfac: 10, threshold: 512, prior: 'marglik', predictive: 'mc, 1000 samples' },
      measure: 'VmHWM of a fresh child process (node --import tsx bench/memory-child.ts) per configuration; model weights are mmapped f32 and count once touched',
      lowrank: 'laplace_lowrank_peak_bytes / overhead_lowrank: the same Laplace run with threshold 16, every hidden-size factor side low rank (nKfac 10)',
      overhead: 'laplace_peak_bytes / lora_peak_bytes - 1; overhead_vs_run_added divides the same difference by (lora peak - baseline peak), the memory the fine-tuning run itself adds over the loaded model and Node',
    },
    rows,
    targets: { overhead_max: TARGET, all_met: rows.every((r) => r.met) },
  };
}
