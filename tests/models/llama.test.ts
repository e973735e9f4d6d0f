// Llama family loaded from Hugging Face layout checkpoints written here,
// against the float64 reference forward: RMSNorm, rotate-half RoPE (default,
// linear and llama3 rope_scaling), SwiGLU, grouped-query attention, causal
// mask; Qwen2 with q/k/v bias and tied embeddings; Mistral.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import { freshSeed, type LlamaCfg, llamaWeights, Prng, refInvFreq, refLlama, relErr, rows, TOL, writeCheckpoint } from './reference-models';

const root = mkdtempSync(join(tmpdir(), 'tk-llama-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const LLAMA: LlamaCfg = {
  model_type: 'llama',
  architectures: ['LlamaForCausalLM'],
  vocab_size: 37,
  hidden_size: 24,
  intermediate_size: 40,
  num_hidden_layers: 2,
  num_attention_heads: 6,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  max_position_embeddings: 64,
  tie_word_embeddings: false,
};

const QWEN2: LlamaCfg = {
  model_type: 'qwen2',
  architectures: ['Qwen2ForCausalLM'],
  vocab_size: 37,
  hidden_size: 24,
  intermediate_size: 36,
  num_hidden_layers: 2,
  num_attention_heads: 3,
  num_key_value_heads: 1,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000,
  max_position_embeddings: 64,
  tie_word_embeddings: true,
};

function logits(model: tk.AnyModel, ids: number[][], mask?: number[][]): Float32Array {
  return tk.tidy(() => (model as tk.LlamaForCausalLM).forward(ids, { attentionMask: mask }).toArray() as Float32Array);
}

function load(name: string, cfg: LlamaCfg, seed: number) {
  const rng = new Prng(seed);
  const ws = llamaWeights(cfg, rng);
  const model = tk.loadModel(writeCheckpoint(join(root, name), cfg, ws)) as tk.LlamaForCausalLM;
  return { rng, ws, model };
}

describe.each([
  ['llama (GQA 6/2, untied lm_head)', LLAMA],
  ['qwen2 (q/k/v bias, GQA 3/1, tied)', QWEN2],
])('%s against the float64 reference', (name, cfg) => {
  const seed = freshSeed();
  const { rng, ws, model } = load(name.split(' ')[0]!, cfg, seed);
  const V = cfg.vocab_size;

  it('loads with every checkpoint tensor used', () => {
    expect(model).toBeInstanceOf(tk.LlamaForCausalLM);
    expect(model.unusedCheckpointKeys).toEqual([]);
    const names = model.namedParameters().map(([n]) => n);
    if (cfg.model_type === 'qwen2') {
      expect(names).toContain('model.layers.0.self_attn.q_proj.bias');
      expect(names).not.toContain('model.layers.0.self_attn.o_proj.bias');
      expect(names).not.toContain('lm_head.weight');
    } else {
      expect(names).not.toContain('model.layers.0.self_attn.q_proj.bias');
      expect(names).toContain('lm_head.weight');
    }
  });

  it('logits of an unpadded batch match', () => {
    const ids = [rng.ints(7, 0, V), rng.ints(7, 0, V)];
    const y = logits(model, ids);
    for (let b = 0; b < 2; b++) {
      const err = relErr(rows(y, b, 7, V, 0, 7), refLlama(cfg, ws, ids[b]!));
      expect(err, `seed=${seed} row ${b}: ${err}`).toBeLessThan(TOL);
    }
  });

  it('left padding: real rows match each sequence alone and the reference', () => {
    const lens = [3, 7, 1, 5];
    const T = 7;
    const seqs = lens.map((n) => rng.ints(n, 0, V));
    const ids = seqs.map((s) => [...new Array(T - s.length).fill(0), ...s]);
    const mask = seqs.map((s) => [...new Array(T - s.length).fill(0), ...new Array(s.length).fill(1)]);
    const y = logits(model, ids, mask);
    seqs.forEach((s, b) => {
      const n = s.length;
      const real = rows(y, b, T, V, T - n, T);
      const e1 = relErr(real, logits(model, [s]));
      expect(e1, `seed=${seed} row ${b} vs alone: ${e1}`).toBeLessThan(1e-5);
      const e2 = relErr(real, refLlama(cfg, ws, s));
      expect(e2, `seed=${seed} row ${b} vs reference: ${e2}`).toBeLessThan(TOL);
    });
  });

  it('right padding: real rows match too', () => {
    const seqs = [rng.ints(6, 0, V), rng.ints(2, 0, V)];
    const T = 6;
    const ids = seqs.map((s) => [...s, ...new Array(T - s.length).fill(0)]);
    const mask = seqs.map((s) => [...new Array(s.length).fill(1), ...new Array(T - s.length).fill(0)]);
    const y = logits(model, ids, mask);
    seqs.forEach((s, b) => {
      const e = relErr(rows(y, b, T, V, 0, s.length), refLlama(cfg, ws, s));
      expect(e, `seed=${seed} row ${b}: ${e}`).toBeLessThan(TOL);
    });
  });
});

describe('Llama variants', () => {
  it('mistral model_type runs the same architecture', () => {
    const seed = freshSeed();
    const cfg: LlamaCfg = { ...LLAMA, model_type: 'mistral', architectures: ['MistralForCausalLM'] };
    const { rng, ws, model } = load('mistral', cfg, seed);
    const ids = rng.ints(7, 0, cfg.vocab_size);
    const err = relErr(logits(model, [ids]), refLlama(cfg, ws, ids));
    expect(err, `seed=${seed}: ${err}`).toBeLessThan(TOL);
    model.dispose();
  });

  it('attention_bias (q/k/v/o bias) and head_dim != hidden_size / heads', () => {
    const seed = freshSeed();
    const cfg: LlamaCfg = { ...LLAMA, attention_bias: true, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 10 };
    const { rng, ws, model } = load('llama-bias-hd', cfg, seed);
    expect(ws['model.layers.0.self_attn.q_proj.weight']!.shape).toEqual([40, 24]);
    const ids = rng.ints(7, 0, cfg.vocab_size);
    const err = relErr(logits(model, [ids]), refLlama(cfg, ws, ids));
    expect(err, `seed=${seed}: ${err}`).toBeLessThan(TOL);
    model.dispose();
  });

  // head_dim 12 gives 6 frequencies; with rope_theta 100 their wavelengths are
  // 6.3, 13.5, 29.2, 62.8, 135, 292, so original_max_position_embeddings 128
  // with low/high factors 1/4 (wavelength bounds 128 and 32) puts three in the
  // kept band, one in the interpolated band and two in the scaled band.
  const ROPE_BASE: LlamaCfg = { ...LLAMA, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 12, rope_theta: 100 };
  const scalings = [
    ['linear', { type: 'linear', factor: 4 }],
    ['llama3', { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 128 }],
  ] as const;

  it('the llama3 test config exercises all three frequency bands', () => {
    const { branch } = refInvFreq(12, 100, scalings[1][1]);
    expect(branch).toEqual(['high', 'high', 'high', 'medium', 'low', 'low']);
  });

  it.each(scalings)('rope_scaling %s matches the reference (and differs from unscaled RoPE)', (_kind, scaling) => {
    const seed = freshSeed();
    const cfg: LlamaCfg = { ...ROPE_BASE, rope_scaling: { ...scaling } };
    const { rng, ws, model } = load(`rope-${_kind}`, cfg, seed);
    const ids = rng.ints(16, 0, cfg.vocab_size);
    const y = logits(model, [ids]);
    const err = relErr(y, refLlama(cfg, ws, ids));
    expect(err, `seed=${seed}: ${err}`).toBeLessThan(TOL);
    // the scaling is visible: far more than the tolerance away from the unscaled model
    const unscaled = relErr(y, refLlama({ ...cfg, rope_scaling: null }, ws, ids));
    expect(unscaled, `seed=${seed}: scaled vs unscaled ${unscaled}`).toBeGreaterThan(30 * TOL);
    model.dispose();
  });

  it('an unsupported rope_scaling type is refused by name', () => {
    const cfg: LlamaCfg = { ...ROPE_BASE, rope_scaling: { rope_type: 'yarn', factor: 2 } };
    const dir = writeCheckpoint(join(root, 'rope-yarn'), cfg, llamaWeights(cfg, new Prng(1)));
    expect(() => tk.loadModel(dir)).toThrow(/yarn/);
  });
});
