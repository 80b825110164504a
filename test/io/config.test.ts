// config.json parsing: real configs of all three architectures, defaults,
// llama3/linear rope scaling, every rejected value, JSON strictness, and the
// model_config_to_json round trip.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { modelConfigToJson, parseModelConfig, parseModelConfigText, type ModelConfig } from '../../ts/io/native-io.ts';
import { makeTinyCheckpoint } from '../helpers/tiny-checkpoint.ts';
import { expectTypedError, tempDir } from './helpers.ts';

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/io');
const { dir, cleanup } = tempDir('config');
afterAll(cleanup);

const minimal = { architectures: ['LlamaForCausalLM'], vocab_size: 100, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4 };
const parse = (o: object) => parseModelConfigText(JSON.stringify(o), 'test-config.json');
const bad = (o: object | string, code: string, ...mentions: string[]) =>
  expectTypedError(() => parseModelConfigText(typeof o === 'string' ? o : JSON.stringify(o), 'test-config.json'), code, 'test-config.json', ...mentions);

describe('real configs', () => {
  it('Llama 3.2 1B: llama3 rope scaling, GQA, explicit head_dim, tied embeddings', () => {
    const c = parseModelConfig(path.join(fixtures, 'llama-3.2-1b.config.json'));
    expect(c).toEqual({
      architecture: 'LlamaForCausalLM',
      vocab_size: 128256,
      hidden_size: 2048,
      intermediate_size: 8192,
      num_hidden_layers: 16,
      num_attention_heads: 32,
      num_key_value_heads: 8,
      head_dim: 64,
      max_position_embeddings: 131072,
      rms_norm_eps: 1e-5,
      rope_theta: 500000,
      rope_scaling: { type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
      tie_word_embeddings: true,
      attention_bias: false,
      sliding_window: 0,
      torch_dtype: 'bfloat16',
      bos_token_id: 128000,
      eos_token_id: 128001,
      pad_token_id: -1,
    } satisfies ModelConfig);
  });
  it('Qwen2.5 0.5B: biases on, sliding window off (use_sliding_window false)', () => {
    const c = parseModelConfig(path.join(fixtures, 'qwen2.5-0.5b.config.json'));
    expect(c).toMatchObject({ architecture: 'Qwen2ForCausalLM', num_key_value_heads: 2, head_dim: 64, attention_bias: true, sliding_window: 0, tie_word_embeddings: true, rope_theta: 1e6, rms_norm_eps: 1e-6 });
  });
  it('Mistral 7B: sliding window 4096', () => {
    const c = parseModelConfig(path.join(fixtures, 'mistral-7b-v0.1.config.json'));
    expect(c).toMatchObject({ architecture: 'MistralForCausalLM', sliding_window: 4096, head_dim: 128, attention_bias: false, rope_scaling: { type: 'none' } });
  });
  it('TinyLlama: rope_scaling null', () => {
    const c = parseModelConfig(path.join(fixtures, 'tinyllama-1.1b.config.json'));
    expect(c).toMatchObject({ num_key_value_heads: 4, head_dim: 64, rope_scaling: { type: 'none', factor: 1 }, eos_token_id: 2 });
  });
  it('every makeTinyCheckpoint config parses to its options', () => {
    for (const arch of ['llama', 'mistral', 'qwen2'] as const) {
      const ck = path.join(dir, arch);
      makeTinyCheckpoint(ck, { arch, hidden: 24, heads: 6, kvHeads: 2, vocab: 50, intermediate: 40, layers: 3, ropeTheta: 5e5, dtype: 'F16' });
      const c = parseModelConfig(path.join(ck, 'config.json'));
      expect(c).toMatchObject({ hidden_size: 24, num_attention_heads: 6, num_key_value_heads: 2, head_dim: 4, vocab_size: 50, intermediate_size: 40, num_hidden_layers: 3, rope_theta: 5e5, torch_dtype: 'float16', attention_bias: arch === 'qwen2', sliding_window: 0 });
    }
  });
});

describe('defaults', () => {
  it('fills HF defaults for a minimal Llama config', () => {
    expect(parse(minimal)).toEqual({
      architecture: 'LlamaForCausalLM',
      vocab_size: 100,
      hidden_size: 64,
      intermediate_size: 128,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 4,
      head_dim: 16,
      max_position_embeddings: 2048,
      rms_norm_eps: 1e-6,
      rope_theta: 10000,
      rope_scaling: { type: 'none', factor: 1, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
      tie_word_embeddings: false,
      attention_bias: false,
      sliding_window: 0,
      torch_dtype: 'float32',
      bos_token_id: -1,
      eos_token_id: -1,
      pad_token_id: -1,
    });
  });
  it('architecture from model_type when architectures is absent; Qwen2 biases default on', () => {
    const { architectures: _, ...rest } = minimal;
    expect(parse({ ...rest, model_type: 'qwen2' })).toMatchObject({ architecture: 'Qwen2ForCausalLM', attention_bias: true });
    expect(parse({ ...rest, model_type: 'mistral' })).toMatchObject({ architecture: 'MistralForCausalLM', sliding_window: 4096 });
  });
  it('Mistral sliding_window: absent -> 4096, null -> 0, value kept', () => {
    const m = { ...minimal, architectures: ['MistralForCausalLM'] };
    expect(parse(m).sliding_window).toBe(4096);
    expect(parse({ ...m, sliding_window: null }).sliding_window).toBe(0);
    expect(parse({ ...m, sliding_window: 128 }).sliding_window).toBe(128);
  });
  it('eos_token_id list takes the first; nulls are -1; integral floats accepted', () => {
    expect(parse({ ...minimal, eos_token_id: [7, 8, 9], bos_token_id: null, pad_token_id: 0 })).toMatchObject({ eos_token_id: 7, bos_token_id: -1, pad_token_id: 0 });
    expect(parse({ ...minimal, hidden_size: 64.0 }).hidden_size).toBe(64);
    expect(parseModelConfigText(JSON.stringify(minimal).replace('"hidden_size":64', '"hidden_size":6.4e1')).hidden_size).toBe(64);
  });
  it('rope scaling: llama3, linear, legacy "type" key, "default" means none', () => {
    const l3 = { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
    expect(parse({ ...minimal, rope_scaling: l3 }).rope_scaling).toEqual({ type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 });
    expect(parse({ ...minimal, rope_scaling: { type: 'linear', factor: 2 } }).rope_scaling).toMatchObject({ type: 'linear', factor: 2 });
    expect(parse({ ...minimal, rope_scaling: { rope_type: 'linear', type: 'linear', factor: 4 } }).rope_scaling.factor).toBe(4);
    expect(parse({ ...minimal, rope_scaling: { rope_type: 'default' } }).rope_scaling.type).toBe('none');
  });
  it('the newer "dtype" key is read when torch_dtype is absent', () => {
    expect(parse({ ...minimal, dtype: 'bfloat16' }).torch_dtype).toBe('bfloat16');
  });
});

describe('rejected values', () => {
  const cases: [string, object | string, string, string?][] = [
    ['unsupported architecture', { ...minimal, architectures: ['GPT2LMHeadModel'] }, 'UNSUPPORTED', 'GPT2LMHeadModel'],
    ['unsupported model_type', (() => { const { architectures: _, ...r } = minimal; return { ...r, model_type: 'gemma' }; })(), 'UNSUPPORTED', 'gemma'],
    ['no architecture at all', (() => { const { architectures: _, ...r } = minimal; return r; })(), 'BAD_FILE'],
    ['empty architectures', { ...minimal, architectures: [] }, 'BAD_FILE', 'architectures'],
    ['model_type mismatch', { ...minimal, model_type: 'qwen2' }, 'BAD_FILE', 'model_type'],
    ['missing hidden_size', (() => { const { hidden_size: _, ...r } = minimal; return r; })(), 'BAD_FILE', 'hidden_size'],
    ['zero hidden_size', { ...minimal, hidden_size: 0 }, 'BAD_FILE', 'hidden_size'],
    ['negative layers', { ...minimal, num_hidden_layers: -2 }, 'BAD_FILE', 'num_hidden_layers'],
    ['hidden above limit', { ...minimal, hidden_size: 65540, num_attention_heads: 4 }, 'BAD_FILE', 'hidden_size'],
    ['layers above limit', { ...minimal, num_hidden_layers: 1025 }, 'BAD_FILE', 'num_hidden_layers'],
    ['vocab above limit', { ...minimal, vocab_size: 10000001 }, 'BAD_FILE', 'vocab_size'],
    ['fractional size', { ...minimal, intermediate_size: 127.5 }, 'BAD_FILE', 'intermediate_size'],
    ['string size', { ...minimal, vocab_size: '100' }, 'BAD_FILE', 'vocab_size'],
    ['huge integer', '{"architectures":["LlamaForCausalLM"],"vocab_size":1e400}', 'BAD_FILE', 'range'],
    ['kv heads not dividing heads', { ...minimal, num_key_value_heads: 3 }, 'BAD_FILE', 'num_key_value_heads'],
    ['hidden not divisible by heads', { ...minimal, num_attention_heads: 6 }, 'BAD_FILE', 'divisible'],
    ['odd head_dim', { ...minimal, head_dim: 15 }, 'BAD_FILE', 'head_dim'],
    ['odd derived head_dim', { ...minimal, hidden_size: 60, num_attention_heads: 4 }, 'BAD_FILE', 'head_dim'],
    ['rms_norm_eps zero', { ...minimal, rms_norm_eps: 0 }, 'BAD_FILE', 'rms_norm_eps'],
    ['rope_theta negative', { ...minimal, rope_theta: -1 }, 'BAD_FILE', 'rope_theta'],
    ['rope_scaling dynamic', { ...minimal, rope_scaling: { type: 'dynamic', factor: 2 } }, 'UNSUPPORTED', 'dynamic'],
    ['rope_scaling yarn', { ...minimal, rope_scaling: { rope_type: 'yarn', factor: 4 } }, 'UNSUPPORTED', 'yarn'],
    ['rope_scaling keys disagree', { ...minimal, rope_scaling: { rope_type: 'linear', type: 'llama3', factor: 2 } }, 'BAD_FILE', 'disagree'],
    ['rope_scaling without type', { ...minimal, rope_scaling: { factor: 2 } }, 'BAD_FILE', 'rope_type'],
    ['rope_scaling not an object', { ...minimal, rope_scaling: 'linear' }, 'BAD_FILE', 'rope_scaling'],
    ['llama3 missing factor', { ...minimal, rope_scaling: { rope_type: 'llama3', low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } }, 'BAD_FILE', 'factor'],
    ['llama3 high <= low', { ...minimal, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 4, high_freq_factor: 4, original_max_position_embeddings: 8192 } }, 'BAD_FILE', 'high_freq_factor'],
    ['linear factor zero', { ...minimal, rope_scaling: { type: 'linear', factor: 0 } }, 'BAD_FILE', 'factor'],
    ['gelu activation', { ...minimal, hidden_act: 'gelu' }, 'UNSUPPORTED', 'gelu'],
    ['mlp bias', { ...minimal, mlp_bias: true }, 'UNSUPPORTED', 'mlp_bias'],
    ['llama attention bias', { ...minimal, attention_bias: true }, 'UNSUPPORTED', 'attention_bias'],
    ['qwen2 without biases', { ...minimal, architectures: ['Qwen2ForCausalLM'], attention_bias: false }, 'UNSUPPORTED', 'Qwen2'],
    ['qwen2 sliding window on', { ...minimal, architectures: ['Qwen2ForCausalLM'], use_sliding_window: true, sliding_window: 64 }, 'UNSUPPORTED', 'use_sliding_window'],
    ['mistral sliding window 0', { ...minimal, architectures: ['MistralForCausalLM'], sliding_window: 0 }, 'BAD_FILE', 'sliding_window'],
    ['tie not a boolean', { ...minimal, tie_word_embeddings: 'yes' }, 'BAD_FILE', 'tie_word_embeddings'],
    ['unknown torch_dtype', { ...minimal, torch_dtype: 'int4' }, 'BAD_FILE', 'torch_dtype'],
    ['eos id beyond vocab', { ...minimal, eos_token_id: 100 }, 'BAD_FILE', 'eos_token_id'],
    ['eos list with a bad entry', { ...minimal, eos_token_id: [1, 'x'] }, 'BAD_FILE', 'eos_token_id'],
    ['not an object', '[1, 2]', 'BAD_FILE', 'object'],
    ['trailing comma', '{"vocab_size": 1,}', 'BAD_FILE', 'byte'],
    ['comment', '// hi\n{}', 'BAD_FILE', 'byte 0'],
    ['single quotes', "{'a': 1}", 'BAD_FILE', 'byte 1'],
    ['NaN', '{"rope_theta": NaN}', 'BAD_FILE', 'byte'],
    ['leading zero', '{"vocab_size": 0100}', 'BAD_FILE', 'leading zero'],
    ['duplicate key', '{"vocab_size": 1, "vocab_size": 2}', 'BAD_FILE', 'duplicate'],
    ['control char in string', '{"a": "x\ty"}', 'BAD_FILE', 'control'],
    ['bad escape', '{"a": "\\x41"}', 'BAD_FILE', 'escape'],
    ['lone low surrogate', '{"a": "\\udc00"}', 'BAD_FILE', 'surrogate'],
    ['empty input', '', 'BAD_FILE', 'end of input'],
  ];
  for (const [name, input, code, mention] of cases)
    it(name, () => {
      const m = mention ? [mention] : [];
      bad(input, code, ...m);
    });

  it('file errors name the path: missing, invalid UTF-8, too large', () => {
    const missing = path.join(dir, 'missing.json');
    expectTypedError(() => parseModelConfig(missing), 'IO_ERROR', missing);
    const utf = path.join(dir, 'bad-utf8.json');
    writeFileSync(utf, Buffer.concat([Buffer.from('{"architectures": ["Llama'), Buffer.from([0xff]), Buffer.from('"]}')]));
    expectTypedError(() => parseModelConfig(utf), 'BAD_FILE', utf, 'UTF-8');
    const big = path.join(dir, 'big.json');
    writeFileSync(big, ' '.repeat(5 << 20));
    expectTypedError(() => parseModelConfig(big), 'BAD_FILE', big, 'limit');
    expectTypedError(() => parseModelConfig(dir), 'IO_ERROR', dir);
  });

  it('JSON escapes and surrogate pairs decode correctly (via an error that echoes the value)', () => {
    // The unsupported architecture name is echoed (JSON-escaped) in the message.
    const err = bad('{"architectures": ["A\\u00e9\\ud83d\\ude00\\n\\"\\/B"]}', 'UNSUPPORTED');
    expect(err.message).toContain('"A\u00e9\ud83d\ude00\\n\\"/B"');
  });
});

describe('model_config_to_json round trip', () => {
  const variants: object[] = [
    minimal,
    { ...minimal, architectures: ['Qwen2ForCausalLM'], tie_word_embeddings: true, eos_token_id: [5, 6], bos_token_id: 3 },
    { ...minimal, architectures: ['MistralForCausalLM'], sliding_window: 512, num_key_value_heads: 2 },
    { ...minimal, architectures: ['MistralForCausalLM'], sliding_window: null },
    { ...minimal, head_dim: 32, rms_norm_eps: 1e-5, rope_theta: 500000, max_position_embeddings: 131072, rope_scaling: { rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 }, torch_dtype: 'bfloat16' },
    { ...minimal, rope_scaling: { type: 'linear', factor: 2.5 }, rms_norm_eps: 1.2345678901234567e-7, rope_theta: 12345.678 },
  ];
  for (const [i, v] of variants.entries())
    it(`variant ${i} survives parse -> json -> parse exactly`, () => {
      const c = parse(v);
      const text = modelConfigToJson(c);
      expect(() => JSON.parse(text)).not.toThrow();
      const hf = JSON.parse(text);
      expect(hf.architectures).toEqual([c.architecture]);
      expect(hf.model_type).toBe({ LlamaForCausalLM: 'llama', MistralForCausalLM: 'mistral', Qwen2ForCausalLM: 'qwen2' }[c.architecture]);
      expect(parseModelConfigText(text)).toEqual(c);
    });

  it('refuses configs the format cannot carry', () => {
    const c = parse(minimal);
    expectTypedError(() => modelConfigToJson({ ...c, sliding_window: 64 }), 'INVALID_ARGUMENT', 'sliding_window');
    expectTypedError(() => modelConfigToJson({ ...c, architecture: 'GPT2' as ModelConfig['architecture'] }), 'INVALID_ARGUMENT');
    expectTypedError(() => modelConfigToJson({ ...c, num_key_value_heads: 3 }), 'INVALID_ARGUMENT', 'num_key_value_heads');
    expectTypedError(() => modelConfigToJson({ ...c, rms_norm_eps: NaN }), 'INVALID_ARGUMENT');
  });
});
