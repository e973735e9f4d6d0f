// GPT-2 loaded from a Hugging Face layout checkpoint written here, against the
// float64 reference forward (learned positions, pre-LN, tanh GELU, Conv1D
// [in, out] weights, tied lm_head).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import { freshSeed, gpt2Weights, type GPT2Cfg, Prng, refGpt2, relErr, rows, TOL, writeCheckpoint } from './reference-models';

const root = mkdtempSync(join(tmpdir(), 'tk-gpt2-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const CFG: GPT2Cfg = {
  model_type: 'gpt2',
  architectures: ['GPT2LMHeadModel'],
  vocab_size: 37,
  n_positions: 20,
  n_embd: 24,
  n_layer: 2,
  n_head: 3,
  layer_norm_epsilon: 1e-5,
  activation_function: 'gelu_new',
};

function logits(model: tk.AnyModel, ids: number[][], mask?: number[][]): Float32Array {
  return tk.tidy(() => (model as tk.GPT2LMHeadModel).forward(ids, { attentionMask: mask }).toArray() as Float32Array);
}

describe('GPT-2 against the float64 reference', () => {
  const seed = freshSeed();
  const rng = new Prng(seed);
  const ws = gpt2Weights(CFG, rng);
  const dir = writeCheckpoint(join(root, 'gpt2'), CFG, ws);
  const model = tk.loadModel(dir) as tk.GPT2LMHeadModel;
  const V = CFG.vocab_size;

  it('loads as GPT2LMHeadModel with every checkpoint tensor used', () => {
    expect(model).toBeInstanceOf(tk.GPT2LMHeadModel);
    expect(model.training).toBe(false);
    expect(model.unusedCheckpointKeys).toEqual([]);
    // the tied lm_head is not a separate parameter
    expect(model.namedParameters().map(([n]) => n)).not.toContain('lm_head.weight');
  });

  it('logits of an unpadded batch match', () => {
    const ids = [rng.ints(7, 0, V), rng.ints(7, 0, V)];
    const y = tk.tidy(() => {
      const t = model.forward(ids);
      expect([...t.shape]).toEqual([2, 7, V]);
      return t.toArray();
    });
    for (let b = 0; b < 2; b++) {
      const err = relErr(rows(y, b, 7, V, 0, 7), refGpt2(CFG, ws, ids[b]!));
      expect(err, `seed=${seed} row ${b}: rel err ${err}`).toBeLessThan(TOL);
    }
  });

  it('left padding: real rows match each sequence run alone (and the reference)', () => {
    const lens = [7, 4, 1, 6];
    const T = 7;
    const seqs = lens.map((n) => rng.ints(n, 0, V));
    const ids = seqs.map((s) => [...new Array(T - s.length).fill(0), ...s]);
    const mask = seqs.map((s) => [...new Array(T - s.length).fill(0), ...new Array(s.length).fill(1)]);
    // a different pad id must not matter either
    const ids2 = seqs.map((s) => [...new Array(T - s.length).fill(V - 1), ...s]);
    const y = logits(model, ids, mask);
    const y2 = logits(model, ids2, mask);
    // the mask as an i32 tensor gives the same
    const maskT = tk.tensor(Int32Array.from(mask.flat()), [4, T], { dtype: 'i32' });
    const idsT = tk.tensor(Int32Array.from(ids.flat()), [4, T], { dtype: 'i32' });
    const y3 = tk.tidy(() => model.forward(idsT, { attentionMask: maskT }).toArray());
    maskT.dispose();
    idsT.dispose();
    expect(Array.from(y3)).toEqual(Array.from(y));
    seqs.forEach((s, b) => {
      const n = s.length;
      const real = rows(y, b, T, V, T - n, T);
      const alone = logits(model, [s]);
      const e1 = relErr(real, alone);
      expect(e1, `seed=${seed} row ${b} vs alone: ${e1}`).toBeLessThan(1e-5);
      expect(relErr(rows(y2, b, T, V, T - n, T), real), 'pad id changes the real rows').toBeLessThan(1e-6);
      const e2 = relErr(real, refGpt2(CFG, ws, s));
      expect(e2, `seed=${seed} row ${b} vs reference: ${e2}`).toBeLessThan(TOL);
    });
  });

  it('lastOnly returns the last position of each row', () => {
    const ids = [rng.ints(5, 0, V), rng.ints(5, 0, V)];
    const full = logits(model, ids);
    const last = tk.tidy(() => {
      const t = model.forward(ids, { lastOnly: true });
      expect([...t.shape]).toEqual([2, 1, V]);
      return t.toArray();
    });
    // the one-row LM head runs the few-row GEMM path (no packing), the full forward the
    // packed one: the same products summed in another order, so equal to f32 rounding
    for (let b = 0; b < 2; b++) {
      const a = Array.from(rows(last, b, 1, V, 0, 1)), f = Array.from(rows(full, b, 5, V, 4, 5));
      const scale = Math.max(...f.map(Math.abs));
      a.forEach((v, i) => expect(Math.abs(v - f[i]!)).toBeLessThanOrEqual(1e-5 * scale));
    }
  });

  it('sequences longer than n_positions are refused', () => {
    expect(() => model.forward([new Array(CFG.n_positions + 1).fill(1)])).toThrow(/n_positions/);
  });
});

describe('GPT-2 checkpoint variants', () => {
  it('GPT2Model layout (no transformer. prefix, attn.bias buffers) as in the original gpt2 files', () => {
    const seed = freshSeed();
    const rng = new Prng(seed);
    const ws = gpt2Weights(CFG, rng, '', { buffers: true });
    const model = tk.loadModel(writeCheckpoint(join(root, 'gpt2-bare'), CFG, ws)) as tk.GPT2LMHeadModel;
    expect(model.unusedCheckpointKeys).toEqual([]);
    const ids = rng.ints(9, 0, CFG.vocab_size);
    const y = logits(model, [ids]);
    const err = relErr(y, refGpt2(CFG, ws, ids, ''));
    expect(err, `seed=${seed}: ${err}`).toBeLessThan(TOL);
    model.dispose();
  });

  it('untied lm_head and n_inner', () => {
    const cfg: GPT2Cfg = { ...CFG, tie_word_embeddings: false, n_inner: 40, n_head: 6 };
    const seed = freshSeed();
    const rng = new Prng(seed);
    const ws = gpt2Weights(cfg, rng);
    const model = tk.loadModel(writeCheckpoint(join(root, 'gpt2-untied'), cfg, ws)) as tk.GPT2LMHeadModel;
    expect(model.namedParameters().map(([n]) => n)).toContain('lm_head.weight');
    const ids = rng.ints(7, 0, cfg.vocab_size);
    const err = relErr(logits(model, [ids]), refGpt2(cfg, ws, ids));
    expect(err, `seed=${seed}: ${err}`).toBeLessThan(TOL);
    model.dispose();
  });

  it.each(['gelu', 'gelu_pytorch_tanh', 'relu'])("activation_function '%s'", (act) => {
    const cfg: GPT2Cfg = { ...CFG, activation_function: act };
    const seed = freshSeed();
    const rng = new Prng(seed);
    const ws = gpt2Weights(cfg, rng);
    const model = tk.loadModel(writeCheckpoint(join(root, `gpt2-${act}`), cfg, ws)) as tk.GPT2LMHeadModel;
    const ids = rng.ints(7, 0, cfg.vocab_size);
    const err = relErr(logits(model, [ids]), refGpt2(cfg, ws, ids));
    expect(err, `seed=${seed}: ${err}`).toBeLessThan(TOL);
    model.dispose();
  });

  it('scale_attn_by_inverse_layer_idx', () => {
    const cfg: GPT2Cfg = { ...CFG, n_layer: 3, scale_attn_by_inverse_layer_idx: true };
    const seed = freshSeed();
    const rng = new Prng(seed);
    const ws = gpt2Weights(cfg, rng);
    const model = tk.loadModel(writeCheckpoint(join(root, 'gpt2-inv-layer'), cfg, ws)) as tk.GPT2LMHeadModel;
    const ids = rng.ints(7, 0, cfg.vocab_size);
    const y = logits(model, [ids]);
    const err = relErr(y, refGpt2(cfg, ws, ids));
    expect(err, `seed=${seed}: ${err}`).toBeLessThan(TOL);
    expect(relErr(y, refGpt2({ ...cfg, scale_attn_by_inverse_layer_idx: false }, ws, ids))).toBeGreaterThan(30 * TOL);
    model.dispose();
  });

  it('unsupported activations and head counts fail at load time, by name', () => {
    const ws = gpt2Weights(CFG, new Prng(1));
    expect(() => tk.loadModel(writeCheckpoint(join(root, 'gpt2-quick'), { ...CFG, activation_function: 'quick_gelu' }, ws))).toThrow(/quick_gelu/);
    expect(() => tk.createModel({ ...CFG, n_head: 5 })).toThrow(/n_head 5/);
  });
});
