// Llama family (Llama 2/3, Mistral, Qwen2, SmolLM): RMSNorm, RoPE (with
// linear / llama3 rope_scaling), SwiGLU MLP, grouped-query attention and
// optional q/k/v bias (Qwen2). Checkpoint layout (LlamaForCausalLM):
// model.{embed_tokens,layers.N.*,norm}, lm_head (absent when tied).
import { Module } from '../nn/module.js';
import { Embedding, Linear, RMSNorm } from '../nn/layers.js';
import * as ops from '../ops/index.js';
import type { Tensor } from '../tensor.js';
import { PreTrainedModel, type ForwardOptions, type HFConfig } from './base.js';
import {
  applyRope,
  attend,
  type KeyMask,
  idsTensor,
  type KVCache,
  maskRows,
  positionIds,
  ropeInvFreq,
  type RopeScaling,
  ropeTables,
} from './common.js';

export interface LlamaConfig extends HFConfig {
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
  rope_scaling?: RopeScaling | null;
  max_position_embeddings?: number;
  tie_word_embeddings?: boolean;
  attention_bias?: boolean;
  mlp_bias?: boolean;
  hidden_act?: string;
  initializer_range?: number;
  /** Mistral; Qwen2 when use_sliding_window */
  sliding_window?: number | null;
  use_sliding_window?: boolean;
}

function dims(cfg: LlamaConfig) {
  const H = cfg.num_attention_heads;
  const Hkv = cfg.num_key_value_heads ?? H;
  const D = cfg.head_dim ?? cfg.hidden_size / H;
  if (!Number.isInteger(Hkv) || Hkv <= 0 || H % Hkv !== 0)
    throw new Error(`${cfg.model_type}: num_attention_heads ${H} is not a multiple of num_key_value_heads ${Hkv}`);
  if (!Number.isInteger(D) || D <= 0 || D % 2 !== 0)
    throw new Error(`${cfg.model_type}: head dimension ${D} (head_dim, or hidden_size / num_attention_heads) must be an even integer`);
  return { H, Hkv, D };
}

/** The sliding-window size in force, or 0: Mistral applies it when set; Qwen2 only with use_sliding_window. */
function slidingWindow(cfg: LlamaConfig): number {
  const w = cfg.sliding_window;
  if (typeof w !== 'number' || w <= 0) return 0;
  if (cfg.model_type === 'mistral') return w;
  if (cfg.model_type === 'qwen2' && cfg.use_sliding_window) return w;
  return 0;
}

class LlamaAttention extends Module {
  constructor(readonly cfg: LlamaConfig) {
    super();
    const { H, Hkv, D } = dims(cfg);
    const C = cfg.hidden_size;
    const qkvBias = cfg.model_type === 'qwen2' ? true : cfg.attention_bias ?? false;
    const std = cfg.initializer_range ?? 0.02;
    this.registerModule('q_proj', new Linear(C, H * D, { bias: qkvBias, std }));
    this.registerModule('k_proj', new Linear(C, Hkv * D, { bias: qkvBias, std }));
    this.registerModule('v_proj', new Linear(C, Hkv * D, { bias: qkvBias, std }));
    this.registerModule('o_proj', new Linear(H * D, C, { bias: cfg.model_type === 'qwen2' ? false : cfg.attention_bias ?? false, std }));
  }
  forward(x: Tensor, layer: number, keyMask: KeyMask, rope: { cos: Tensor; sin: Tensor }, cache: KVCache | undefined): Tensor {
    const [B, T] = x.shape as [number, number];
    const { H, Hkv, D } = dims(this.cfg);
    const c = this.children as Record<string, Linear>;
    const split = (y: Tensor, heads: number) => ops.permute(ops.reshape(y, [B, T, heads, D]), [0, 2, 1, 3]);
    const q = applyRope(split(c.q_proj!.forward(x), H), rope.cos, rope.sin);
    let k = applyRope(split(c.k_proj!.forward(x), Hkv), rope.cos, rope.sin);
    let v = split(c.v_proj!.forward(x), Hkv);
    if (cache) ({ k, v } = cache.update(layer, k, v));
    const a = attend(q, k, v, keyMask, true);
    return c.o_proj!.forward(ops.reshape(ops.permute(a, [0, 2, 1, 3]), [B, T, H * D]));
  }
}

class LlamaMLP extends Module {
  constructor(readonly cfg: LlamaConfig) {
    super();
    const C = cfg.hidden_size, I = cfg.intermediate_size, bias = cfg.mlp_bias ?? false, std = cfg.initializer_range ?? 0.02;
    const act = cfg.hidden_act ?? 'silu';
    if (act !== 'silu') throw new Error(`${cfg.model_type}: hidden_act '${act}' is not supported (silu only)`);
    this.registerModule('gate_proj', new Linear(C, I, { bias, std }));
    this.registerModule('up_proj', new Linear(C, I, { bias, std }));
    this.registerModule('down_proj', new Linear(I, C, { bias, std }));
  }
  forward(x: Tensor): Tensor {
    const c = this.children as Record<string, Linear>;
    return c.down_proj!.forward(ops.mul(ops.silu(c.gate_proj!.forward(x)), c.up_proj!.forward(x)));
  }
}

class LlamaDecoderLayer extends Module {
  constructor(readonly cfg: LlamaConfig) {
    super();
    const eps = cfg.rms_norm_eps ?? 1e-6;
    this.registerModule('self_attn', new LlamaAttention(cfg));
    this.registerModule('mlp', new LlamaMLP(cfg));
    this.registerModule('input_layernorm', new RMSNorm(cfg.hidden_size, eps));
    this.registerModule('post_attention_layernorm', new RMSNorm(cfg.hidden_size, eps));
  }
  forward(x: Tensor, layer: number, keyMask: KeyMask, rope: { cos: Tensor; sin: Tensor }, cache: KVCache | undefined): Tensor {
    const c = this.children as Record<string, Module>;
    const a = (c.self_attn as LlamaAttention).forward((c.input_layernorm as RMSNorm).forward(x), layer, keyMask, rope, cache);
    x = ops.add(x, a);
    return ops.add(x, (c.mlp as LlamaMLP).forward((c.post_attention_layernorm as RMSNorm).forward(x)));
  }
}

class LlamaBody extends Module {
  constructor(readonly cfg: LlamaConfig) {
    super();
    this.registerModule('embed_tokens', new Embedding(cfg.vocab_size, cfg.hidden_size, { std: cfg.initializer_range ?? 0.02 }));
    this.registerModule('layers', Array.from({ length: cfg.num_hidden_layers }, () => new LlamaDecoderLayer(cfg)));
    this.registerModule('norm', new RMSNorm(cfg.hidden_size, cfg.rms_norm_eps ?? 1e-6));
  }
}

export class LlamaForCausalLM extends PreTrainedModel {
  readonly config: LlamaConfig;
  private invFreq: Float64Array;
  constructor(config: LlamaConfig) {
    super();
    this.config = { ...config };
    this.registerModule('model', new LlamaBody(this.config));
    if (!this.config.tie_word_embeddings)
      this.registerModule('lm_head', new Linear(config.hidden_size, config.vocab_size, { bias: false, std: config.initializer_range ?? 0.02 }));
    this.invFreq = ropeInvFreq(dims(this.config).D, this.config.rope_theta ?? 10000, this.config.rope_scaling);
  }

  numLayers(): number {
    return this.config.num_hidden_layers;
  }

  override tiedKeys(): string[] {
    return this.config.tie_word_embeddings ? ['lm_head.weight'] : [];
  }

  hiddenStates(inputIds: Tensor | number[][], opts: ForwardOptions = {}): Tensor {
    const device = this.device;
    const { t: ids, rows } = idsTensor(inputIds, device);
    const B = rows.length, T = rows[0]?.length ?? 0;
    const stepMask = maskRows(opts.attentionMask, B, T);
    const cache = opts.cache;
    const rope = ropeTables(opts.positionIds ?? positionIds(cache ?? null, stepMask), this.invFreq, device);
    const body = this.children.model as LlamaBody;
    const bc = body.children as Record<string, Module | Module[]>;
    let x = (bc.embed_tokens as Embedding).forward(ids);
    const keyMask: KeyMask = cache ? stepMask.map((m, b) => [...cache.mask[b]!, ...m]) : stepMask;
    if (opts.segmentIds) {
      if (cache) throw new Error(`${this.config.model_type}: segmentIds (packed rows) cannot be combined with a KV cache`);
      keyMask.segmentIds = opts.segmentIds;
    }
    const window = slidingWindow(this.config);
    if (window && (keyMask[0]?.length ?? 0) > window)
      throw new RangeError(`${this.config.model_type}: sequences longer than sliding_window = ${window} are not supported (sliding-window attention is not implemented)`);
    (bc.layers as LlamaDecoderLayer[]).forEach((l, i) => (x = l.forward(x, i, keyMask, rope, cache)));
    if (cache) cache.mask = keyMask;
    return (bc.norm as RMSNorm).forward(x);
  }

  forward(inputIds: Tensor | number[][], opts: ForwardOptions = {}): Tensor {
    let x = this.hiddenStates(inputIds, opts);
    if (opts.lastOnly) x = ops.slice(x, 1, -1);
    const head = this.children.lm_head as Linear | undefined;
    if (head) return head.forward(x);
    const emb = ((this.children.model as LlamaBody).children.embed_tokens as Embedding).weight;
    return ops.matmul(x, emb, { transB: true });
  }
}
