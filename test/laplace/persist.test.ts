// Posterior persistence (cpp/laplace/persist): exact round trip of factors,
// counts and priors; adapter identity check; validation of damaged files.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KfacAccumulator } from '../../ts/laplace/kfac.ts';
import { adapterIdentity, loadLaplace, saveLaplace } from '../../ts/laplace/persist.ts';
import { BayesLoraError } from '../../ts/errors.ts';
import { randnArray, rng } from './dense.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'bl-laplace-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const LAYERS = [
  { name: 'model.layers.0.self_attn.q_proj.lora_A', dIn: 12, dOut: 4 },
  { name: 'model.layers.0.self_attn.q_proj.lora_B', dIn: 4, dOut: 12 },
];
const OPTS = { layers: LAYERS, threshold: 8, nKfac: 3, tokens: 'expand' as const };

async function filled(seed: number): Promise<KfacAccumulator> {
  const acc = new KfacAccumulator(OPTS);
  const r = rng(seed);
  for (let l = 0; l < 2; l++)
    await acc.add(l, randnArray(r, 2 * 3 * LAYERS[l].dIn), randnArray(r, 2 * 3 * LAYERS[l].dOut), {
      B: 2,
      T: 3,
      mask: Uint8Array.from([1, 1, 1, 1, 1, 0]),
    });
  return acc;
}

async function expectCode(f: () => Promise<unknown>, code: string, msg?: RegExp): Promise<void> {
  try {
    await f();
  } catch (e) {
    expect(e).toBeInstanceOf(BayesLoraError);
    expect((e as BayesLoraError).code).toBe(code);
    if (msg) expect((e as Error).message).toMatch(msg);
    return;
  }
  expect.unreachable(`expected ${code}`);
}

/** A minimal safetensors writer for hand-made (damaged) files. */
function writeSafetensors(
  file: string,
  tensors: { name: string; shape: number[]; data: Float64Array }[],
  metadata: Record<string, string>,
): void {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let at = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: 'F64', shape: t.shape, data_offsets: [at, at + t.data.byteLength] };
    at += t.data.byteLength;
  }
  let h = JSON.stringify(header);
  h += ' '.repeat((8 - (h.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  writeFileSync(file, Buffer.concat([len, Buffer.from(h), ...tensors.map((t) => Buffer.from(t.data.buffer))]));
}

describe('posterior persistence', () => {
  it('round-trips factors, counts, priors, options and identity exactly', async () => {
    const acc = await filled(1);
    const post = await acc.posterior({ deltas: [0.3, 4] });
    const file = path.join(dir, 'post.safetensors');
    await saveLaplace(file, acc, post, { fisher: 'exact', adapterId: 'abc123' });
    const back = await loadLaplace(file, { adapterId: 'abc123' });
    expect(back.fisher).toBe('exact');
    expect(back.adapterId).toBe('abc123');
    expect(Array.from(back.accumulator.counts())).toEqual(Array.from(acc.counts()));
    expect(back.accumulator.layers()).toEqual(acc.layers());
    for (let l = 0; l < 2; l++)
      for (const side of ['A', 'G'] as const) {
        const a = acc.factor(l, side);
        const b = back.accumulator.factor(l, side);
        expect(b.kind).toBe(a.kind);
        expect(b.k).toBe(a.k);
        expect(Array.from(b.data)).toEqual(Array.from(a.data));
      }
    expect(Array.from(back.posterior.prior())).toEqual([0.3, 4]);
    expect(back.posterior.logDet()).toBe(post.logDet());
    const J = randnArray(rng(2), 48);
    expect(back.posterior.quadForm(1, J)).toBe(post.quadForm(1, J));
    // without an expected identity any file loads
    const any = await loadLaplace(file);
    expect(any.adapterId).toBe('abc123');
    // the loaded accumulator keeps the options: more data and merges work
    await back.accumulator.merge(acc);
    expect(Array.from(back.accumulator.counts())).toEqual(Array.from(acc.counts()).map((v) => 2 * v));
    for (const o of [acc, post, back.accumulator, back.posterior, any.accumulator, any.posterior]) o.dispose();
  });

  it('refuses a posterior fitted for another adapter', async () => {
    const acc = await filled(3);
    const file = path.join(dir, 'other.safetensors');
    await saveLaplace(file, acc, null, { adapterId: 'aaaa' });
    await expectCode(() => loadLaplace(file, { adapterId: 'bbbb' }), 'INVALID_ARGUMENT', /adapter mismatch/);
    acc.dispose();
  });

  it('creates the folder it saves into, and says so when it cannot', async () => {
    const acc = await filled(5);
    const nested = path.join(dir, 'new', 'deeper', 'post.safetensors');
    await saveLaplace(nested, acc, null, { adapterId: 'n' });
    const back = await loadLaplace(nested);
    expect(back.adapterId).toBe('n');
    back.accumulator.dispose();
    back.posterior.dispose();
    const aFile = path.join(dir, 'plain-file');
    writeFileSync(aFile, 'x');
    await expectCode(() => saveLaplace(path.join(aFile, 'sub', 'post.safetensors'), acc, null), 'IO_ERROR', /cannot create directory/);
    acc.dispose();
  });

  it('rejects missing, foreign and damaged files with typed errors', async () => {
    await expectCode(() => loadLaplace(path.join(dir, 'nope.safetensors')), 'IO_ERROR');
    const junk = path.join(dir, 'junk.safetensors');
    writeFileSync(junk, 'not a safetensors file at all');
    await expectCode(() => loadLaplace(junk), 'BAD_FILE');
    const foreign = path.join(dir, 'foreign.safetensors');
    writeSafetensors(foreign, [{ name: 'x', shape: [1], data: new Float64Array(1) }], { format: 'pt' });
    await expectCode(() => loadLaplace(foreign), 'BAD_FILE', /not a bayeslora posterior/);

    // a valid file, then damaged copies of its parts
    const acc = await filled(4);
    const good = path.join(dir, 'good.safetensors');
    await saveLaplace(good, acc, null, { fisher: 'sampled' });
    const bytes = readFileSync(good);
    const hlen = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + hlen).toString());
    const data = bytes.subarray(8 + hlen);
    const tensors = Object.entries(header)
      .filter(([k]) => k !== '__metadata__')
      .map(([name, v]) => {
        const e = v as { shape: number[]; data_offsets: [number, number] };
        const slice = data.subarray(e.data_offsets[0], e.data_offsets[1]);
        return { name, shape: e.shape, data: new Float64Array(Uint8Array.from(slice).buffer) };
      });
    const md = header.__metadata__ as Record<string, string>;
    const variant = (name: string, edit: (t: typeof tensors, m: Record<string, string>) => void): string => {
      const t = tensors.map((x) => ({ ...x, data: x.data.slice(), shape: x.shape.slice() }));
      const m = { ...md };
      edit(t, m);
      const f = path.join(dir, `${name}.safetensors`);
      writeSafetensors(f, t, m);
      return f;
    };
    // an untouched rewrite loads
    const same = await loadLaplace(variant('same', () => {}));
    expect(same.fisher).toBe('sampled');
    same.accumulator.dispose();
    same.posterior.dispose();
    const cases: [string, (t: typeof tensors, m: Record<string, string>) => void, RegExp][] = [
      ['negcount', (t) => (t.find((x) => x.name === 'counts')!.data[0] = -1), /negative count/],
      ['zeroprior', (t) => (t.find((x) => x.name === 'priors')!.data[1] = 0), /prior precision/],
      ['nan', (t) => (t.find((x) => x.name === 'l0.G')!.data[0] = NaN), /non-finite/],
      ['shape', (t) => (t.find((x) => x.name === 'l1.A')!.shape = [2, 5]), /must be F64 \[10\]/], // l1.A is dense 4 x 4: 10 stored
      [
        'rank',
        (t) => {
          const x = t.find((y) => y.name === 'l0.A')!;
          x.shape = [12, 4]; // rank 4 > nKfac 3
          x.data = new Float64Array(48);
        },
        /k <= 3/,
      ],
      ['missing', (t) => t.splice(t.findIndex((x) => x.name === 'l1.G'), 1), /l1\.G/],
      ['version', (_t, m) => (m.version = '99'), /version/],
      ['tokens', (_t, m) => (m.tokens = 'both'), /tokens/],
      ['layers', (_t, m) => (m.layers = '[{"name":"x"}]'), /layers/],
      ['layersjson', (_t, m) => (m.layers = '[{'), /layers/],
    ];
    for (const [name, edit, msg] of cases) await expectCode(() => loadLaplace(variant(name, edit)), 'BAD_FILE', msg);

    // A dense side is stored as its lower triangle (format 2); a format-1 file
    // (the full matrix) still loads, to the same factor and posterior.
    const l1A = tensors.find((x) => x.name === 'l1.A')!;
    expect(md.version).toBe('2');
    expect(l1A.shape).toEqual([10]);
    const full = acc.factor(1, 'A');
    expect(full.kind).toBe('dense');
    for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) expect(full.data[i * 4 + j]).toBe(full.data[j * 4 + i]); // exactly symmetric
    const v1 = await loadLaplace(
      variant('v1', (t, m) => {
        for (let l = 0; l < 2; l++)
          for (const side of ['A', 'G'] as const) {
            const f = acc.factor(l, side);
            if (f.kind !== 'dense') continue;
            const x = t.find((y) => y.name === `l${l}.${side}`)!;
            const d = Math.round(Math.sqrt(f.data.length));
            x.shape = [d, d];
            x.data = Float64Array.from(f.data);
          }
        m.version = '1';
      }),
    );
    const v2 = await loadLaplace(good);
    expect(Array.from(v1.accumulator.factor(1, 'A').data)).toEqual(Array.from(full.data));
    expect(v1.posterior.logDet()).toBe(v2.posterior.logDet());
    await expectCode(() => loadLaplace(variant('v1packed', (_t, m) => (m.version = '1'))), 'BAD_FILE', /must be F64 \[4,4\]/);
    for (const o of [v1.accumulator, v1.posterior, v2.accumulator, v2.posterior]) o.dispose();
    acc.dispose();
  });

  it('adapterIdentity depends on names, shapes and values', () => {
    const a = Float32Array.from([1, 2, 3, 4, 5, 6]);
    const id = adapterIdentity([{ name: 'A', shape: [2, 3], data: a }]);
    expect(id).toMatch(/^[0-9a-f]{16}$/);
    expect(adapterIdentity([{ name: 'A', shape: [2, 3], data: a.slice() }])).toBe(id);
    expect(adapterIdentity([{ name: 'B', shape: [2, 3], data: a }])).not.toBe(id);
    expect(adapterIdentity([{ name: 'A', shape: [3, 2], data: a }])).not.toBe(id);
    const b = a.slice();
    b[5] = 6.000001;
    expect(adapterIdentity([{ name: 'A', shape: [2, 3], data: b }])).not.toBe(id);
    expect(() => adapterIdentity([{ name: 'A', shape: [2, 4], data: a }])).toThrow(BayesLoraError);
  });
});
