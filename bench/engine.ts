// Engine benchmark (issue: native engine): the machine's SGEMM rate through
// the BLAS in use and the built-in GEMM at the model's matmul shapes, and a
// full LoRA training step (forward, backward, AdamW; r = 8 on q_proj and
// v_proj; batch 4, sequence 256, C = 4 answer rows) on random-weight
// LLaMA-shaped models of about 20M and 120M parameters, in one run.
//
// `gflops` counts the FLOPs the step executes: the frozen linear layers'
// forward (2 per weight per token) and input-gradient backward (2 more), the
// causal attention GEMMs as tiled (QK^T and PV forward, four GEMMs backward,
// visible keys only), LoRA's own matmuls (forward, dA, dB and its input
// gradient) and the C answer rows of the LM head. RMSNorm, RoPE, softmax and
// the optimiser are not counted (they are memory-bound and small).
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { measureGemm, type GemmShape } from './gemm.ts';
import { summarize } from './machine.ts';
import { makeTinyCheckpoint } from '../ts/io/random-checkpoint.ts';
import { Model } from '../ts/model.ts';
import type { McBatch } from '../ts/data/batch.ts';

export interface EngineModelSpec {
  name: string;
  vocab: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  intermediate: number;
}

export const ENGINE_MODELS: EngineModelSpec[] = [
  { name: '20m', vocab: 8000, hidden: 384, layers: 8, heads: 6, kvHeads: 6, intermediate: 1024 },
  { name: '120m', vocab: 16000, hidden: 768, layers: 12, heads: 12, kvHeads: 12, intermediate: 2304 },
];

const B = 4;
const T = 256;
const C = 4;
const R = 8;

export function paramCount(m: EngineModelSpec): number {
  const hd = m.hidden / m.heads;
  const attn = m.hidden * m.heads * hd * 2 + m.hidden * m.kvHeads * hd * 2;
  const mlp = 3 * m.hidden * m.intermediate;
  return m.layers * (attn + mlp + 2 * m.hidden) + 2 * m.vocab * m.hidden + m.hidden;
}

/** FLOPs executed by one LoRA training step (see the header comment). */
export function stepFlops(m: EngineModelSpec, b = B, t = T, c = C, r = R, tile = 64): number {
  const hd = m.hidden / m.heads;
  const N = b * t;
  const linPerLayer = m.hidden * m.heads * hd * 2 + m.hidden * m.kvHeads * hd * 2 + 3 * m.hidden * m.intermediate;
  const linear = m.layers * linPerLayer * N * 2 * 2; // forward + input gradient
  // Causal tiles: query tile i (of `tile` rows) multiplies keys [0, (i+1)*tile).
  let keyRows = 0;
  for (let q0 = 0; q0 < t; q0 += tile) keyRows += Math.min(tile, t - q0) * Math.min(t, q0 + tile);
  const attnFwd = 2 * 2 * keyRows * hd * b * m.heads; // QK^T and PV
  const attention = m.layers * attnFwd * 3; // forward + 4 GEMMs backward (= 2x forward)
  const qOut = m.heads * hd;
  const vOut = m.kvHeads * hd;
  const loraPerToken = 2 * r * (m.hidden + qOut) + 2 * r * (m.hidden + vOut);
  const lora = m.layers * loraPerToken * N * 3; // forward, dA/dB, input gradient
  const head = b * c * m.hidden * 2 * 2;
  return linear + attention + lora + head;
}

function gemmShapes(m: EngineModelSpec): GemmShape[] {
  const N = B * T;
  return [
    { M: N, N: m.hidden, K: m.hidden, label: `${m.name} qkvo ${N}x${m.hidden}x${m.hidden}` },
    { M: N, N: m.intermediate, K: m.hidden, label: `${m.name} up ${N}x${m.intermediate}x${m.hidden}` },
    { M: N, N: m.hidden, K: m.intermediate, label: `${m.name} down ${N}x${m.hidden}x${m.intermediate}` },
  ];
}

function randomBatch(vocab: number, seed: number): McBatch {
  let s = seed >>> 0;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const ids = new Int32Array(B * T).map(() => 4 + Math.floor(rnd() * (vocab - 4)));
  const mask = new Uint8Array(B * T).fill(1);
  const last = new Int32Array(B).fill(T - 1);
  const rows = new Int32Array(B * C).map(() => 4 + Math.floor(rnd() * (vocab - 4)));
  const labels = new Int32Array(B).map(() => Math.floor(rnd() * C));
  return { B, T, C, ids, mask, last, rows, labels };
}

export async function measureModel(spec: EngineModelSpec, steps = 3) {
  const dir = mkdtempSync(path.join(os.tmpdir(), `bayeslora-bench-${spec.name}-`));
  try {
    makeTinyCheckpoint(dir, { arch: 'llama', ...spec, tie: false, seed: 7, maxPositionEmbeddings: 1024 });
    const model = await Model.load(dir);
    try {
      model.addLora({ r: R, alpha: 16, targetModules: ['q_proj', 'v_proj'], seed: 1 });
      const batch = randomBatch(spec.vocab, 3);
      await model.trainStep(batch, { lr: 1e-4 }); // warm-up: workspace allocation
      const times: number[] = [];
      for (let i = 0; i < steps; i++) {
        const t0 = performance.now();
        await model.trainStep(batch, { lr: 1e-4 });
        times.push((performance.now() - t0) / 1000);
      }
      const t = summarize(times);
      const flops = stepFlops(spec);
      return {
        name: spec.name,
        params: model.info().numParams,
        config: spec,
        batch: B,
        seq: T,
        step_s: t.median,
        step_s_min: t.min,
        step_s_max: t.max,
        repeats: t.n,
        tokens_per_s: (B * T) / t.median,
        flops_per_step: flops,
        gflops: flops / t.median / 1e9,
      };
    } finally {
      model.dispose();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(args: string[] = []): Promise<object> {
  const quick = args.includes('--quick');
  const specs = quick ? ENGINE_MODELS.slice(0, 1) : ENGINE_MODELS;
  const gemm = await measureGemm(specs.flatMap(gemmShapes), { repeats: quick ? 2 : 5 });
  const models = [];
  for (const s of specs) models.push(await measureModel(s, quick ? 2 : 3));
  const m120 = models.find((m) => m.name === '120m');
  return {
    gemm_gflops: gemm.gemm_gflops,
    builtin_gemm_gflops: gemm.builtin_gemm_gflops,
    blas_gflops: gemm.blas_gflops,
    builtin_vs_blas: gemm.blas_gflops ? gemm.builtin_gemm_gflops / gemm.blas_gflops : null,
    gemm_per_shape: gemm.per_shape,
    models,
    targets: {
      builtin_vs_blas_min: 0.5,
      model_vs_gemm_min_120m: 0.5,
      model_vs_gemm_120m: m120 ? m120.gflops / gemm.gemm_gflops : null,
    },
  };
}
