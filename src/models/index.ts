// tk.createModel, tk.loadModel and model.save: Hugging Face model directories
// (config.json, model.safetensors or sharded safetensors with an index,
// generation_config.json, tokenizer files).
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { native } from '../native/binding.js';
import { withEmptyInit } from '../nn/init.js';
import { loadSafetensors, readSafetensorsHeader, saveSafetensors } from '../io/index.js';
import { Tensor } from '../tensor.js';
import { loadTokenizerSync } from '../tokenizer/index.js';
import { setSaveImpl, type HFConfig, type PreTrainedModel } from './base.js';
import { BertModel, type BertConfig } from './bert.js';
import { GPT2LMHeadModel, type GPT2Config } from './gpt2.js';
import { LlamaForCausalLM, type LlamaConfig } from './llama.js';
import { applyKeyMap, type CheckpointKeyMap } from './common.js';

export { PreTrainedModel } from './base.js';
export type { ForwardOptions, GenerateOptions, GenerationOutput, StreamEvent, HFConfig } from './base.js';
export { GPT2LMHeadModel, type GPT2Config } from './gpt2.js';
export { LlamaForCausalLM, type LlamaConfig } from './llama.js';
export { BertModel, type BertConfig, type BertOutput } from './bert.js';
export { KVCache, type CheckpointKeyMap } from './common.js';

export type AnyModel = GPT2LMHeadModel | LlamaForCausalLM | BertModel;

const ARCHITECTURES: Record<string, { cls: string; build: (c: HFConfig) => AnyModel }> = {
  gpt2: { cls: 'GPT2LMHeadModel', build: (c) => new GPT2LMHeadModel(c as GPT2Config) },
  llama: { cls: 'LlamaForCausalLM', build: (c) => new LlamaForCausalLM(c as LlamaConfig) },
  mistral: { cls: 'MistralForCausalLM', build: (c) => new LlamaForCausalLM(c as LlamaConfig) },
  qwen2: { cls: 'Qwen2ForCausalLM', build: (c) => new LlamaForCausalLM(c as LlamaConfig) },
  bert: { cls: 'BertModel', build: (c) => new BertModel(c as BertConfig) },
};

export const SUPPORTED_MODEL_TYPES = Object.keys(ARCHITECTURES);

const REQUIRED: Record<string, string[]> = {
  gpt2: ['vocab_size', 'n_positions', 'n_embd', 'n_layer', 'n_head'],
  llama: ['vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads'],
  bert: ['vocab_size', 'hidden_size', 'num_hidden_layers', 'num_attention_heads', 'intermediate_size', 'max_position_embeddings'],
};

function validateConfig(config: unknown, where: string): HFConfig {
  if (!config || typeof config !== 'object' || Array.isArray(config)) throw new Error(`${where}: config must be a JSON object`);
  const c = config as HFConfig;
  if (typeof c.model_type !== 'string') throw new Error(`${where}: missing field 'model_type' (supported: ${SUPPORTED_MODEL_TYPES.join(', ')})`);
  if (!ARCHITECTURES[c.model_type])
    throw new Error(`${where}: model_type '${c.model_type}' is not supported (supported: ${SUPPORTED_MODEL_TYPES.join(', ')})`);
  const family = c.model_type === 'mistral' || c.model_type === 'qwen2' ? 'llama' : c.model_type;
  for (const f of REQUIRED[family]!) {
    const v = c[f];
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new Error(`${where}: field '${f}' must be a positive integer, got ${JSON.stringify(v)}`);
  }
  return c;
}

/** A randomly initialized model from a config object shaped like config.json (as transformers' from_config). */
export function createModel(config: HFConfig | Record<string, unknown>): AnyModel {
  return ARCHITECTURES[validateConfig(config, 'createModel').model_type]!.build(config as HFConfig);
}

// ---------------------------------------------------------------- key mapping
type KeyMap = CheckpointKeyMap;

const BUFFERS = [/\.attn\.bias$/, /\.attn\.masked_bias$/, /position_ids$/, /rotary_emb\.inv_freq$/];

const toCkpt = applyKeyMap;

function chooseKeyMap(names: string[], keys: Set<string>): KeyMap {
  const firsts = [...new Set(names.map((n) => n.split('.')[0]! + '.'))];
  const candidates: KeyMap[] = [{ strip: '', add: '' }];
  for (const f of firsts) candidates.push({ strip: f, add: '' });
  for (const p of ['bert.', 'transformer.', 'model.']) candidates.push({ strip: '', add: p });
  let best = candidates[0]!, bestHits = -1;
  for (const c of candidates) {
    const hits = names.filter((n) => keys.has(toCkpt(n, c)) || keys.has(legacy(toCkpt(n, c)))).length;
    if (hits > bestHits) {
      best = c;
      bestHits = hits;
    }
  }
  return best;
}

/** LayerNorm weight/bias were called gamma/beta in old checkpoints */
function legacy(key: string): string {
  return key.replace(/LayerNorm\.weight$/, 'LayerNorm.gamma').replace(/LayerNorm\.bias$/, 'LayerNorm.beta');
}

// ---------------------------------------------------------------- loading
export interface LoadModelOptions {
  device?: 'cpu' | 'cuda';
  dtype?: 'f32';
  /** load tokenizer.json when present (default true) */
  tokenizer?: boolean;
}

function readJson(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`${path}: cannot read (${(e as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: invalid JSON (${(e as Error).message})`);
  }
}

/** Loads a Hugging Face model directory. */
export function loadModel(dir: string, opts: LoadModelOptions = {}): AnyModel {
  if (opts.device === 'cuda' && !native.backendInfo().cuda.available)
    throw new Error(`loadModel: CUDA is not available: ${native.backendInfo().cuda.reason ?? 'unknown'}`);
  if (opts.dtype && opts.dtype !== 'f32') throw new TypeError(`loadModel: dtype '${opts.dtype}' is not supported on the CPU (f32)`);
  const cfgPath = join(dir, 'config.json');
  if (!existsSync(cfgPath)) throw new Error(`${cfgPath}: not found (a model directory needs config.json)`);
  const config = validateConfig(readJson(cfgPath), cfgPath);
  const model = withEmptyInit(() => ARCHITECTURES[config.model_type]!.build(config));
  try {
    // which file holds each key
    const files = new Map<string, string[]>();
    const single = join(dir, 'model.safetensors');
    const index = join(dir, 'model.safetensors.index.json');
    if (existsSync(single)) {
      files.set(single, [...readSafetensorsHeader(single).tensors.keys()]);
    } else if (existsSync(index)) {
      const idx = readJson(index) as { weight_map?: Record<string, string> };
      if (!idx || typeof idx.weight_map !== 'object') throw new Error(`${index}: missing field 'weight_map'`);
      for (const [k, f] of Object.entries(idx.weight_map)) {
        if (typeof f !== 'string' || f.includes('/') || f.includes('..')) throw new Error(`${index}: weight_map['${k}'] is not a file name in the directory`);
        const p = join(dir, f);
        if (!files.has(p)) files.set(p, []);
        files.get(p)!.push(k);
      }
    } else if (existsSync(join(dir, 'pytorch_model.bin'))) {
      throw new Error(`${dir}: only safetensors checkpoints are supported (found pytorch_model.bin; convert it with safetensors)`);
    } else {
      throw new Error(`${dir}: no model.safetensors or model.safetensors.index.json`);
    }
    const allKeys = new Set([...files.values()].flat());
    const named = model.namedParameters();
    const map = chooseKeyMap(
      named.map(([n]) => n),
      allKeys,
    );
    model.checkpointKeyMap = map;
    const tied = new Set(model.tiedKeys());
    const wanted = new Map<string, string>();  // ckpt key -> param name
    const missing: string[] = [];
    for (const [n] of named) {
      const k = toCkpt(n, map);
      if (allKeys.has(k)) wanted.set(k, n);
      else if (allKeys.has(legacy(k))) wanted.set(legacy(k), n);
      else if (!tied.has(n)) missing.push(k);
    }
    if (missing.length) throw new Error(`${dir}: checkpoint is missing ${missing.length} tensor(s): ${missing.slice(0, 8).join(', ')}${missing.length > 8 ? ', ...' : ''}`);
    for (const [file, keys] of files) {
      const need = keys.filter((k) => wanted.has(k));
      if (!need.length) continue;
      const loaded = loadSafetensors(file, { names: need, dtype: 'f32' });
      for (const k of need) {
        const name = wanted.get(k)!;
        const slot = model.findParameter(name)!;
        const old = slot.module.getParam(slot.key)!;
        const t = loaded[k]!;
        if (t.shape.length !== old.shape.length || t.shape.some((d, i) => d !== old.shape[i])) {
          for (const x of Object.values(loaded)) x.dispose();
          throw new Error(`${file}: tensor '${k}' has shape [${t.shape}], the model expects [${old.shape}]`);
        }
        t.requiresGrad = true;
        slot.module.setParam(slot.key, t);
        old.dispose();
      }
    }
    const unused = [...allKeys].filter((k) => !wanted.has(k) && !BUFFERS.some((r) => r.test(k)) && !tied.has(k.replace(/^.*?(lm_head)/, '$1')));
    model.unusedCheckpointKeys = unused;
  } catch (e) {
    model.dispose();
    throw e;
  }
  const gen = join(dir, 'generation_config.json');
  if (existsSync(gen) && 'generationConfig' in model) (model as PreTrainedModel).generationConfig = readJson(gen) as Record<string, unknown>;
  if (opts.tokenizer !== false && existsSync(join(dir, 'tokenizer.json'))) model.tokenizer = loadTokenizerSync(dir);
  model.eval();
  // read on the CPU, then moved: the parameters stay f32 (bf16 compute on CUDA through tk.autocast)
  if (opts.device === 'cuda') model.to('cuda');
  return model;
}

// ---------------------------------------------------------------- saving
/** Writes config.json and model.safetensors with the checkpoint's key names (transformers loads them back). */
export function saveModel(model: AnyModel, dir: string): void {
  mkdirSync(dir, { recursive: true });
  const tied = new Set(model.tiedKeys());
  const tensors: Record<string, Tensor> = {};
  for (const [n, t] of model.namedParameters()) if (!tied.has(n)) tensors[model.toCheckpointKey(n)] = t;
  saveSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  const arch = ARCHITECTURES[model.config.model_type]!;
  const cfg = { ...model.config, architectures: (model.config.architectures as string[] | undefined) ?? [arch.cls], torch_dtype: 'float32' };
  const tmp = join(dir, `config.json.tmp-${process.pid}`);
  writeFileSync(tmp, JSON.stringify(cfg, null, 2) + '\n');
  renameSync(tmp, join(dir, 'config.json'));
  if ('generationConfig' in model && Object.keys(model.generationConfig).length)
    writeFileSync(join(dir, 'generation_config.json'), JSON.stringify(model.generationConfig, null, 2) + '\n');
}

setSaveImpl((m, dir) => saveModel(m as AnyModel, dir));
