// PEFT adapter_config.json: reading a file PEFT wrote, writing what PEFT
// writes, round trips, PEFT module matching, tensor naming, and rejection of
// adapters whose meaning we would silently change.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  adapterConfigToJson,
  adapterTargetsModule,
  parseAdapterConfigText,
  peftTensorName,
  readAdapterConfig,
  writeAdapterConfig,
  type AdapterConfig,
} from '../../ts/io/native-io.ts';
import { expectTypedError, tempDir } from './helpers.ts';
import { lastJsonLine, runTsSnippet } from '../helpers/ts-child.ts';

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/io');
const { dir, cleanup } = tempDir('adapter');
afterAll(cleanup);

const peftFile = path.join(fixtures, 'peft-lora.adapter_config.json');
const base = { peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'] };
const parse = (o: object) => parseAdapterConfigText(JSON.stringify(o), 'adapter_config.json');

describe('adapter config', () => {
  it('reads the config PEFT writes', () => {
    expect(readAdapterConfig(peftFile)).toEqual({
      r: 8,
      lora_alpha: 16,
      lora_dropout: 0.05,
      use_rslora: false,
      target_modules: ['v_proj', 'q_proj'],
      target_regex: '',
      base_model_name_or_path: 'TinyLlama/TinyLlama-1.1B-Chat-v1.0',
      bias: 'none',
    } satisfies AdapterConfig);
  });

  it('writes exactly the key set and values of a PEFT file, and reads it back identically', () => {
    const cfg = readAdapterConfig(peftFile);
    const out = path.join(dir, 'adapter_config.json');
    writeAdapterConfig(out, cfg);
    const written = JSON.parse(readFileSync(out, 'utf8'));
    const peft = JSON.parse(readFileSync(peftFile, 'utf8'));
    expect(written).toEqual(peft);
    expect(Object.keys(written)).toEqual(Object.keys(written).sort()); // PEFT sorts keys
    expect(readAdapterConfig(out)).toEqual(cfg);
  });

  it('round-trips rsLoRA, fractional alpha, a regex and an empty base model', () => {
    const cfg: AdapterConfig = {
      r: 16,
      lora_alpha: 0.1 + 0.2,
      lora_dropout: 0,
      use_rslora: true,
      target_modules: [],
      target_regex: String.raw`.*\.(q_proj|v_proj)$`,
      base_model_name_or_path: '',
      bias: 'none',
    };
    const text = adapterConfigToJson(cfg);
    const hf = JSON.parse(text);
    expect(hf.target_modules).toBe(cfg.target_regex);
    expect(hf.base_model_name_or_path).toBeNull();
    expect(hf.use_rslora).toBe(true);
    expect(parseAdapterConfigText(text)).toEqual(cfg);
    expect(parseAdapterConfigText(text).lora_alpha).toBe(0.1 + 0.2); // shortest round-trip doubles
  });

  it('defaults: lora_alpha 8, dropout 0, no rsLoRA; task_type may be absent or null', () => {
    expect(parse({ peft_type: 'LORA', r: 2, target_modules: ['q_proj'] })).toMatchObject({ lora_alpha: 8, lora_dropout: 0, use_rslora: false, bias: 'none' });
    expect(parse({ ...base, task_type: null }).r).toBe(4);
  });

  it('"all-linear" expands to every projection of the block', () => {
    expect(parse({ ...base, target_modules: 'all-linear' }).target_modules).toEqual(['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']);
  });

  it('PEFT module matching: suffix after a dot for lists, full match for regexes', () => {
    const list = parse(base);
    expect(adapterTargetsModule(list, 'model.layers.0.self_attn.q_proj')).toBe(true);
    expect(adapterTargetsModule(list, 'q_proj')).toBe(true);
    expect(adapterTargetsModule(list, 'model.layers.0.self_attn.xq_proj')).toBe(false);
    expect(adapterTargetsModule(list, 'model.layers.0.self_attn.k_proj')).toBe(false);
    const rx = parse({ ...base, target_modules: String.raw`model\.layers\.[01]\..*\.(q|v)_proj` });
    expect(adapterTargetsModule(rx, 'model.layers.1.self_attn.v_proj')).toBe(true);
    expect(adapterTargetsModule(rx, 'model.layers.2.self_attn.v_proj')).toBe(false);
    expect(adapterTargetsModule(rx, 'xmodel.layers.1.self_attn.v_proj')).toBe(false); // full match, not search
  });

  it('regex matching takes polynomial time: nested stars on a long path', () => {
    // A backtracking matcher (std::regex's default, the previous build) takes
    // ~2^n steps on these and does not finish; the breadth-first one answers
    // at once. In a child process, so that a hang fails the test (SIGTERM)
    // instead of stalling the runner.
    const code = `import { adapterTargetsModule, parseAdapterConfigText } from './ts/io/native-io.ts';
      const base = ${JSON.stringify(base)};
      const rx = (t) => parseAdapterConfigText(JSON.stringify({ ...base, target_modules: t }), 'adapter_config.json');
      const long = 'model.layers.' + '1'.repeat(200) + '.self_attn.q_proj';
      console.log(JSON.stringify([
        adapterTargetsModule(rx('(.*)*x'), long),
        adapterTargetsModule(rx('(.*)*_proj'), long),
        adapterTargetsModule(rx('(a|a?)+b{0,1000}'), 'a'.repeat(300)),
      ]));`;
    expect(lastJsonLine(runTsSnippet(code, process.env, 30_000).stdout)).toEqual([false, true, true]);
  });

  it('PEFT tensor names', () => {
    expect(peftTensorName('model.layers.3.mlp.down_proj', false)).toBe('base_model.model.model.layers.3.mlp.down_proj.lora_A.weight');
    expect(peftTensorName('model.layers.3.mlp.down_proj', true)).toBe('base_model.model.model.layers.3.mlp.down_proj.lora_B.weight');
    expectTypedError(() => peftTensorName('', true), 'INVALID_ARGUMENT');
  });

  const rejected: [string, object | string, string, string][] = [
    ['not LoRA', { ...base, peft_type: 'IA3' }, 'UNSUPPORTED', 'IA3'],
    ['missing peft_type', (() => { const { peft_type: _, ...r } = base; return r; })(), 'BAD_FILE', 'peft_type'],
    ['other task', { ...base, task_type: 'SEQ_CLS' }, 'UNSUPPORTED', 'SEQ_CLS'],
    ['r zero', { ...base, r: 0 }, 'BAD_FILE', 'r '],
    ['r fractional', { ...base, r: 2.5 }, 'BAD_FILE', 'r '],
    ['missing r', (() => { const { r: _, ...x } = base; return x; })(), 'BAD_FILE', 'r '],
    ['negative alpha', { ...base, lora_alpha: -1 }, 'BAD_FILE', 'lora_alpha'],
    ['dropout 1', { ...base, lora_dropout: 1 }, 'BAD_FILE', 'lora_dropout'],
    ['missing target_modules', { ...base, target_modules: null }, 'BAD_FILE', 'target_modules'],
    ['empty target_modules', { ...base, target_modules: [] }, 'BAD_FILE', 'target_modules'],
    ['non-string target', { ...base, target_modules: ['q_proj', 3] }, 'BAD_FILE', 'target_modules'],
    ['python-only regex', { ...base, target_modules: '(?P<x>q_proj)' }, 'UNSUPPORTED', 'regex'],
    // Hostile regexes (the first one was undefined behaviour in std::regex's
    // repeat-count parser, found by the adapter fuzzer).
    ['repeat count overflow', { ...base, target_modules: 'a{8888888888855555555}' }, 'UNSUPPORTED', 'repeat count'],
    ['repeat count 1001', { ...base, target_modules: 'q{1,1001}_proj' }, 'UNSUPPORTED', 'repeat count'],
    ['regex of 2000 bytes', { ...base, target_modules: 'q_proj|'.repeat(285) + 'v_proj' }, 'UNSUPPORTED', 'bytes'],
    ['groups 40 deep', { ...base, target_modules: '('.repeat(40) + 'q_proj' + ')'.repeat(40) }, 'UNSUPPORTED', 'nested'],
    ['automaton too large', { ...base, target_modules: '((q_proj){100}){100}' }, 'UNSUPPORTED', 'states'],
    ['back-reference', { ...base, target_modules: String.raw`(q)\1_proj` }, 'UNSUPPORTED', 'back-references'],
    ['lookahead', { ...base, target_modules: '(?=.*q).*_proj' }, 'UNSUPPORTED', 'lookaround'],
    ['bias all', { ...base, bias: 'all' }, 'UNSUPPORTED', 'bias'],
    ['DoRA', { ...base, use_dora: true }, 'UNSUPPORTED', 'use_dora'],
    ['modules_to_save', { ...base, modules_to_save: ['lm_head'] }, 'UNSUPPORTED', 'modules_to_save'],
    ['rank_pattern', { ...base, rank_pattern: { q_proj: 2 } }, 'UNSUPPORTED', 'rank_pattern'],
    ['layers_to_transform', { ...base, layers_to_transform: [0, 1] }, 'UNSUPPORTED', 'layers_to_transform'],
    ['fan_in_fan_out', { ...base, fan_in_fan_out: true }, 'UNSUPPORTED', 'fan_in_fan_out'],
    ['rslora not boolean', { ...base, use_rslora: 1 }, 'BAD_FILE', 'use_rslora'],
    ['not an object', '[]', 'BAD_FILE', 'object'],
    ['not JSON', '{"r": 4', 'BAD_FILE', 'invalid JSON'],
  ];
  for (const [name, input, code, mention] of rejected)
    it(`rejects: ${name}`, () => {
      expectTypedError(
        () => parseAdapterConfigText(typeof input === 'string' ? input : JSON.stringify(input), 'adapter_config.json'),
        code,
        'adapter_config.json',
        mention,
      );
    });

  it('file errors name the path; invalid configs are not written', () => {
    const missing = path.join(dir, 'nope', 'adapter_config.json');
    expectTypedError(() => readAdapterConfig(missing), 'IO_ERROR', missing);
    const out = path.join(dir, 'never.json');
    expectTypedError(() => writeAdapterConfig(out, { r: 0, target_modules: ['q_proj'] }), 'INVALID_ARGUMENT');
    expectTypedError(() => writeAdapterConfig(out, { r: 4, target_modules: [] }), 'INVALID_ARGUMENT', 'target_modules');
    expectTypedError(() => writeAdapterConfig(out, { r: 4, target_modules: ['q'], target_regex: 'q' }), 'INVALID_ARGUMENT');
    expectTypedError(() => writeAdapterConfig(out, { r: 4, target_modules: ['q'], lora_dropout: 1.5 }), 'INVALID_ARGUMENT', 'lora_dropout');
    expectTypedError(() => writeAdapterConfig(missing, { r: 4, target_modules: ['q'] }), 'IO_ERROR', missing);
    expectTypedError(() => readAdapterConfig(out), 'IO_ERROR', out);
  });
});
