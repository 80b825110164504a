// Typed wrapper over the native kernel surface (`addon.ops`): one function per
// Backend op, named parameters, typed-array inputs and outputs. Every call
// copies in, runs synchronously on the chosen backend and copies out, so it is
// meant for tests, parity checks and small benchmarks, not for training loops.
// Semantics of each op are those of cpp/backend/backend.h; backward ops
// accumulate into the given initial gradients (absent = zeros) and return the
// results; a nullable gradient passed as `null` is not computed (returned null).
import { loadNative } from './native.ts';
import { native } from './errors.ts';

export type BackendName = 'cpu' | 'cuda';

interface OnBackend {
  /** Backend to run on (default 'cpu'). */
  backend?: BackendName;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function call<T>(name: string, args: OnBackend & Record<string, any>): T {
  const ops = loadNative().ops;
  const { backend = 'cpu', ...rest } = args;
  return native(() => ops[name](backend, rest)) as T;
}

// ---- embedding / rows ------------------------------------------------------------------

/** out[i, :] = table[ids[i], :]; table is [V x d]. */
export function embeddingFwd(a: OnBackend & { ids: Int32Array; table: Float32Array; N: number; V: number; d: number }): Float32Array {
  return call('embedding_fwd', a);
}
/** dtable[ids[i], :] += dout[i, :]; returns the accumulated dtable [V x d]. */
export function embeddingBwd(
  a: OnBackend & { ids: Int32Array; dout: Float32Array; N: number; V: number; d: number; dtable?: Float32Array },
): Float32Array {
  return call('embedding_bwd', a);
}
/** out[i, :] = x[idx[i], :]; x is [R x d], n rows gathered. */
export function gatherRows(a: OnBackend & { x: Float32Array; idx: Int32Array; n: number; R: number; d: number }): Float32Array {
  return call('gather_rows', a);
}
/** dx[idx[i], :] += dout[i, :]; returns the accumulated dx [R x d]. */
export function scatterAddRows(
  a: OnBackend & { dout: Float32Array; idx: Int32Array; n: number; R: number; d: number; dx?: Float32Array },
): Float32Array {
  return call('scatter_add_rows', a);
}

// ---- RMSNorm / bias ---------------------------------------------------------------------

export function rmsnormFwd(
  a: OnBackend & { x: Float32Array; w: Float32Array; N: number; d: number; eps: number },
): { out: Float32Array; rstd: Float32Array } {
  return call('rmsnorm_fwd', a);
}
/** dx += ..., dw += ... (dw: null = not computed). */
export function rmsnormBwd(
  a: OnBackend & {
    dout: Float32Array;
    x: Float32Array;
    w: Float32Array;
    rstd: Float32Array;
    N: number;
    d: number;
    dx?: Float32Array;
    dw?: Float32Array | null;
  },
): { dx: Float32Array; dw: Float32Array | null } {
  return call('rmsnorm_bwd', a);
}
/** Returns x + bias (per row). */
export function addBias(a: OnBackend & { x: Float32Array; bias: Float32Array; N: number; d: number }): Float32Array {
  return call('add_bias', a);
}
/** dbias += sum over rows of dout. */
export function biasBwd(a: OnBackend & { dout: Float32Array; N: number; d: number; dbias?: Float32Array }): Float32Array {
  return call('bias_bwd', a);
}

// ---- RoPE -------------------------------------------------------------------------------

/** Rotate-half RoPE of x [N x H x hd] (hd even); invFreq has hd/2 entries. */
export function ropeFwd(
  a: OnBackend & { x: Float32Array; pos: Int32Array; invFreq: Float32Array; N: number; H: number; hd: number },
): Float32Array {
  return call('rope_fwd', a);
}
/** The inverse rotation of dy (the RoPE backward). */
export function ropeBwd(
  a: OnBackend & { dy: Float32Array; pos: Int32Array; invFreq: Float32Array; N: number; H: number; hd: number },
): Float32Array {
  return call('rope_bwd', a);
}

// ---- attention --------------------------------------------------------------------------

export interface AttnShape {
  B: number;
  T: number;
  H: number;
  Hkv: number;
  hd: number;
}

export function attentionSavedFloats(a: OnBackend & AttnShape): number {
  return call('attention_saved_floats', a);
}
/**
 * Causal attention, q [B,T,H,hd], k/v [B,T,Hkv,hd], mask [B*T] of 0/1 (default
 * all 1). Returns the output and the backend's saved state for attentionBwd.
 */
export function attentionFwd(
  a: OnBackend & AttnShape & { q: Float32Array; k: Float32Array; v: Float32Array; mask?: Uint8Array; scale: number },
): { out: Float32Array; saved: Float32Array } {
  return call('attention_fwd', a);
}
export function attentionBwd(
  a: OnBackend &
    AttnShape & {
      dout: Float32Array;
      saved: Float32Array;
      q: Float32Array;
      k: Float32Array;
      v: Float32Array;
      mask?: Uint8Array;
      scale: number;
      dq?: Float32Array;
      dk?: Float32Array;
      dv?: Float32Array;
    },
): { dq: Float32Array; dk: Float32Array; dv: Float32Array } {
  return call('attention_bwd', a);
}

// ---- SwiGLU / dropout -------------------------------------------------------------------

export function swigluFwd(a: OnBackend & { gate: Float32Array; up: Float32Array; n: number }): Float32Array {
  return call('swiglu_fwd', a);
}
export function swigluBwd(
  a: OnBackend & {
    dout: Float32Array;
    gate: Float32Array;
    up: Float32Array;
    n: number;
    dgate?: Float32Array;
    dup?: Float32Array;
  },
): { dgate: Float32Array; dup: Float32Array } {
  return call('swiglu_bwd', a);
}
/** Inverted dropout with the shared counter-based mask; inPlace runs with out == x. */
export function dropoutFwd(
  a: OnBackend & { x: Float32Array; n: number; p: number; seed: number | bigint; inPlace?: boolean },
): Float32Array {
  return call('dropout_fwd', a);
}
export function dropoutBwd(
  a: OnBackend & { dout: Float32Array; n: number; p: number; seed: number | bigint; dx?: Float32Array },
): Float32Array {
  return call('dropout_bwd', a);
}

// ---- restricted LM head / cross-entropy --------------------------------------------------

/** logits[b, c] = h[b] . W[rows[b*C + c]]; h [Bn x d], W [V x d]. */
export function rowsDotFwd(
  a: OnBackend & { h: Float32Array; W: Float32Array; rows: Int32Array; Bn: number; C: number; V: number; d: number },
): Float32Array {
  return call('rows_dot_fwd', a);
}
export function rowsDotBwd(
  a: OnBackend & {
    dlogits: Float32Array;
    h: Float32Array;
    W: Float32Array;
    rows: Int32Array;
    Bn: number;
    C: number;
    V: number;
    d: number;
    dh?: Float32Array;
    dW?: Float32Array | null;
  },
): { dh: Float32Array; dW: Float32Array | null } {
  return call('rows_dot_bwd', a);
}
/** Row softmax cross-entropy; labels < 0 are ignored. probs/dlogits are null when not wanted. */
export function softmaxXent(
  a: OnBackend & {
    logits: Float32Array;
    labels: Int32Array;
    N: number;
    C: number;
    dscale: number;
    wantProbs?: boolean;
    wantDlogits?: boolean;
  },
): { loss: Float32Array; probs: Float32Array | null; dlogits: Float32Array | null } {
  return call('softmax_xent', a);
}

// ---- optimiser ---------------------------------------------------------------------------

/** One AdamW step (decoupled weight decay, 1-based step); returns the new p, m, v. */
export function adamw(
  a: OnBackend & {
    p: Float32Array;
    g: Float32Array;
    m: Float32Array;
    v: Float32Array;
    n: number;
    lr: number;
    b1: number;
    b2: number;
    eps: number;
    wd: number;
    step: number;
    gradScale: number;
  },
): { p: Float32Array; m: Float32Array; v: Float32Array } {
  return call('adamw', a);
}
