// BERT-style encoder: word + position + token-type embeddings, post-LayerNorm
// blocks, GELU, pooler. Checkpoint layout (BertModel): embeddings.*,
// encoder.layer.N.*, pooler.dense; BertFor* checkpoints add a "bert." prefix.
import { Module } from '../nn/module.js';
import { Embedding, LayerNorm, Linear } from '../nn/layers.js';
import * as ops from '../ops/index.js';
import { Tensor, tensor } from '../tensor.js';
import { saveVia, type HFConfig } from './base.js';
import { applyKeyMap, attend, type CheckpointKeyMap, idsTensor, maskRows } from './common.js';

export interface BertConfig extends HFConfig {
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
  hidden_dropout_prob?: number;
  pad_token_id?: number;
  initializer_range?: number;
  position_embedding_type?: string;
}

const ACTIVATIONS = ['gelu', 'gelu_new', 'gelu_pytorch_tanh', 'relu', 'silu'];

function checkConfig(cfg: BertConfig): void {
  if (cfg.hidden_size % cfg.num_attention_heads !== 0)
    throw new Error(`bert: hidden_size ${cfg.hidden_size} is not a multiple of num_attention_heads ${cfg.num_attention_heads}`);
  const act = cfg.hidden_act ?? 'gelu';
  if (!ACTIVATIONS.includes(act)) throw new Error(`bert: hidden_act '${act}' is not supported (supported: ${ACTIVATIONS.join(', ')})`);
  const pe = cfg.position_embedding_type ?? 'absolute';
  if (pe !== 'absolute') throw new Error(`bert: position_embedding_type '${pe}' is not supported (absolute only)`);
}

export interface BertOutput {
  /** [B, T, C] */
  lastHiddenState: Tensor;
  /** tanh(dense(first token)), [B, C] */
  pooled: Tensor;
}

function activation(name: string | undefined, x: Tensor): Tensor {
  switch (name ?? 'gelu') {
    case 'gelu':
      return ops.geluErf(x);
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
      return ops.gelu(x);
    case 'relu':
      return ops.relu(x);
    case 'silu':
      return ops.silu(x);
    default:
      throw new Error(`bert: hidden_act '${name}' is not supported`);
  }
}

class BertEmbeddings extends Module {
  constructor(readonly cfg: BertConfig) {
    super();
    const C = cfg.hidden_size, std = cfg.initializer_range ?? 0.02;
    this.registerModule('word_embeddings', new Embedding(cfg.vocab_size, C, { std }));
    this.registerModule('position_embeddings', new Embedding(cfg.max_position_embeddings, C, { std }));
    this.registerModule('token_type_embeddings', new Embedding(cfg.type_vocab_size ?? 2, C, { std }));
    this.registerModule('LayerNorm', new LayerNorm(C, cfg.layer_norm_eps ?? 1e-12));
  }
}

class BertLayer extends Module {
  constructor(readonly cfg: BertConfig) {
    super();
    const C = cfg.hidden_size, eps = cfg.layer_norm_eps ?? 1e-12, std = cfg.initializer_range ?? 0.02;
    // names follow the checkpoint: attention.self.{query,key,value}, attention.output.{dense,LayerNorm}, ...
    this.registerModule('attention', new BertAttention(C, eps, std));
    this.registerModule('intermediate', new Dense('dense', C, cfg.intermediate_size, std));
    this.registerModule('output', new DenseNorm(cfg.intermediate_size, C, eps, std));
  }
  forward(x: Tensor, mask: number[][]): Tensor {
    const c = this.children as Record<string, Module>;
    const H = this.cfg.num_attention_heads;
    const a = (c.attention as BertAttention).forward(x, mask, H, this.training ? this.cfg.hidden_dropout_prob : 0);
    const inter = activation(this.cfg.hidden_act, (c.intermediate as Dense).forward(a));
    return (c.output as DenseNorm).forward(inter, a, this.training ? this.cfg.hidden_dropout_prob : 0);
  }
}

class Dense extends Module {
  constructor(name: string, inF: number, outF: number, std: number) {
    super();
    this.registerModule(name, new Linear(inF, outF, { std }));
  }
  forward(x: Tensor): Tensor {
    return (Object.values(this.children)[0] as Linear).forward(x);
  }
}

/** LayerNorm(dropout(dense(x)) + residual) */
class DenseNorm extends Module {
  constructor(inF: number, outF: number, eps: number, std: number) {
    super();
    this.registerModule('dense', new Linear(inF, outF, { std }));
    this.registerModule('LayerNorm', new LayerNorm(outF, eps));
  }
  forward(x: Tensor, residual: Tensor, p = 0): Tensor {
    let h = (this.children.dense as Linear).forward(x);
    if (p) h = ops.dropout(h, p);
    return (this.children.LayerNorm as LayerNorm).forward(ops.add(h, residual));
  }
}

class BertSelfAttention extends Module {
  constructor(C: number, std: number) {
    super();
    this.registerModule('query', new Linear(C, C, { std }));
    this.registerModule('key', new Linear(C, C, { std }));
    this.registerModule('value', new Linear(C, C, { std }));
  }
}

class BertAttention extends Module {
  constructor(C: number, eps: number, std: number) {
    super();
    this.registerModule('self', new BertSelfAttention(C, std));
    this.registerModule('output', new DenseNorm(C, C, eps, std));
  }
  forward(x: Tensor, mask: number[][], H: number, p = 0): Tensor {
    const [B, T, C] = x.shape as [number, number, number];
    const D = C / H;
    const s = (this.children.self as BertSelfAttention).children as Record<string, Linear>;
    const heads = (l: Linear) => ops.permute(ops.reshape(l.forward(x), [B, T, H, D]), [0, 2, 1, 3]);
    const a = attend(heads(s.query!), heads(s.key!), heads(s.value!), mask, false);
    const merged = ops.reshape(ops.permute(a, [0, 2, 1, 3]), [B, T, C]);
    return (this.children.output as DenseNorm).forward(merged, x, p);
  }
}

export class BertModel extends Module {
  readonly config: BertConfig;
  /** how parameter names map to the keys of the checkpoint the weights were loaded from (save() writes those keys) */
  checkpointKeyMap: CheckpointKeyMap = { strip: '', add: '' };
  /** checkpoint keys that tk.loadModel found no use for (e.g. the heads of BertFor* checkpoints) */
  unusedCheckpointKeys: string[] = [];
  /** the prefix of the loaded checkpoint's keys ("" or "bert.") */
  get checkpointPrefix(): string {
    return this.checkpointKeyMap.add;
  }
  tokenizer: import('../tokenizer/index.js').Tokenizer | null = null;
  constructor(config: BertConfig) {
    super();
    this.config = { ...config };
    checkConfig(this.config);
    this.registerModule('embeddings', new BertEmbeddings(this.config));
    const enc = new (class Encoder extends Module {
      constructor(cfg: BertConfig) {
        super();
        this.registerModule('layer', Array.from({ length: cfg.num_hidden_layers }, () => new BertLayer(cfg)));
      }
    })(this.config);
    this.registerModule('encoder', enc);
    this.registerModule('pooler', new Dense('dense', config.hidden_size, config.hidden_size, config.initializer_range ?? 0.02));
  }

  tiedKeys(): string[] {
    return [];
  }

  save(dir: string): void {
    saveVia(this, dir);
  }

  toCheckpointKey(name: string): string {
    return applyKeyMap(name, this.checkpointKeyMap);
  }

  /** inputIds [B, T]; attentionMask [B, T] (1 = token); tokenTypeIds [B, T] (default 0). */
  forward(inputIds: Tensor | number[][], opts: { attentionMask?: Tensor | number[][]; tokenTypeIds?: Tensor | number[][] } = {}): BertOutput {
    const device = this.device;
    const { t: ids, rows } = idsTensor(inputIds, device);
    const B = rows.length, T = rows[0]?.length ?? 0;
    if (T > this.config.max_position_embeddings) throw new RangeError(`bert: sequence longer than max_position_embeddings = ${this.config.max_position_embeddings}`);
    const mask = maskRows(opts.attentionMask, B, T);
    const e = this.children.embeddings as BertEmbeddings;
    const ec = e.children as Record<string, Module>;
    const pos = tensor(Int32Array.from({ length: B * T }, (_, i) => i % T), [B, T], { dtype: 'i32' });
    const tt = opts.tokenTypeIds ? idsTensor(opts.tokenTypeIds, device).t : tensor(new Int32Array(B * T), [B, T], { dtype: 'i32', device });
    let x = ops.add(ops.add((ec.word_embeddings as Embedding).forward(ids), (ec.position_embeddings as Embedding).forward(pos)), (ec.token_type_embeddings as Embedding).forward(tt));
    x = (ec.LayerNorm as LayerNorm).forward(x);
    if (this.training && this.config.hidden_dropout_prob) x = ops.dropout(x, this.config.hidden_dropout_prob);
    const layers = (this.children.encoder as Module & { children: Record<string, Module[]> }).children.layer as BertLayer[];
    for (const l of layers) x = l.forward(x, mask);
    const first = ops.reshape(ops.slice(x, 1, 0, 1), [B, this.config.hidden_size]);
    const d = (this.children.pooler as Dense).forward(first);
    const pooled = ops.tanh(d);
    return { lastHiddenState: x, pooled };
  }
}
