// A small seeded PRNG for data order (shuffling, splits). Deterministic across
// platforms and Node versions (Math.random is neither seedable nor stable).
//
// State: sfc32 (Chris Doty-Humphrey's Small Fast Counting generator, 128-bit
// state, passes PractRand at the sizes we use), seeded by running splitmix32
// over the seed so that nearby seeds (0, 1, 2, ...) give unrelated streams.
import { invalid } from '../errors.ts';

/** splitmix32 step: a well-mixed 32-bit hash of a counter. */
function splitmix32(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  let z = x;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  /** `seed`: any safe integer (negative and > 2^32 seeds are folded in, not truncated). */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed)) throw invalid(`Rng: seed must be a safe integer, got ${String(seed)}`);
    const lo = seed >>> 0;
    const hi = Math.floor(seed / 0x100000000) >>> 0;
    let s = splitmix32(lo ^ splitmix32(hi));
    this.a = s;
    this.b = s = splitmix32(s);
    this.c = s = splitmix32(s);
    this.d = splitmix32(s) | 1;
    // Warm up so that the first outputs do not echo the seeding.
    for (let i = 0; i < 12; i++) this.nextU32();
  }

  /** Uniform 32-bit unsigned integer. */
  nextU32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform float in [0, 1) with 32 bits of randomness. */
  nextFloat(): number {
    return this.nextU32() / 0x100000000;
  }

  /** Uniform integer in [0, n), unbiased (rejection sampling), n in [1, 2^32]. */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > 0x100000000) throw invalid(`Rng.int: n must be an integer in [1, 2^32], got ${String(n)}`);
    const limit = 0x100000000 - (0x100000000 % n);
    for (;;) {
      const x = this.nextU32();
      if (x < limit) return x % n;
    }
  }

  /** Fisher-Yates shuffle in place; returns the array. */
  shuffle<T>(arr: T[]): T[] {
    for (let i = arr.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = arr[i];
      arr[i] = arr[j];
      arr[j] = t;
    }
    return arr;
  }
}

/** Combine a base seed with a sub-stream index (e.g. the epoch) into a new seed. */
export function deriveSeed(seed: number, stream: number): number {
  if (!Number.isSafeInteger(seed) || !Number.isSafeInteger(stream)) throw invalid('deriveSeed: seed and stream must be safe integers');
  const lo = splitmix32((seed >>> 0) ^ splitmix32(stream >>> 0));
  const hi = splitmix32((Math.floor(seed / 0x100000000) >>> 0) ^ splitmix32((Math.floor(stream / 0x100000000) >>> 0) + 0x51ed27));
  // 53-bit result: hi's top 21 bits above lo.
  return (hi >>> 11) * 0x100000000 + lo;
}
