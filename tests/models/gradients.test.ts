// Backward through whole models (what fine-tuning relies on): the gradient of
// L = Σ outputs · R with respect to sampled parameter elements, against
// central differences of the float64 reference forward. Covers the fused
// attention path (no padding / right padding) and the masked composition
// (left padding), tied embeddings, RoPE with GQA, and BERT's pooler.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import {
  type BertCfg,
  bertWeights,
  freshSeed,
  type GPT2Cfg,
  gpt2Weights,
  type LlamaCfg,
  llamaWeights,
  Prng,
  refBert,
  refGpt2,
  refLlama,
  relErr,
  type Weights,
  writeCheckpoint,
} from './reference-models';

const root = mkdtempSync(join(tmpdir(), 'tk-grad-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const GPT2: GPT2Cfg = { model_type: 'gpt2', vocab_size: 37, n_positions: 12, n_embd: 24, n_layer: 2, n_head: 3 };
const LLAMA: LlamaCfg = {
  model_type: 'llama',
  vocab_size: 37,
  hidden_size: 24,
  intermediate_size: 40,
  num_hidden_layers: 2,
  num_attention_heads: 6,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-5,
  rope_scaling: { type: 'linear', factor: 2 },
};
const BERT: BertCfg = {
  model_type: 'bert',
  vocab_size: 37,
  hidden_size: 24,
  num_hidden_layers: 2,
  num_attention_heads: 3,
  intermediate_size: 40,
  max_position_embeddings: 12,
};

/**
 * Checks dL/dθ for `count` random elements of each named parameter.
 * lossTk: the engine's loss (a one-element tensor); lossRef: the float64 loss
 * from (possibly perturbed) weights.
 */
function checkGrads(
  model: tk.Module & { toCheckpointKey(n: string): string },
  ws: Weights,
  names: string[],
  lossTk: () => tk.Tensor,
  lossRef: (ws: Weights) => number,
  rng: Prng,
  ctx: string,
  count = 5,
): void {
  const params = new Map(model.namedParameters());
  for (const t of params.values()) t.grad = null;
  // backward inside the tidy scope: the graph's intermediate tensors live until it ends
  const lt = tk.tidy(() => {
    const loss = lossTk();
    loss.backward();
    return loss.item();
  });
  const l64 = lossRef(ws);
  expect(Math.abs(lt - l64), `${ctx}: loss ${lt} vs reference ${l64}`).toBeLessThan(1e-4 * Math.max(1, Math.abs(l64)));
  const ours: number[] = [], fd: number[] = [];
  for (const n of names) {
    const p = params.get(n);
    expect(p, `${ctx}: parameter ${n}`).toBeDefined();
    expect(p!.grad, `${ctx}: ${n} has no gradient`).toBeTruthy();
    const g = p!.grad!.toArray();
    const w = ws[model.toCheckpointKey(n)]!;
    for (let c = 0; c < count; c++) {
      const i = rng.int(0, w.data.length);
      const v = w.data[i]!;
      const h = 1e-5 * Math.max(1, Math.abs(v));
      w.data[i] = v + h;
      const lp = lossRef(ws);
      w.data[i] = v - h;
      const lm = lossRef(ws);
      w.data[i] = v;
      ours.push(g[i]!);
      fd.push((lp - lm) / (2 * h));
    }
  }
  for (const t of params.values()) {
    t.grad?.dispose();
    t.grad = null;
  }
  const err = relErr(ours, fd);
  expect(err, `${ctx}: gradient rel err ${err}\nours ${ours.map((x) => x.toPrecision(5))}\nfd   ${fd.map((x) => x.toPrecision(5))}`).toBeLessThan(1e-4);
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>, bOffset = 0): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[bOffset + i]!;
  return s;
}

/** Σ logits·R over the real rows of a left- or right-padded batch */
function causalCase(
  model: tk.PreTrainedModel,
  ref: (ws: Weights, ids: number[]) => Float64Array,
  seqs: number[][],
  side: 'left' | 'right' | 'none',
  rng: Prng,
) {
  const V = 37, T = Math.max(...seqs.map((s) => s.length));
  const start = (s: number[]) => (side === 'left' ? T - s.length : 0);
  const ids = seqs.map((s) => {
    const pad = new Array(T - s.length).fill(1);
    return side === 'left' ? [...pad, ...s] : [...s, ...pad];
  });
  const mask = seqs.map((s) => {
    const z = new Array(T - s.length).fill(0), o = new Array(s.length).fill(1);
    return side === 'left' ? [...z, ...o] : [...o, ...z];
  });
  const R = new Float32Array(seqs.length * T * V);
  seqs.forEach((s, b) => {
    for (let i = 0; i < s.length * V; i++) R[(b * T + start(s)) * V + i] = Math.fround(rng.normal());
  });
  const lossTk = () => {
    const y = model.forward(ids, { attentionMask: side === 'none' ? undefined : mask });
    return tk.ops.sum(tk.ops.mul(y, tk.tensor(R, [seqs.length, T, V])));
  };
  const lossRef = (ws: Weights) => seqs.reduce((acc, s, b) => acc + dot(ref(ws, s), R, (b * T + start(s)) * V), 0);
  return { lossTk, lossRef };
}

describe('GPT-2 gradients', () => {
  const seed = freshSeed();
  const rng = new Prng(seed);
  const ws = gpt2Weights(GPT2, rng);
  const model = tk.loadModel(writeCheckpoint(join(root, 'gpt2'), GPT2, ws)) as tk.GPT2LMHeadModel;
  const names = [
    'transformer.wte.weight',
    'transformer.wpe.weight',
    'transformer.h.0.attn.c_attn.weight',
    'transformer.h.0.attn.c_attn.bias',
    'transformer.h.1.attn.c_proj.weight',
    'transformer.h.0.mlp.c_fc.weight',
    'transformer.h.1.ln_2.bias',
    'transformer.ln_f.weight',
  ];
  it.each(['none', 'left'] as const)('padding %s', (side) => {
    const seqs = side === 'none' ? [rng.ints(6, 0, 37), rng.ints(6, 0, 37)] : [rng.ints(6, 0, 37), rng.ints(3, 0, 37)];
    const { lossTk, lossRef } = causalCase(model, (w, ids) => refGpt2(GPT2, w, ids), seqs, side, rng);
    checkGrads(model, ws, names, lossTk, lossRef, rng, `seed=${seed} ${side}`);
  });
});

describe('Llama gradients (GQA, RoPE)', () => {
  const seed = freshSeed();
  const rng = new Prng(seed);
  const ws = llamaWeights(LLAMA, rng);
  const model = tk.loadModel(writeCheckpoint(join(root, 'llama'), LLAMA, ws)) as tk.LlamaForCausalLM;
  const names = [
    'model.embed_tokens.weight',
    'model.layers.0.self_attn.q_proj.weight',
    'model.layers.0.self_attn.k_proj.weight',
    'model.layers.1.self_attn.v_proj.weight',
    'model.layers.1.self_attn.o_proj.weight',
    'model.layers.0.mlp.gate_proj.weight',
    'model.layers.1.mlp.down_proj.weight',
    'model.layers.0.input_layernorm.weight',
    'lm_head.weight',
  ];
  it.each(['none', 'left', 'right'] as const)('padding %s', (side) => {
    const seqs = side === 'none' ? [rng.ints(6, 0, 37), rng.ints(6, 0, 37)] : [rng.ints(6, 0, 37), rng.ints(2, 0, 37)];
    const { lossTk, lossRef } = causalCase(model, (w, ids) => refLlama(LLAMA, w, ids), seqs, side, rng);
    checkGrads(model, ws, names, lossTk, lossRef, rng, `seed=${seed} ${side}`);
  });
});

describe('BERT gradients', () => {
  const seed = freshSeed();
  const rng = new Prng(seed);
  const ws = bertWeights(BERT, rng, 'bert.');
  const model = tk.loadModel(writeCheckpoint(join(root, 'bert'), BERT, ws)) as tk.BertModel;
  const names = [
    'embeddings.word_embeddings.weight',
    'embeddings.position_embeddings.weight',
    'embeddings.LayerNorm.weight',
    'encoder.layer.0.attention.self.query.weight',
    'encoder.layer.0.attention.self.key.bias',
    'encoder.layer.1.attention.self.value.weight',
    'encoder.layer.1.intermediate.dense.weight',
    'encoder.layer.0.output.LayerNorm.bias',
    'pooler.dense.weight',
  ];
  it.each([
    ['right padding', [[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]]],
    ['a mask with holes', [[1, 0, 1, 1, 0, 1], [1, 1, 1, 1, 1, 1]]],
  ])('%s', (_n, mask) => {
    const T = 6, C = 24;
    const ids = [rng.ints(T, 0, 37), rng.ints(T, 0, 37)];
    const R1 = Float32Array.from({ length: 2 * T * C }, () => Math.fround(rng.normal()));
    const R2 = Float32Array.from({ length: 2 * C }, () => Math.fround(rng.normal()));
    const lossTk = () => {
      const o = model.forward(ids, { attentionMask: mask });
      return tk.ops.add(tk.ops.sum(tk.ops.mul(o.lastHiddenState, tk.tensor(R1, [2, T, C]))), tk.ops.sum(tk.ops.mul(o.pooled, tk.tensor(R2, [2, C]))));
    };
    const lossRef = (w: Weights) => {
      const r = refBert(BERT, w, ids, mask, undefined, 'bert.');
      return dot(r.last, R1) + dot(r.pooled, R2);
    };
    checkGrads(model, ws, names, lossTk, lossRef, rng, `seed=${seed} ${_n}`);
  });
});
