// Checkpoints: save -> load round trips (bit-exact, the original key names
// kept), sharded checkpoints, bf16 / f16 checkpoints, and the errors of
// tk.loadModel / tk.createModel.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
  mapWeights,
  Prng,
  refBert,
  refGpt2,
  refLlama,
  relErr,
  roundBf16,
  roundF16,
  shardName,
  TOL,
  type Weights,
  writeCheckpoint,
} from './reference-models';

const root = mkdtempSync(join(tmpdir(), 'tk-ckpt-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirCount = 0;
const fresh = (name: string) => join(root, `${name}-${dirCount++}`);

const GPT2: GPT2Cfg = { model_type: 'gpt2', architectures: ['GPT2LMHeadModel'], vocab_size: 37, n_positions: 16, n_embd: 24, n_layer: 2, n_head: 3 };
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
  rope_theta: 500000,
  rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 },
  max_position_embeddings: 128,
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
  tie_word_embeddings: true,
};
const BERT: BertCfg = {
  model_type: 'bert',
  vocab_size: 37,
  hidden_size: 24,
  num_hidden_layers: 2,
  num_attention_heads: 6,
  intermediate_size: 40,
  max_position_embeddings: 16,
};

interface Case {
  name: string;
  cfg: Record<string, unknown>;
  weights: (rng: Prng) => Weights;
  /** reference outputs (logits, or BERT's lastHiddenState and pooled concatenated) of one sequence */
  ref: (ws: Weights, ids: number[]) => Float64Array;
}

const CASES: Case[] = [
  { name: 'gpt2 (transformer. prefix)', cfg: GPT2, weights: (r) => gpt2Weights(GPT2, r), ref: (ws, ids) => refGpt2(GPT2, ws, ids) },
  { name: 'gpt2 (no prefix)', cfg: GPT2, weights: (r) => gpt2Weights(GPT2, r, ''), ref: (ws, ids) => refGpt2(GPT2, ws, ids, '') },
  { name: 'llama (untied, llama3 rope)', cfg: LLAMA, weights: (r) => llamaWeights(LLAMA, r), ref: (ws, ids) => refLlama(LLAMA, ws, ids) },
  { name: 'qwen2 (tied, bias)', cfg: QWEN2, weights: (r) => llamaWeights(QWEN2, r), ref: (ws, ids) => refLlama(QWEN2, ws, ids) },
  { name: 'bert (BertModel)', cfg: BERT, weights: (r) => bertWeights(BERT, r), ref: (ws, ids) => bertRef(ws, ids, '') },
  { name: "bert ('bert.' prefix)", cfg: BERT, weights: (r) => bertWeights(BERT, r, 'bert.'), ref: (ws, ids) => bertRef(ws, ids, 'bert.') },
];

function bertRef(ws: Weights, ids: number[], prefix: string): Float64Array {
  const r = refBert(BERT, ws, [ids], undefined, undefined, prefix);
  const out = new Float64Array(r.last.length + r.pooled.length);
  out.set(r.last);
  out.set(r.pooled, r.last.length);
  return out;
}

/** the model's outputs for one sequence, flattened like the case's ref */
function outputs(model: tk.AnyModel, ids: number[]): Float32Array {
  return tk.tidy(() => {
    if (model instanceof tk.BertModel) {
      const o = model.forward([ids]);
      const a = o.lastHiddenState.toArray(), b = o.pooled.toArray();
      const out = new Float32Array(a.length + b.length);
      out.set(a);
      out.set(b, a.length);
      return out;
    }
    return model.forward([ids]).toArray() as Float32Array;
  });
}

function fileTensors(dir: string): Record<string, { dtype: string; shape: number[]; data: number[] }> {
  const path = join(dir, 'model.safetensors');
  const header = tk.readSafetensorsHeader(path);
  const loaded = tk.loadSafetensors(path);
  const out: Record<string, { dtype: string; shape: number[]; data: number[] }> = {};
  for (const [k, info] of header.tensors) {
    out[k] = { dtype: info.dtype, shape: [...info.shape], data: Array.from(loaded[k]!.toArray()) };
    loaded[k]!.dispose();
  }
  return out;
}

function params(model: tk.Module): Map<string, number[]> {
  return new Map(model.namedParameters().map(([n, t]) => [n, Array.from(t.toArray())]));
}

describe.each(CASES)('$name', (c) => {
  const seed = freshSeed();
  const rng = new Prng(seed);
  const ws = c.weights(rng);
  const src = writeCheckpoint(fresh('src'), c.cfg, ws);
  const model = tk.loadModel(src);
  const ids = rng.ints(6, 0, 37);

  it('matches the reference', () => {
    const err = relErr(outputs(model, ids), c.ref(ws, ids));
    expect(err, `seed=${seed}: ${err}`).toBeLessThan(TOL);
  });

  it('toCheckpointKey names each parameter by its key in the loaded checkpoint', () => {
    const keys = new Set(Object.keys(ws));
    for (const [n] of model.namedParameters()) expect(keys.has(model.toCheckpointKey(n)), `${n} -> ${model.toCheckpointKey(n)}`).toBe(true);
    expect(model.checkpointPrefix).toBe(c.name.includes("'bert.'") ? 'bert.' : '');
    expect(model.unusedCheckpointKeys).toEqual([]);
  });

  it('save -> load is bit-exact and keeps the checkpoint key names', () => {
    const out = fresh('saved');
    model.save(out);
    const a = fileTensors(src), b = fileTensors(out);
    expect(Object.keys(b).sort()).toEqual(Object.keys(a).sort());
    for (const k of Object.keys(a)) {
      expect(b[k]!.dtype, k).toBe('F32');
      expect(b[k]!.shape, k).toEqual(a[k]!.shape);
      expect(b[k]!.data, k).toEqual(a[k]!.data);
    }
    const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    for (const [k, v] of Object.entries(c.cfg)) expect(cfg[k], `config.json field ${k}`).toEqual(v);
    expect(cfg.architectures).toEqual((c.cfg.architectures as string[] | undefined) ?? ['BertModel']);
    const again = tk.loadModel(out);
    expect(again.constructor).toBe(model.constructor);
    const p1 = params(model), p2 = params(again);
    expect([...p2.keys()]).toEqual([...p1.keys()]);
    for (const [n, v] of p1) expect(p2.get(n), n).toEqual(v);
    expect(Array.from(outputs(again, ids))).toEqual(Array.from(outputs(model, ids)));
    // and once more: saving the reloaded model gives the same file contents
    const out2 = fresh('saved2');
    tk.saveModel(again, out2);
    expect(fileTensors(out2)).toEqual(b);
    again.dispose();
  });

  it('a sharded checkpoint gives the same model as the single file', () => {
    const dir = writeCheckpoint(fresh('sharded'), c.cfg, ws, { shards: 2 });
    expect(existsSync(join(dir, shardName(0, 2)))).toBe(true);
    expect(existsSync(join(dir, shardName(1, 2)))).toBe(true);
    expect(existsSync(join(dir, 'model.safetensors'))).toBe(false);
    const sharded = tk.loadModel(dir);
    const p1 = params(model), p2 = params(sharded);
    expect([...p2.keys()]).toEqual([...p1.keys()]);
    for (const [n, v] of p1) expect(p2.get(n), n).toEqual(v);
    expect(Array.from(outputs(sharded, ids))).toEqual(Array.from(outputs(model, ids)));
    // saving a sharded model writes one file with the same keys
    const out = fresh('sharded-saved');
    sharded.save(out);
    expect(Object.keys(fileTensors(out)).sort()).toEqual(Object.keys(ws).sort());
    sharded.dispose();
  });

  it.each([
    ['bf16', 'BF16', roundBf16],
    ['f16', 'F16', roundF16],
  ] as const)('a %s checkpoint loads as f32 with round-to-nearest-even values', (dtype, stName, round) => {
    // exact ties (round to even), values just off a tie, and a subnormal of f16 in the last weight
    const tied = mapWeights(ws, (x) => x);
    const last = Object.values(tied)[Object.keys(tied).length - 1]!.data;
    const specials = [1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -11, 1 + 3 * 2 ** -11, -(1 + 2 ** -8), 1 + 2 ** -8 + 2 ** -20, 2 ** -20, -3 * 2 ** -26];
    last.set(specials.slice(0, Math.min(specials.length, last.length)));
    const dir = writeCheckpoint(fresh(dtype), c.cfg, tied, { dtype });
    const header = tk.readSafetensorsHeader(join(dir, 'model.safetensors'));
    for (const info of header.tensors.values()) expect(info.dtype).toBe(stName);
    const half = tk.loadModel(dir);
    const rounded = mapWeights(tied, round);
    expect(Array.from(rounded[Object.keys(tied).at(-1)!]!.data.slice(0, 4))).toEqual(
      dtype === 'bf16' ? [1, 1 + 2 ** -6, 1, 1] : [1 + 2 ** -8, 1 + 3 * 2 ** -8, 1, 1 + 2 ** -9],
    );
    // every parameter holds the rounded value of the float32 weight, as f32
    const named = half.namedParameters();
    expect(named.length).toBeGreaterThan(0);
    for (const [n, t] of named) {
      expect(t.dtype, n).toBe('f32');
      expect(Array.from(t.toArray()), n).toEqual(Array.from(rounded[half.toCheckpointKey(n)]!.data));
    }
    // and saving writes those values as F32
    const saved = fresh(`${dtype}-saved`);
    half.save(saved);
    for (const [k, t] of Object.entries(fileTensors(saved))) {
      expect(t.dtype, k).toBe('F32');
      expect(t.data, k).toEqual(Array.from(rounded[k]!.data));
    }
    // the rounding is real (some values changed) and the model computes with the rounded weights
    expect(Object.values(rounded).some((w, i) => w.data.some((x, j) => x !== Object.values(tied)[i]!.data[j]))).toBe(true);
    const err = relErr(outputs(half, ids), c.ref(rounded, ids));
    expect(err, `seed=${seed}: ${err}`).toBeLessThan(TOL);
    half.dispose();
  });
});

describe('createModel -> save -> load', () => {
  it.each([
    ['gpt2', GPT2],
    ['llama', LLAMA],
    ['qwen2', QWEN2],
    ['bert', BERT],
  ] as const)('%s: Hugging Face key names, identical parameters and outputs', (_n, cfg) => {
    const m = tk.createModel(cfg);
    const dir = fresh('created');
    m.save(dir);
    const keys = [...tk.readSafetensorsHeader(join(dir, 'model.safetensors')).tensors.keys()];
    const want =
      cfg.model_type === 'gpt2'
        ? 'transformer.h.0.attn.c_attn.weight'
        : cfg.model_type === 'bert'
          ? 'encoder.layer.0.attention.self.query.weight'
          : 'model.layers.0.self_attn.q_proj.weight';
    expect(keys).toContain(want);
    if (cfg.model_type === 'gpt2') expect(tk.readSafetensorsHeader(join(dir, 'model.safetensors')).tensors.get(want)!.shape).toEqual([24, 72]);
    if (cfg === QWEN2 || cfg === GPT2) expect(keys).not.toContain('lm_head.weight');
    if (cfg === LLAMA) expect(keys).toContain('lm_head.weight');
    const back = tk.loadModel(dir);
    const p1 = params(m), p2 = params(back);
    expect([...p2.keys()]).toEqual([...p1.keys()]);
    for (const [n, v] of p1) expect(p2.get(n), n).toEqual(v);
    m.eval();
    const ids = [3, 1, 4, 1, 5];
    expect(Array.from(outputs(back, ids))).toEqual(Array.from(outputs(m, ids)));
    m.dispose();
    back.dispose();
  });
});

function std(t: tk.Tensor): number {
  const a = t.toArray();
  let m = 0;
  for (const x of a) m += x;
  m /= a.length;
  let v = 0;
  for (const x of a) v += (x - m) ** 2;
  return Math.sqrt(v / a.length);
}

describe('createModel initialization follows transformers', () => {
  it.each([0.02, 0.3])('initializer_range %s: N(0, r²) weights and embeddings, r/sqrt(2 n_layer) for GPT-2 c_proj, ones/zeros for norms', (r) => {
    const within = (x: number, want: number, what: string) => expect(Math.abs(x / want - 1), `${what}: std ${x}, want ${want}`).toBeLessThan(0.2);
    const g = tk.createModel({ ...GPT2, initializer_range: r });
    const gp = new Map(g.namedParameters());
    within(std(gp.get('transformer.wte.weight')!), r, 'wte');
    within(std(gp.get('transformer.wpe.weight')!), r, 'wpe');
    within(std(gp.get('transformer.h.0.mlp.c_fc.weight')!), r, 'c_fc');
    within(std(gp.get('transformer.h.1.mlp.c_proj.weight')!), r / Math.sqrt(2 * GPT2.n_layer), 'mlp.c_proj');
    within(std(gp.get('transformer.h.1.attn.c_proj.weight')!), r / Math.sqrt(2 * GPT2.n_layer), 'attn.c_proj');
    expect(Array.from(gp.get('transformer.h.0.ln_1.weight')!.toArray()).every((x) => x === 1)).toBe(true);
    expect(Array.from(gp.get('transformer.h.0.attn.c_attn.bias')!.toArray()).every((x) => x === 0)).toBe(true);
    g.dispose();
    const l = tk.createModel({ ...LLAMA, initializer_range: r });
    const lp = new Map(l.namedParameters());
    for (const k of ['model.embed_tokens.weight', 'model.layers.0.mlp.gate_proj.weight', 'model.layers.1.self_attn.q_proj.weight', 'lm_head.weight'])
      within(std(lp.get(k)!), r, k);
    l.dispose();
    const b = tk.createModel({ ...BERT, initializer_range: r });
    const bp = new Map(b.namedParameters());
    for (const k of ['embeddings.word_embeddings.weight', 'encoder.layer.0.intermediate.dense.weight', 'pooler.dense.weight']) within(std(bp.get(k)!), r, k);
    b.dispose();
  });
});

describe('errors', () => {
  const ws = gpt2Weights(GPT2, new Prng(5));

  it('an unknown model_type lists the supported ones', () => {
    const dir = writeCheckpoint(fresh('unknown'), { ...GPT2, model_type: 'gpt_neox' }, ws);
    let msg = '';
    try {
      tk.loadModel(dir);
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toMatch(/gpt_neox/);
    for (const t of ['gpt2', 'llama', 'mistral', 'qwen2', 'bert']) expect(msg).toContain(t);
    expect(tk.SUPPORTED_MODEL_TYPES).toEqual(expect.arrayContaining(['gpt2', 'llama', 'mistral', 'qwen2', 'bert']));
    expect(() => tk.createModel({ model_type: 'gpt_neox' })).toThrow(/gpt_neox.*gpt2.*llama/);
    const noType = fresh('notype');
    writeCheckpoint(noType, { vocab_size: 37 }, ws);
    expect(() => tk.loadModel(noType)).toThrow(/model_type/);
  });

  it.each([
    ['gpt2', { ...GPT2 }, 'n_embd'],
    ['llama', { ...LLAMA }, 'num_attention_heads'],
    ['qwen2', { ...QWEN2 }, 'intermediate_size'],
    ['bert', { ...BERT }, 'max_position_embeddings'],
  ] as const)('%s: a missing config field is named', (_n, cfg, field) => {
    const c = { ...cfg } as Record<string, unknown>;
    delete c[field];
    const dir = writeCheckpoint(fresh('nofield'), c, ws);
    expect(() => tk.loadModel(dir)).toThrow(new RegExp(`'${field}'`));
    expect(() => tk.createModel(c)).toThrow(new RegExp(`'${field}'`));
  });

  it('a missing tensor is named by its checkpoint key', () => {
    const w = { ...ws };
    delete w['transformer.h.1.mlp.c_fc.bias'];
    const dir = writeCheckpoint(fresh('missing'), GPT2, w);
    expect(() => tk.loadModel(dir)).toThrow(/transformer\.h\.1\.mlp\.c_fc\.bias/);
    const lw = llamaWeights(LLAMA, new Prng(6));
    delete lw['lm_head.weight'];
    const ldir = writeCheckpoint(fresh('missing-head'), LLAMA, lw);
    expect(() => tk.loadModel(ldir)).toThrow(/lm_head\.weight/);
    // a missing tensor in a sharded checkpoint too
    const sw = llamaWeights(LLAMA, new Prng(7));
    delete sw['model.layers.0.self_attn.k_proj.weight'];
    const sdir = writeCheckpoint(fresh('missing-sharded'), LLAMA, sw, { shards: 3 });
    expect(() => tk.loadModel(sdir)).toThrow(/model\.layers\.0\.self_attn\.k_proj\.weight/);
  });

  it('a wrong shape names the key and both shapes', () => {
    const w = { ...ws };
    const k = 'transformer.h.0.attn.c_attn.weight';
    // stored [out, in] as a Linear would be, instead of Conv1D's [in, out]
    w[k] = { shape: [72, 24], data: ws[k]!.data };
    const dir = writeCheckpoint(fresh('shape'), GPT2, w);
    let msg = '';
    try {
      tk.loadModel(dir);
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toContain(k);
    expect(msg).toMatch(/\[72,\s*24\]/);
    expect(msg).toMatch(/\[24,\s*72\]/);
    const bw = bertWeights(BERT, new Prng(8), 'bert.');
    const bk = 'bert.encoder.layer.1.intermediate.dense.bias';
    bw[bk] = { shape: [41], data: new Float64Array(41) };
    const bdir = writeCheckpoint(fresh('shape-bert'), BERT, bw);
    expect(() => tk.loadModel(bdir)).toThrow(/bert\.encoder\.layer\.1\.intermediate\.dense\.bias.*\[41\].*\[40\]/);
  });

  it('a directory without config.json or weights is refused with the path', () => {
    const empty = fresh('empty');
    writeCheckpoint(empty, GPT2, {});
    rmSync(join(empty, 'model.safetensors'));
    expect(() => tk.loadModel(empty)).toThrow(/model\.safetensors/);
    rmSync(join(empty, 'config.json'));
    expect(() => tk.loadModel(empty)).toThrow(/config\.json/);
    const bad = fresh('badindex');
    writeCheckpoint(bad, GPT2, ws, { shards: 2 });
    writeFileSync(join(bad, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { 'transformer.wte.weight': '../x.safetensors' } }));
    expect(() => tk.loadModel(bad)).toThrow(/weight_map/);
  });

  it('unsupported architecture options fail at load time, by name', () => {
    const lw = llamaWeights(LLAMA, new Prng(10));
    expect(() => tk.loadModel(writeCheckpoint(fresh('gelu-llama'), { ...LLAMA, hidden_act: 'gelu' }, lw))).toThrow(/hidden_act 'gelu'/);
    expect(() => tk.createModel({ ...LLAMA, num_key_value_heads: 4 })).toThrow(/num_key_value_heads 4/);
    expect(() => tk.createModel({ ...BERT, hidden_act: 'quick_gelu' })).toThrow(/quick_gelu/);
    expect(() => tk.createModel({ ...BERT, position_embedding_type: 'relative_key' })).toThrow(/relative_key/);
    expect(() => tk.createModel({ ...BERT, num_attention_heads: 5 })).toThrow(/num_attention_heads 5/);
  });

  it('mistral refuses sequences longer than sliding_window instead of computing full attention', () => {
    const cfg = { ...LLAMA, model_type: 'mistral', rope_scaling: null, sliding_window: 6 } as LlamaCfg;
    const ws = llamaWeights(cfg, new Prng(12));
    const m = tk.loadModel(writeCheckpoint(fresh('mistral-sw'), cfg, ws)) as tk.LlamaForCausalLM;
    const ids = [1, 2, 3, 4, 5, 6];
    expect(relErr(tk.tidy(() => m.forward([ids]).toArray()), refLlama(cfg, ws, ids))).toBeLessThan(TOL);
    expect(() => m.forward([[...ids, 7]])).toThrow(/sliding_window = 6/);
    expect(() => m.generate([ids], { maxNewTokens: 3 })).toThrow(/sliding_window/);
    // qwen2 keeps full attention unless use_sliding_window is set
    const q = tk.createModel({ ...QWEN2, sliding_window: 4, use_sliding_window: false }) as tk.LlamaForCausalLM;
    expect(() => tk.tidy(() => q.forward([ids]))).not.toThrow();
    q.dispose();
    m.dispose();
  });

  it('legacy LayerNorm.gamma / LayerNorm.beta names load (and save under the current names)', () => {
    const bw = bertWeights(BERT, new Prng(13));
    const old: Weights = {};
    for (const [k, w] of Object.entries(bw)) old[k.replace(/LayerNorm\.weight$/, 'LayerNorm.gamma').replace(/LayerNorm\.bias$/, 'LayerNorm.beta')] = w;
    expect(Object.keys(old)).toContain('encoder.layer.0.output.LayerNorm.gamma');
    const m = tk.loadModel(writeCheckpoint(fresh('gamma'), BERT, old)) as tk.BertModel;
    expect(m.unusedCheckpointKeys).toEqual([]);
    const ids = [4, 8, 15, 16, 23];
    expect(relErr(outputs(m, ids), bertRef(bw, ids, ''))).toBeLessThan(TOL);
    const out = fresh('gamma-saved');
    m.save(out);
    expect(Object.keys(fileTensors(out)).sort()).toEqual(Object.keys(bw).sort());
    m.dispose();
  });

  it('extra head tensors and buffers are tolerated and reported', () => {
    const bw = bertWeights(BERT, new Prng(9), 'bert.');
    bw['cls.predictions.bias'] = { shape: [37], data: new Float64Array(37) };
    bw['bert.embeddings.position_ids'] = { shape: [1, 16], data: Float64Array.from({ length: 16 }, (_, i) => i) };
    const m = tk.loadModel(writeCheckpoint(fresh('extras'), BERT, bw)) as tk.BertModel;
    expect(m.unusedCheckpointKeys).toEqual(['cls.predictions.bias']);
    const ids = [1, 2, 3];
    const r = refBert(BERT, bw, [ids], undefined, undefined, 'bert.');
    expect(relErr(tk.tidy(() => m.forward([ids]).pooled.toArray()), r.pooled)).toBeLessThan(TOL);
    m.dispose();
  });
});
