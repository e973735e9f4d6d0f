// Plain float64 reference forwards for the model tests, written from the
// Hugging Face definitions (modeling_gpt2.py, modeling_llama.py,
// modeling_bert.py) with loops over Float64Array, plus a seeded PRNG, random
// checkpoints in Hugging Face layout, and the rounding rules of bf16 / f16.
//
// Everything here reads weights by their checkpoint key, so the reference and
// the engine see exactly the same numbers: the weights are drawn, rounded to
// float32 (Math.fround), written with tk.saveSafetensors, and read back by
// tk.loadModel.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tk from 'tunekit';

// ---------------------------------------------------------------- PRNG
/** mulberry32 pairs for 53-bit uniforms, Box-Muller normals. */
export class Prng {
  private s: number;
  constructor(readonly seed: number) {
    this.s = seed >>> 0;
  }
  private u32(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** uniform in [0, 1) */
  next(): number {
    return ((this.u32() >>> 5) * 67108864 + (this.u32() >>> 6)) / 9007199254740992;
  }
  /** integer in [lo, hi) */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo));
  }
  normal(): number {
    let u = 0;
    while (u === 0) u = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }
  /** n values mean + std * N(0, 1), rounded to float32 */
  randn(n: number, std = 1, mean = 0): Float64Array {
    const a = new Float64Array(n);
    for (let i = 0; i < n; i++) a[i] = Math.fround(mean + std * this.normal());
    return a;
  }
  ints(n: number, lo: number, hi: number): number[] {
    return Array.from({ length: n }, () => this.int(lo, hi));
  }
}

/** A fresh seed per run (printed in assertion messages to reproduce a failure). */
export function freshSeed(): number {
  return process.env.TK_SEED ? Number(process.env.TK_SEED) : Math.floor(Math.random() * 0x7fffffff);
}

// ---------------------------------------------------------------- weights
export interface W {
  shape: number[];
  /** float32-representable values */
  data: Float64Array;
}
/** checkpoint key -> weight, in the order the keys were drawn */
export type Weights = Record<string, W>;

function put(ws: Weights, key: string, shape: number[], data: Float64Array): void {
  const n = shape.reduce((a, b) => a * b, 1);
  if (data.length !== n) throw new Error(`${key}: ${data.length} values for shape [${shape}]`);
  ws[key] = { shape, data };
}

/** weight of a layer with fan-in `fanIn`: N(0, 1/fanIn) keeps activations O(1) */
function mat(ws: Weights, rng: Prng, key: string, shape: number[], fanIn: number): void {
  put(ws, key, shape, rng.randn(shape[0]! * shape[1]!, 1 / Math.sqrt(fanIn)));
}
function vec(ws: Weights, rng: Prng, key: string, n: number, std = 0.1, mean = 0): void {
  put(ws, key, [n], rng.randn(n, std, mean));
}

export interface GPT2Cfg {
  model_type: 'gpt2';
  vocab_size: number;
  n_positions: number;
  n_embd: number;
  n_layer: number;
  n_head: number;
  n_inner?: number | null;
  layer_norm_epsilon?: number;
  activation_function?: string;
  tie_word_embeddings?: boolean;
  scale_attn_by_inverse_layer_idx?: boolean;
  [k: string]: unknown;
}

/**
 * GPT2LMHeadModel checkpoint keys (prefix 'transformer.'), or GPT2Model ones
 * (prefix '', as in the original openai-community/gpt2 files). Conv1D weights
 * are stored [in, out]. With `buffers`, the causal-mask buffers h.N.attn.bias
 * that old checkpoints carry are added too. The output projections are drawn
 * `gain` (default 3) times larger than 1/sqrt(fan-in) so that the blocks, not
 * the token's own (tied) embedding, decide the logits: otherwise greedy
 * generation just repeats the last token.
 */
export function gpt2Weights(cfg: GPT2Cfg, rng: Prng, prefix = 'transformer.', opts: { buffers?: boolean; gain?: number } = {}): Weights {
  const C = cfg.n_embd, V = cfg.vocab_size, P = cfg.n_positions, I = cfg.n_inner ?? 4 * C;
  const gain = opts.gain ?? 3;
  const ws: Weights = {};
  const p = (k: string) => prefix + k;
  put(ws, p('wte.weight'), [V, C], rng.randn(V * C, 0.7));
  put(ws, p('wpe.weight'), [P, C], rng.randn(P * C, 0.3));
  for (let l = 0; l < cfg.n_layer; l++) {
    const h = `h.${l}.`;
    vec(ws, rng, p(h + 'ln_1.weight'), C, 0.1, 1);
    vec(ws, rng, p(h + 'ln_1.bias'), C);
    mat(ws, rng, p(h + 'attn.c_attn.weight'), [C, 3 * C], C);
    vec(ws, rng, p(h + 'attn.c_attn.bias'), 3 * C);
    mat(ws, rng, p(h + 'attn.c_proj.weight'), [C, C], C / gain ** 2);
    vec(ws, rng, p(h + 'attn.c_proj.bias'), C);
    vec(ws, rng, p(h + 'ln_2.weight'), C, 0.1, 1);
    vec(ws, rng, p(h + 'ln_2.bias'), C);
    mat(ws, rng, p(h + 'mlp.c_fc.weight'), [C, I], C);
    vec(ws, rng, p(h + 'mlp.c_fc.bias'), I);
    mat(ws, rng, p(h + 'mlp.c_proj.weight'), [I, C], I / gain ** 2);
    vec(ws, rng, p(h + 'mlp.c_proj.bias'), C);
    if (opts.buffers) {
      const tri = new Float64Array(P * P);
      for (let i = 0; i < P; i++) for (let j = 0; j <= i; j++) tri[i * P + j] = 1;
      put(ws, p(h + 'attn.bias'), [1, 1, P, P], tri);
    }
  }
  vec(ws, rng, p('ln_f.weight'), C, 0.1, 1);
  vec(ws, rng, p('ln_f.bias'), C);
  if (cfg.tie_word_embeddings === false) mat(ws, rng, 'lm_head.weight', [V, C], C);
  return ws;
}

export interface RopeScalingCfg {
  type?: string;
  rope_type?: string;
  factor?: number;
  low_freq_factor?: number;
  high_freq_factor?: number;
  original_max_position_embeddings?: number;
}

export interface LlamaCfg {
  model_type: 'llama' | 'mistral' | 'qwen2';
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads?: number;
  head_dim?: number;
  rms_norm_eps?: number;
  rope_theta?: number;
  rope_scaling?: RopeScalingCfg | null;
  max_position_embeddings?: number;
  tie_word_embeddings?: boolean;
  attention_bias?: boolean;
  [k: string]: unknown;
}

function llamaDims(cfg: LlamaCfg) {
  const H = cfg.num_attention_heads, Hkv = cfg.num_key_value_heads ?? H;
  return { H, Hkv, D: cfg.head_dim ?? cfg.hidden_size / H };
}

/** LlamaForCausalLM / Qwen2ForCausalLM keys; Linear weights [out, in]; q/k/v bias for qwen2 (or attention_bias). */
export function llamaWeights(cfg: LlamaCfg, rng: Prng): Weights {
  const C = cfg.hidden_size, V = cfg.vocab_size, I = cfg.intermediate_size;
  const { H, Hkv, D } = llamaDims(cfg);
  const qkvBias = cfg.model_type === 'qwen2' || cfg.attention_bias === true;
  const ws: Weights = {};
  put(ws, 'model.embed_tokens.weight', [V, C], rng.randn(V * C, 0.7));
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    mat(ws, rng, p + 'self_attn.q_proj.weight', [H * D, C], C);
    if (qkvBias) vec(ws, rng, p + 'self_attn.q_proj.bias', H * D, 0.3);
    mat(ws, rng, p + 'self_attn.k_proj.weight', [Hkv * D, C], C);
    if (qkvBias) vec(ws, rng, p + 'self_attn.k_proj.bias', Hkv * D, 0.3);
    mat(ws, rng, p + 'self_attn.v_proj.weight', [Hkv * D, C], C);
    if (qkvBias) vec(ws, rng, p + 'self_attn.v_proj.bias', Hkv * D, 0.3);
    mat(ws, rng, p + 'self_attn.o_proj.weight', [C, H * D], H * D);
    if (cfg.attention_bias === true) vec(ws, rng, p + 'self_attn.o_proj.bias', C, 0.3);
    mat(ws, rng, p + 'mlp.gate_proj.weight', [I, C], C);
    mat(ws, rng, p + 'mlp.up_proj.weight', [I, C], C);
    mat(ws, rng, p + 'mlp.down_proj.weight', [C, I], I);
    vec(ws, rng, p + 'input_layernorm.weight', C, 0.1, 1);
    vec(ws, rng, p + 'post_attention_layernorm.weight', C, 0.1, 1);
  }
  vec(ws, rng, 'model.norm.weight', C, 0.1, 1);
  if (!tiedLlama(cfg)) mat(ws, rng, 'lm_head.weight', [V, C], C);
  return ws;
}

/** transformers' default for tie_word_embeddings is False for llama, mistral and qwen2 */
function tiedLlama(cfg: LlamaCfg): boolean {
  return cfg.tie_word_embeddings === true;
}

export interface BertCfg {
  model_type: 'bert';
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  intermediate_size: number;
  max_position_embeddings: number;
  type_vocab_size?: number;
  layer_norm_eps?: number;
  hidden_act?: string;
  [k: string]: unknown;
}

/** BertModel keys (prefix '') or the keys of BertFor* checkpoints (prefix 'bert.'). */
export function bertWeights(cfg: BertCfg, rng: Prng, prefix = ''): Weights {
  const C = cfg.hidden_size, I = cfg.intermediate_size;
  const ws: Weights = {};
  const p = (k: string) => prefix + k;
  put(ws, p('embeddings.word_embeddings.weight'), [cfg.vocab_size, C], rng.randn(cfg.vocab_size * C, 0.7));
  put(ws, p('embeddings.position_embeddings.weight'), [cfg.max_position_embeddings, C], rng.randn(cfg.max_position_embeddings * C, 0.3));
  const TV = cfg.type_vocab_size ?? 2;
  put(ws, p('embeddings.token_type_embeddings.weight'), [TV, C], rng.randn(TV * C, 0.3));
  vec(ws, rng, p('embeddings.LayerNorm.weight'), C, 0.1, 1);
  vec(ws, rng, p('embeddings.LayerNorm.bias'), C);
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const e = `encoder.layer.${l}.`;
    for (const n of ['query', 'key', 'value']) {
      mat(ws, rng, p(e + `attention.self.${n}.weight`), [C, C], C);
      vec(ws, rng, p(e + `attention.self.${n}.bias`), C, 0.3);
    }
    mat(ws, rng, p(e + 'attention.output.dense.weight'), [C, C], C);
    vec(ws, rng, p(e + 'attention.output.dense.bias'), C);
    vec(ws, rng, p(e + 'attention.output.LayerNorm.weight'), C, 0.1, 1);
    vec(ws, rng, p(e + 'attention.output.LayerNorm.bias'), C);
    mat(ws, rng, p(e + 'intermediate.dense.weight'), [I, C], C);
    vec(ws, rng, p(e + 'intermediate.dense.bias'), I, 0.3);
    mat(ws, rng, p(e + 'output.dense.weight'), [C, I], I);
    vec(ws, rng, p(e + 'output.dense.bias'), C);
    vec(ws, rng, p(e + 'output.LayerNorm.weight'), C, 0.1, 1);
    vec(ws, rng, p(e + 'output.LayerNorm.bias'), C);
  }
  mat(ws, rng, p('pooler.dense.weight'), [C, C], C);
  vec(ws, rng, p('pooler.dense.bias'), C);
  return ws;
}

/** The same weights with every value mapped by f (e.g. bf16 rounding). */
export function mapWeights(ws: Weights, f: (x: number) => number): Weights {
  const out: Weights = {};
  for (const [k, w] of Object.entries(ws)) out[k] = { shape: [...w.shape], data: w.data.map(f) };
  return out;
}

// ---------------------------------------------------------------- checkpoint files
export interface WriteOptions {
  /** dtype of the stored floats (default f32) */
  dtype?: 'f32' | 'bf16' | 'f16';
  /** split into this many shards with model.safetensors.index.json (default: one model.safetensors) */
  shards?: number;
  /** extra files, name -> text */
  files?: Record<string, string>;
}

export function shardName(i: number, n: number): string {
  return `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
}

function saveFile(path: string, ws: Weights, keys: string[], dtype: 'f32' | 'bf16' | 'f16'): number {
  const ts: Record<string, tk.Tensor> = {};
  let bytes = 0;
  try {
    for (const k of keys) {
      const w = ws[k]!;
      ts[k] = tk.tensor(Float32Array.from(w.data), w.shape, { dtype });
      bytes += w.data.length * (dtype === 'f32' ? 4 : 2);
    }
    tk.saveSafetensors(path, ts, { format: 'pt' });
  } finally {
    for (const t of Object.values(ts)) t.dispose();
  }
  return bytes;
}

/** Writes config.json and the weights the way transformers' save_pretrained lays them out. */
export function writeCheckpoint(dir: string, config: Record<string, unknown>, ws: Weights, opts: WriteOptions = {}): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  const dtype = opts.dtype ?? 'f32';
  const keys = Object.keys(ws);
  const n = opts.shards ?? 1;
  if (n === 1) {
    saveFile(join(dir, 'model.safetensors'), ws, keys, dtype);
  } else {
    const per = Math.ceil(keys.length / n);
    const weightMap: Record<string, string> = {};
    let total = 0;
    for (let i = 0; i < n; i++) {
      const part = keys.slice(i * per, (i + 1) * per);
      const name = shardName(i, n);
      total += saveFile(join(dir, name), ws, part, dtype);
      for (const k of part) weightMap[k] = name;
    }
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2));
  }
  for (const [name, text] of Object.entries(opts.files ?? {})) writeFileSync(join(dir, name), text);
  return dir;
}

// ---------------------------------------------------------------- float rounding
const f32buf = new DataView(new ArrayBuffer(4));

/** x (a float32 value) rounded to bfloat16, round to nearest even */
export function roundBf16(x: number): number {
  f32buf.setFloat32(0, x, true);
  let bits = f32buf.getUint32(0, true);
  bits = (bits + 0x7fff + ((bits >>> 16) & 1)) >>> 0;
  f32buf.setUint32(0, (bits & 0xffff0000) >>> 0, true);
  return f32buf.getFloat32(0, true);
}

/** x rounded to IEEE binary16 (10 mantissa bits, subnormals below 2^-14), round to nearest even */
export function roundF16(x: number): number {
  if (x === 0 || !Number.isFinite(x)) return x;
  const a = Math.abs(x);
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  if (2 ** (e + 1) <= a) e++;
  const ulp = 2 ** (Math.max(e, -14) - 10);
  const q = a / ulp;  // exact: ulp is a power of two
  let r = Math.floor(q);
  const frac = q - r;
  if (frac > 0.5 || (frac === 0.5 && r % 2 === 1)) r++;
  const v = r * ulp;
  return Math.sign(x) * (v > 65504 ? Infinity : v);
}

// ---------------------------------------------------------------- math
/** erf in float64: the all-positive series 2/√π e^{-x²} Σ 2ⁿx^{2n+1}/(1·3···(2n+1)) below 3, the continued fraction of erfc above. */
export function erf(x: number): number {
  if (x < 0) return -erf(-x);
  if (x < 3) return erfSeries(x);
  return 1 - erfcContinuedFraction(x);
}

export function erfSeries(x: number): number {
  let term = x, sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (2 * x * x) / (2 * n + 1);
    sum += term;
    if (term < 1e-17 * sum) break;
  }
  return (2 / Math.sqrt(Math.PI)) * Math.exp(-x * x) * sum;
}

/** erfc(x) = e^{-x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))), x > 0 */
export function erfcContinuedFraction(x: number): number {
  let f = x;
  for (let k = 120; k >= 1; k--) f = x + k / 2 / f;
  return Math.exp(-x * x) / Math.sqrt(Math.PI) / f;
}

export const geluErf = (x: number): number => 0.5 * x * (1 + erf(x / Math.SQRT2));
export const geluTanh = (x: number): number => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
export const silu = (x: number): number => x / (1 + Math.exp(-x));

/** log-softmax of each row of a [rows, V] array */
export function logSoftmax(x: Float64Array, V: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / V; r++) {
    let m = -Infinity;
    for (let v = 0; v < V; v++) m = Math.max(m, x[r * V + v]!);
    let z = 0;
    for (let v = 0; v < V; v++) z += Math.exp(x[r * V + v]! - m);
    const lz = m + Math.log(z);
    for (let v = 0; v < V; v++) out[r * V + v] = x[r * V + v]! - lz;
  }
  return out;
}

/** y[t, o] = Σ_i x[t, i] W[o, i] + b[o]  (torch Linear, W [out, in]) */
function linear(x: Float64Array, T: number, w: W, b?: W): Float64Array {
  const [O, I] = w.shape as [number, number];
  const y = new Float64Array(T * O);
  for (let t = 0; t < T; t++)
    for (let o = 0; o < O; o++) {
      let s = b ? b.data[o]! : 0;
      for (let i = 0; i < I; i++) s += x[t * I + i]! * w.data[o * I + i]!;
      y[t * O + o] = s;
    }
  return y;
}

/** y[t, o] = Σ_i x[t, i] W[i, o] + b[o]  (GPT-2 Conv1D, W [in, out]) */
function conv1d(x: Float64Array, T: number, w: W, b: W): Float64Array {
  const [I, O] = w.shape as [number, number];
  const y = new Float64Array(T * O);
  for (let t = 0; t < T; t++)
    for (let o = 0; o < O; o++) {
      let s = b.data[o]!;
      for (let i = 0; i < I; i++) s += x[t * I + i]! * w.data[i * O + o]!;
      y[t * O + o] = s;
    }
  return y;
}

function layerNorm(x: Float64Array, T: number, C: number, w: W, b: W, eps: number): Float64Array {
  const y = new Float64Array(T * C);
  for (let t = 0; t < T; t++) {
    let mean = 0;
    for (let c = 0; c < C; c++) mean += x[t * C + c]!;
    mean /= C;
    let v = 0;
    for (let c = 0; c < C; c++) v += (x[t * C + c]! - mean) ** 2;
    v /= C;
    const r = 1 / Math.sqrt(v + eps);
    for (let c = 0; c < C; c++) y[t * C + c] = (x[t * C + c]! - mean) * r * w.data[c]! + b.data[c]!;
  }
  return y;
}

function rmsNorm(x: Float64Array, T: number, C: number, w: W, eps: number): Float64Array {
  const y = new Float64Array(T * C);
  for (let t = 0; t < T; t++) {
    let ms = 0;
    for (let c = 0; c < C; c++) ms += x[t * C + c]! ** 2;
    const r = 1 / Math.sqrt(ms / C + eps);
    for (let c = 0; c < C; c++) y[t * C + c] = x[t * C + c]! * r * w.data[c]!;
  }
  return y;
}

/**
 * Multi-head attention on row-major [T, H*D] queries and [S, Hkv*D] keys and
 * values; query head h reads kv head floor(h / (H / Hkv)) (repeat_kv).
 * allowed(t, j): whether query t may see key j.
 */
function attention(
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  T: number,
  S: number,
  H: number,
  Hkv: number,
  D: number,
  scale: number,
  allowed: (t: number, j: number) => boolean,
): Float64Array {
  const out = new Float64Array(T * H * D);
  const G = H / Hkv;
  const s = new Float64Array(S);
  for (let h = 0; h < H; h++) {
    const g = Math.floor(h / G);
    for (let t = 0; t < T; t++) {
      let m = -Infinity;
      for (let j = 0; j < S; j++) {
        if (!allowed(t, j)) {
          s[j] = -Infinity;
          continue;
        }
        let d = 0;
        for (let i = 0; i < D; i++) d += q[(t * H + h) * D + i]! * k[(j * Hkv + g) * D + i]!;
        s[j] = d * scale;
        m = Math.max(m, s[j]!);
      }
      let z = 0;
      for (let j = 0; j < S; j++) {
        s[j] = s[j] === -Infinity ? 0 : Math.exp(s[j]! - m);
        z += s[j]!;
      }
      for (let j = 0; j < S; j++) {
        if (!s[j]) continue;
        const p = s[j]! / z;
        for (let i = 0; i < D; i++) out[(t * H + h) * D + i] += p * v[(j * Hkv + g) * D + i]!;
      }
    }
  }
  return out;
}

function addInto(x: Float64Array, y: Float64Array): void {
  for (let i = 0; i < x.length; i++) x[i] += y[i]!;
}

function get(ws: Weights, key: string): W {
  const w = ws[key];
  if (!w) throw new Error(`reference: no weight '${key}'`);
  return w;
}

/** logits [T, V] from the final hidden states [T, C] and a [V, C] head */
function head(x: Float64Array, T: number, w: W): Float64Array {
  return linear(x, T, w);
}

// ---------------------------------------------------------------- GPT-2
/** GPT2LMHeadModel logits [T, V] of one unpadded sequence (positions 0..T-1). */
export function refGpt2(cfg: GPT2Cfg, ws: Weights, ids: number[], prefix = 'transformer.'): Float64Array {
  const C = cfg.n_embd, H = cfg.n_head, D = C / H, T = ids.length;
  const eps = cfg.layer_norm_epsilon ?? 1e-5;
  const w = (k: string) => get(ws, prefix + k);
  const wte = w('wte.weight'), wpe = w('wpe.weight');
  let x = new Float64Array(T * C);
  for (let t = 0; t < T; t++) for (let c = 0; c < C; c++) x[t * C + c] = wte.data[ids[t]! * C + c]! + wpe.data[t * C + c]!;
  const act = cfg.activation_function ?? 'gelu_new';
  // transformers' ACT2FN: 'gelu' is exact, gelu_new / gelu_pytorch_tanh / gelu_fast the tanh approximation
  const f = act === 'relu' ? (v: number) => Math.max(v, 0) : act === 'silu' ? silu : act === 'gelu' ? geluErf : geluTanh;
  for (let l = 0; l < cfg.n_layer; l++) {
    const p = `h.${l}.`;
    const h1 = layerNorm(x, T, C, w(p + 'ln_1.weight'), w(p + 'ln_1.bias'), eps);
    const qkv = conv1d(h1, T, w(p + 'attn.c_attn.weight'), w(p + 'attn.c_attn.bias'));
    const q = new Float64Array(T * C), k = new Float64Array(T * C), v = new Float64Array(T * C);
    for (let t = 0; t < T; t++)
      for (let c = 0; c < C; c++) {
        q[t * C + c] = qkv[t * 3 * C + c]!;
        k[t * C + c] = qkv[t * 3 * C + C + c]!;
        v[t * C + c] = qkv[t * 3 * C + 2 * C + c]!;
      }
    const scale = 1 / Math.sqrt(D) / (cfg.scale_attn_by_inverse_layer_idx ? l + 1 : 1);
    const a = attention(q, k, v, T, T, H, H, D, scale, (t, j) => j <= t);
    addInto(x, conv1d(a, T, w(p + 'attn.c_proj.weight'), w(p + 'attn.c_proj.bias')));
    const h2 = layerNorm(x, T, C, w(p + 'ln_2.weight'), w(p + 'ln_2.bias'), eps);
    const m = conv1d(h2, T, w(p + 'mlp.c_fc.weight'), w(p + 'mlp.c_fc.bias')).map(f);
    addInto(x, conv1d(m, T, w(p + 'mlp.c_proj.weight'), w(p + 'mlp.c_proj.bias')));
  }
  x = layerNorm(x, T, C, w('ln_f.weight'), w('ln_f.bias'), eps);
  return head(x, T, cfg.tie_word_embeddings === false ? get(ws, 'lm_head.weight') : wte);
}

// ---------------------------------------------------------------- Llama
/**
 * inv_freq as transformers' ROPE_INIT_FUNCTIONS compute it:
 * default 1 / theta^(2i/D); linear divides by factor (same as dividing the
 * positions); llama3 (_compute_llama3_parameters) divides the low
 * frequencies by factor, keeps the high ones and interpolates in between.
 * Also returns which llama3 branch each frequency took.
 */
export function refInvFreq(D: number, theta: number, scaling?: RopeScalingCfg | null): { inv: Float64Array; branch: string[] } {
  const half = D / 2;
  const inv = new Float64Array(half);
  const branch = new Array<string>(half).fill('default');
  for (let i = 0; i < half; i++) inv[i] = 1 / theta ** ((2 * i) / D);
  const kind = scaling ? scaling.rope_type ?? scaling.type : undefined;
  if (!scaling || !kind || kind === 'default') return { inv, branch };
  const factor = scaling.factor!;
  if (kind === 'linear') return { inv: inv.map((f) => f / factor), branch: branch.fill('linear') };
  if (kind !== 'llama3') throw new Error(`reference: rope type ${kind}`);
  const lowFF = scaling.low_freq_factor!, highFF = scaling.high_freq_factor!, old = scaling.original_max_position_embeddings!;
  const lowWavelen = old / lowFF, highWavelen = old / highFF;
  const out = new Float64Array(half);
  for (let i = 0; i < half; i++) {
    const wavelen = (2 * Math.PI) / inv[i]!;
    // inv_freq_llama = where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    const base = wavelen > lowWavelen ? inv[i]! / factor : inv[i]!;
    // is_medium_freq = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    const medium = !(wavelen < highWavelen) && !(wavelen > lowWavelen);
    if (medium) {
      const smooth = (old / wavelen - lowFF) / (highFF - lowFF);
      out[i] = ((1 - smooth) * base) / factor + smooth * base;
      branch[i] = 'medium';
    } else {
      out[i] = base;
      branch[i] = wavelen > lowWavelen ? 'low' : 'high';
    }
  }
  return { inv: out, branch };
}

/** rotate-half RoPE in place on [T, heads*D]: x*cos + rotate_half(x)*sin with emb = cat(freqs, freqs) */
function rope(x: Float64Array, T: number, heads: number, D: number, pos: number[], inv: Float64Array): void {
  const half = D / 2;
  for (let t = 0; t < T; t++)
    for (let h = 0; h < heads; h++) {
      const o = (t * heads + h) * D;
      const y = new Float64Array(D);
      for (let d = 0; d < D; d++) {
        const ang = pos[t]! * inv[d % half]!;
        const rot = d < half ? -x[o + d + half]! : x[o + d - half]!;
        y[d] = x[o + d]! * Math.cos(ang) + rot * Math.sin(ang);
      }
      x.set(y, o);
    }
}

/** LlamaForCausalLM (and Mistral, Qwen2) logits [T, V] of one unpadded sequence. */
export function refLlama(cfg: LlamaCfg, ws: Weights, ids: number[]): Float64Array {
  const C = cfg.hidden_size, T = ids.length;
  const { H, Hkv, D } = llamaDims(cfg);
  const eps = cfg.rms_norm_eps ?? 1e-6;
  const { inv } = refInvFreq(D, cfg.rope_theta ?? 10000, cfg.rope_scaling);
  const pos = Array.from({ length: T }, (_, t) => t);
  const emb = get(ws, 'model.embed_tokens.weight');
  let x = new Float64Array(T * C);
  for (let t = 0; t < T; t++) for (let c = 0; c < C; c++) x[t * C + c] = emb.data[ids[t]! * C + c]!;
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    const w = (k: string) => get(ws, p + k);
    const b = (k: string) => ws[p + k];
    const h = rmsNorm(x, T, C, w('input_layernorm.weight'), eps);
    const q = linear(h, T, w('self_attn.q_proj.weight'), b('self_attn.q_proj.bias'));
    const k = linear(h, T, w('self_attn.k_proj.weight'), b('self_attn.k_proj.bias'));
    const v = linear(h, T, w('self_attn.v_proj.weight'), b('self_attn.v_proj.bias'));
    rope(q, T, H, D, pos, inv);
    rope(k, T, Hkv, D, pos, inv);
    const a = attention(q, k, v, T, T, H, Hkv, D, 1 / Math.sqrt(D), (t, j) => j <= t);
    addInto(x, linear(a, T, w('self_attn.o_proj.weight'), b('self_attn.o_proj.bias')));
    const h2 = rmsNorm(x, T, C, w('post_attention_layernorm.weight'), eps);
    const g = linear(h2, T, w('mlp.gate_proj.weight'));
    const u = linear(h2, T, w('mlp.up_proj.weight'));
    for (let i = 0; i < g.length; i++) g[i] = silu(g[i]!) * u[i]!;
    addInto(x, linear(g, T, w('mlp.down_proj.weight')));
  }
  x = rmsNorm(x, T, C, get(ws, 'model.norm.weight'), eps);
  return head(x, T, tiedLlama(cfg) ? emb : get(ws, 'lm_head.weight'));
}

// ---------------------------------------------------------------- BERT
export interface BertRef {
  /** [B, T, C] */
  last: Float64Array;
  /** [B, C] */
  pooled: Float64Array;
}

/**
 * BertModel: word + position + token-type embeddings, LayerNorm, post-LN
 * blocks with exact (erf) GELU, tanh pooler on the first token. Padded keys
 * (mask 0) get no attention weight; padded query rows are computed as
 * transformers computes them (attending to the real keys).
 */
export function refBert(cfg: BertCfg, ws: Weights, ids: number[][], mask?: number[][], tokenTypes?: number[][], prefix = ''): BertRef {
  const C = cfg.hidden_size, H = cfg.num_attention_heads, D = C / H;
  const B = ids.length, T = ids[0]!.length;
  const eps = cfg.layer_norm_eps ?? 1e-12;
  const w = (k: string) => get(ws, prefix + k);
  const act = cfg.hidden_act ?? 'gelu';
  if (act !== 'gelu') throw new Error('reference: bert hidden_act gelu only');
  const last = new Float64Array(B * T * C), pooled = new Float64Array(B * C);
  for (let bi = 0; bi < B; bi++) {
    const we = w('embeddings.word_embeddings.weight'), pe = w('embeddings.position_embeddings.weight'), te = w('embeddings.token_type_embeddings.weight');
    let x = new Float64Array(T * C);
    for (let t = 0; t < T; t++) {
      const tt = tokenTypes?.[bi]![t] ?? 0;
      for (let c = 0; c < C; c++) x[t * C + c] = we.data[ids[bi]![t]! * C + c]! + pe.data[t * C + c]! + te.data[tt * C + c]!;
    }
    x = layerNorm(x, T, C, w('embeddings.LayerNorm.weight'), w('embeddings.LayerNorm.bias'), eps);
    const keyOk = (j: number) => (mask ? mask[bi]![j] !== 0 : true);
    for (let l = 0; l < cfg.num_hidden_layers; l++) {
      const e = `encoder.layer.${l}.`;
      const lin = (n: string, inp: Float64Array) => linear(inp, T, w(e + n + '.weight'), w(e + n + '.bias'));
      const q = lin('attention.self.query', x), k = lin('attention.self.key', x), v = lin('attention.self.value', x);
      const ctx = attention(q, k, v, T, T, H, H, D, 1 / Math.sqrt(D), (_t, j) => keyOk(j));
      const ao = lin('attention.output.dense', ctx);
      addInto(ao, x);
      const a = layerNorm(ao, T, C, w(e + 'attention.output.LayerNorm.weight'), w(e + 'attention.output.LayerNorm.bias'), eps);
      const inter = lin('intermediate.dense', a).map(geluErf);
      const o = lin('output.dense', inter);
      addInto(o, a);
      x = layerNorm(o, T, C, w(e + 'output.LayerNorm.weight'), w(e + 'output.LayerNorm.bias'), eps);
    }
    last.set(x, bi * T * C);
    const p = linear(x.subarray(0, C), 1, w('pooler.dense.weight'), w('pooler.dense.bias')).map(Math.tanh);
    pooled.set(p, bi * C);
  }
  return { last, pooled };
}

// ---------------------------------------------------------------- comparison
/** ||a - b|| / ||b|| */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) {
    const d = a[i]! - b[i]!;
    if (Number.isNaN(d)) return Infinity;
    num += d * d;
    den += b[i]! * b[i]!;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

/** rows [t0, t1) of a [*, T, V] array for batch row b */
export function rows(a: ArrayLike<number>, b: number, T: number, V: number, t0: number, t1: number): Float64Array {
  return Float64Array.from({ length: (t1 - t0) * V }, (_, i) => a[(b * T + t0) * V + i]!);
}

/** f32 vs f64 tolerance on relative norm error */
export const TOL = 1e-4;
