// Tensor handles: shape, storage dtype (f32 | f16 | bf16; compute is f32),
// device ('cpu' | 'cuda'). On the CPU an f32 tensor is a zero-copy view of
// the Float32Array it was made from (`view()` returns that array); otherwise
// data lives in backend memory (converted to the storage dtype). `dispose()`
// is idempotent; any use after it throws BayesLoraError('DISPOSED').
import { loadNative } from './native.ts';
import { native } from './errors.ts';

export type StorageDType = 'f32' | 'f16' | 'bf16';
export type Device = 'cpu' | 'cuda';

export class Tensor {
  /** @internal */
  readonly raw: { toArray(): Float32Array; view(): Float32Array | null; dispose(): void; shape: number[]; dtype: StorageDType; device: Device; byteLength: number; zeroCopy: boolean; disposed: boolean };

  private constructor(raw: Tensor['raw']) {
    this.raw = raw;
  }

  /** Wrap `data` (row-major, `shape`): zero-copy on the CPU in f32, else a converted copy. */
  static from(data: Float32Array, shape: readonly number[], opts: { dtype?: StorageDType; device?: Device } = {}): Tensor {
    const n = loadNative();
    return new Tensor(native(() => new n.Tensor(data, [...shape], opts)));
  }

  get shape(): number[] {
    return this.raw.shape;
  }
  get dtype(): StorageDType {
    return this.raw.dtype;
  }
  get device(): Device {
    return this.raw.device;
  }
  get byteLength(): number {
    return this.raw.byteLength;
  }
  /** True when the tensor shares memory with the array it was made from. */
  get zeroCopy(): boolean {
    return this.raw.zeroCopy;
  }
  get disposed(): boolean {
    return this.raw.disposed;
  }
  /** A copy of the values as f32. */
  toArray(): Float32Array {
    return native(() => this.raw.toArray());
  }
  /** The shared Float32Array of a zero-copy tensor, else null. */
  view(): Float32Array | null {
    return native(() => this.raw.view());
  }
  dispose(): void {
    this.raw.dispose();
  }
}
