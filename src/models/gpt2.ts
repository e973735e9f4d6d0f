// GPT-2: learned positions, pre-LayerNorm blocks, GELU (tanh), fused c_attn.
// Checkpoint layout (GPT2LMHeadModel): transformer.{wte,wpe,h.N.*,ln_f},
// Conv1D weights stored [in, out]; lm_head tied to wte.
import { Module } from '../nn/module.js';
import { Embedding, LayerNorm, Linear } from '../nn/layers.js';
import * as ops from '../ops/index.js';
import { Tensor, tensor } from '../tensor.js';
import { PreTrainedModel, type ForwardOptions, type HFConfig } from './base.js';
import { markTransient } from '../autograd.js';
import { attentionPacked } from '../ops/attention.js';
import { embeddingSum } from '../ops/nn.js';
import { attend, idsTensor, isFullKeyMask, type KeyMask, type KVCache, maskRows, positionIds } from './common.js';

export interface GPT2Config extends HFConfig {
  model_type: 'gpt2';
  vocab_size: number;
  n_positions: number;
  n_embd: number;
  n_layer: number;
  n_head: number;
  n_inner?: number | null;
  layer_norm_epsilon?: number;
  activation_function?: string;
  resid_pdrop?: number;
  embd_pdrop?: number;
  attn_pdrop?: number;
  tie_word_embeddings?: boolean;
  scale_attn_weights?: boolean;
  /** divide attention scores by (layer index + 1) as well */
  scale_attn_by_inverse_layer_idx?: boolean;
  initializer_range?: number;
}

const ACTIVATIONS = ['gelu_new', 'gelu_pytorch_tanh', 'gelu_fast', 'gelu', 'relu', 'silu'];

/** Checks what the constructor depends on, so that a bad config fails at load time, not at the first forward. */
function checkConfig(cfg: GPT2Config): void {
  if (cfg.n_embd % cfg.n_head !== 0) throw new Error(`gpt2: n_embd ${cfg.n_embd} is not a multiple of n_head ${cfg.n_head}`);
  const act = cfg.activation_function ?? 'gelu_new';
  if (!ACTIVATIONS.includes(act)) throw new Error(`gpt2: activation_function '${act}' is not supported (supported: ${ACTIVATIONS.join(', ')})`);
}

function initStd(cfg: GPT2Config): number {
  return cfg.initializer_range ?? 0.02;
}

function dropoutIf(m: Module, x: Tensor, p: number | undefined): Tensor {
  return m.training && p ? ops.dropout(x, p) : x;
}

/** residual + proj(x): fused into the GEMM for a plain Linear, composed for a wrapped one (an adapter). */
function project(proj: Module, x: Tensor, residual: Tensor | undefined): Tensor {
  if (!residual) return (proj as Linear).forward(x);
  if (proj instanceof Linear) return proj.forwardResidual(x, residual);
  return ops.add(residual, (proj as Linear).forward(x));
}

class GPT2Attention extends Module {
  readonly c_attn: Linear;
  readonly c_proj: Linear;
  constructor(readonly cfg: GPT2Config) {
    super();
    const C = cfg.n_embd, std = initStd(cfg);
    this.c_attn = this.registerModule('c_attn', new Linear(C, 3 * C, { fanInFanOut: true, std }));
    this.c_proj = this.registerModule('c_proj', new Linear(C, C, { fanInFanOut: true, std: std / Math.sqrt(2 * cfg.n_layer) }));
  }
  /**
   * With residual: residual + attention(x) (the addition fused into c_proj where it can be);
   * with norm: attention(norm(x)) (the normalization fused into c_attn where it can be).
   */
  forward(x: Tensor, layer: number, keyMask: KeyMask, cache: KVCache | undefined, residual?: Tensor, norm?: LayerNorm): Tensor {
    const [B, T, C] = x.shape as [number, number, number];
    const H = this.cfg.n_head, D = C / H;
    const attn = this.children.c_attn as Linear;
    const qkv = norm && attn instanceof Linear ? attn.forwardNormed(x, norm) : attn.forward(norm ? markTransient(norm.forward(x)) : x);  // [B, T, 3C]
    let scale = this.cfg.scale_attn_weights === false ? 1 : 1 / Math.sqrt(D);
    if (this.cfg.scale_attn_by_inverse_layer_idx) scale /= layer + 1;
    // no cache and every key real (training, scoring): split, attend and merge as one op
    if (!cache && isFullKeyMask(keyMask, T)) {
      const a = markTransient(attentionPacked(markTransient(qkv), H, { causal: true, scale }));
      return project(this.children.c_proj as Linear, a, residual);
    }
    const heads = (i: number) => ops.permute(ops.reshape(ops.slice(qkv, 2, i * C, (i + 1) * C), [B, T, H, D]), [0, 2, 1, 3]);
    const q = heads(0);
    let k = heads(1), v = heads(2);
    if (cache) ({ k, v } = cache.update(layer, k, v));
    const a = attend(q, k, v, keyMask, true, scale);  // [B, H, T, D]
    const merged = ops.reshape(ops.permute(a, [0, 2, 1, 3]), [B, T, C]);
    return project(this.children.c_proj as Linear, merged, residual);
  }
}

class GPT2MLP extends Module {
  constructor(readonly cfg: GPT2Config) {
    super();
    const C = cfg.n_embd, inner = cfg.n_inner ?? 4 * C, std = initStd(cfg);
    this.registerModule('c_fc', new Linear(C, inner, { fanInFanOut: true, std }));
    this.registerModule('c_proj', new Linear(inner, C, { fanInFanOut: true, std: std / Math.sqrt(2 * cfg.n_layer) }));
  }
  /**
   * With residual: residual + mlp(x) (the addition fused into c_proj where it can be);
   * with norm: mlp(norm(x)) (the normalization fused into c_fc where it can be).
   */
  forward(x: Tensor, residual?: Tensor, norm?: LayerNorm): Tensor {
    const act = this.cfg.activation_function ?? 'gelu_new';
    const fc = this.children.c_fc as Linear, proj = this.children.c_proj as Linear;
    if (norm && !(fc instanceof Linear)) {
      x = markTransient(norm.forward(x));
      norm = undefined;
    }
    // the tanh GELUs fused (into plain Linears, not ones an adapter wraps): applied as c_proj
    // reads c_fc's output, or else in c_fc's epilogue
    const tanhGelu = act !== 'relu' && act !== 'silu' && act !== 'gelu';
    if (tanhGelu && fc instanceof Linear && proj instanceof Linear)
      return proj.forwardGeluInput(markTransient(norm ? fc.forwardNormed(x, norm) : fc.forward(x)), residual);
    if (norm) x = markTransient(norm.forward(x));
    if (tanhGelu && fc instanceof Linear) return project(proj, fc.forwardGelu(x), residual);
    const h = fc.forward(x);
    // 'gelu' is the exact (erf) GELU in transformers' ACT2FN; the gelu_* variants are the tanh approximation
    const a = act === 'relu' ? ops.relu(h) : act === 'silu' ? ops.silu(h) : act === 'gelu' ? ops.geluErf(h) : ops.gelu(h);
    return project(this.children.c_proj as Linear, a, residual);
  }
}

class GPT2Block extends Module {
  constructor(readonly cfg: GPT2Config) {
    super();
    const eps = cfg.layer_norm_epsilon ?? 1e-5;
    this.registerModule('ln_1', new LayerNorm(cfg.n_embd, eps));
    this.registerModule('attn', new GPT2Attention(cfg));
    this.registerModule('ln_2', new LayerNorm(cfg.n_embd, eps));
    this.registerModule('mlp', new GPT2MLP(cfg));
  }
  forward(x: Tensor, layer: number, keyMask: KeyMask, cache: KVCache | undefined): Tensor {
    const c = this.children as Record<string, Module>;
    const attn = c.attn as GPT2Attention, mlp = c.mlp as GPT2MLP;
    if (!(this.training && this.cfg.resid_pdrop)) {
      // no dropout on the branches: each residual addition rides in its c_proj (the
      // intermediates are the block's own: backward() frees them as it passes)
      x = markTransient(attn.forward(x, layer, keyMask, cache, x, c.ln_1 as LayerNorm));
      return mlp.forward(x, x, c.ln_2 as LayerNorm);
    }
    const a = attn.forward((c.ln_1 as LayerNorm).forward(x), layer, keyMask, cache);
    x = ops.add(x, dropoutIf(this, a, this.cfg.resid_pdrop));
    const m = mlp.forward((c.ln_2 as LayerNorm).forward(x));
    return ops.add(x, dropoutIf(this, m, this.cfg.resid_pdrop));
  }
}

class GPT2Transformer extends Module {
  constructor(readonly cfg: GPT2Config) {
    super();
    // transformers initializes both embeddings with N(0, initializer_range²)
    this.registerModule('wte', new Embedding(cfg.vocab_size, cfg.n_embd, { std: initStd(cfg) }));
    this.registerModule('wpe', new Embedding(cfg.n_positions, cfg.n_embd, { std: initStd(cfg) }));
    this.registerModule('h', Array.from({ length: cfg.n_layer }, () => new GPT2Block(cfg)));
    this.registerModule('ln_f', new LayerNorm(cfg.n_embd, cfg.layer_norm_epsilon ?? 1e-5));
  }
}

export class GPT2LMHeadModel extends PreTrainedModel {
  readonly config: GPT2Config;
  constructor(config: GPT2Config) {
    super();
    this.config = { ...config };
    checkConfig(this.config);
    this.registerModule('transformer', new GPT2Transformer(this.config));
    if (this.config.tie_word_embeddings === false)
      this.registerModule('lm_head', new Linear(config.n_embd, config.vocab_size, { bias: false, std: initStd(this.config) }));
  }

  numLayers(): number {
    return this.config.n_layer;
  }

  override tiedKeys(): string[] {
    return this.config.tie_word_embeddings === false ? [] : ['lm_head.weight'];
  }

  private get t(): GPT2Transformer {
    return this.children.transformer as GPT2Transformer;
  }

  /** Hidden states after ln_f, [B, T, C]. */
  hiddenStates(inputIds: Tensor | number[][], opts: ForwardOptions = {}): Tensor {
    const device = this.device;
    const { t: ids, rows } = idsTensor(inputIds, device);
    const B = rows.length, T = rows[0]?.length ?? 0;
    const stepMask = maskRows(opts.attentionMask, B, T);
    const cache = opts.cache;
    const pos = opts.positionIds ?? positionIds(cache ?? null, stepMask);
    if (pos.some((r) => r.some((p) => p >= this.config.n_positions)))
      throw new RangeError(`gpt2: sequence longer than n_positions = ${this.config.n_positions}`);
    const tr = this.t.children as Record<string, Module | Module[]>;
    const posT = tensor(Int32Array.from(pos.flat()), [B, T], { dtype: 'i32', device });
    const wte = tr.wte as Embedding, wpe = tr.wpe as Embedding;
    let x =
      wte instanceof Embedding && wpe instanceof Embedding
        ? embeddingSum(wte.weight, ids, wpe.weight, posT)
        : ops.add(markTransient(wte.forward(ids)), markTransient(wpe.forward(posT)));
    x = dropoutIf(this, x, this.config.embd_pdrop);
    const keyMask: KeyMask = cache ? stepMask.map((m, b) => [...cache.mask[b]!, ...m]) : stepMask;
    if (opts.segmentIds) {
      if (cache) throw new Error('gpt2: segmentIds (packed rows) cannot be combined with a KV cache');
      keyMask.segmentIds = opts.segmentIds;
    }
    // each block's input is the model's own (the last block's output too: ln_f reads it)
    (tr.h as GPT2Block[]).forEach((blk, i) => (x = blk.forward(markTransient(x), i, keyMask, cache)));
    if (cache) cache.mask = keyMask;
    return (tr.ln_f as LayerNorm).forward(markTransient(x));
  }

  forward(inputIds: Tensor | number[][], opts: ForwardOptions = {}): Tensor {
    // the hidden states are this call's own (only the logits leave it)
    let x = markTransient(this.hiddenStates(inputIds, opts));
    if (opts.lastOnly) x = markTransient(ops.slice(x, 1, -1));
    const head = this.children.lm_head as Linear | undefined;
    const wte = (this.t.children.wte as Embedding).weight;
    return head ? head.forward(x) : ops.matmul(x, wte, { transB: true });
  }
}
