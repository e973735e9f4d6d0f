// LoRA configuration: the options of tk.applyLora, their resolution against a
// model (defaults as PEFT's LoraConfig and its per-architecture target modules),
// and adapter_config.json in PEFT's format (both directions, every field checked).
import type { Module } from '../../nn/module.js';
import { ConfigSource, fieldLabel, PeftError, show, TASK_TYPES, type TaskType } from '../config.js';

/** Options of tk.applyLora / addAdapter (camelCase names of PEFT's LoraConfig fields). */
export interface LoraOptions {
  /** rank (PEFT r; default 8) */
  r?: number;
  /** lora_alpha (default 8); scale = alpha / r, or alpha / sqrt(r) with useRslora */
  alpha?: number;
  /** lora_dropout: dropout on the LoRA branch's input while training (default 0) */
  dropout?: number;
  /**
   * Which Linear layers get an adapter: a list of names (a module matches when
   * its dotted path equals an entry or ends with '.' + entry), a regular
   * expression string matched against the whole dotted path, or 'all-linear'
   * (every Linear but the output layer). Default: PEFT's choice for the
   * architecture (GPT-2 c_attn; Llama, Mistral, Qwen2 q_proj and v_proj; BERT
   * query and value).
   */
  targetModules?: string[] | string;
  /** modules never wrapped (list of names or a regular expression, like targetModules) */
  excludeModules?: string[] | string | null;
  /** rank-stabilized LoRA: scale = alpha / sqrt(r) */
  useRslora?: boolean;
  /** task_type written to adapter_config.json (default CAUSAL_LM for decoders, FEATURE_EXTRACTION for BERT) */
  taskType?: TaskType | null;
  /** weights stored [in, out]; set automatically for GPT-2's Conv1D layers, as PEFT does */
  fanInFanOut?: boolean;
  /**
   * true (default): A Kaiming-uniform, B zeros (the adapter starts as a no-op);
   * 'gaussian': A ~ N(0, 1/r²), B zeros; false: A and B both Kaiming-uniform
   * (a random, non-zero update; PEFT's init_lora_weights=False, for tests).
   */
  initLoraWeights?: boolean | 'gaussian';
  /** per-module rank: pattern -> r (a module matches when its path ends with the pattern) */
  rankPattern?: Record<string, number>;
  /** per-module alpha, as rankPattern */
  alphaPattern?: Record<string, number>;
  /** only these layer indices (list targetModules only) */
  layersToTransform?: number | number[] | null;
  /** the name of the layer list in module paths ('h', 'layers', ...) for layersToTransform */
  layersPattern?: string | string[] | null;
  /** written as base_model_name_or_path (default: config._name_or_path, else null) */
  baseModelNameOrPath?: string | null;
  revision?: string | null;
  /** adapter weights frozen (PEFT inference_mode) */
  inferenceMode?: boolean;
}

/** A resolved LoRA config: every field set (camelCase twins of adapter_config.json's fields). */
export interface LoraConfig {
  peftType: 'LORA';
  taskType: TaskType | null;
  r: number;
  loraAlpha: number;
  loraDropout: number;
  targetModules: string[] | string;
  excludeModules: string[] | string | null;
  useRslora: boolean;
  fanInFanOut: boolean;
  /** true, false, 'gaussian' (or another PEFT initialization name, kept from a loaded file) */
  initLoraWeights: boolean | string;
  rankPattern: Record<string, number>;
  alphaPattern: Record<string, number>;
  layersToTransform: number | number[] | null;
  layersPattern: string | string[] | null;
  baseModelNameOrPath: string | null;
  revision: string | null;
  inferenceMode: boolean;
}

/** PEFT's TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING for the architectures tunekit has. */
export const DEFAULT_LORA_TARGET_MODULES: Readonly<Record<string, readonly string[]>> = {
  gpt2: ['c_attn'],
  llama: ['q_proj', 'v_proj'],
  mistral: ['q_proj', 'v_proj'],
  qwen2: ['q_proj', 'v_proj'],
  bert: ['query', 'value'],
};

function modelType(model: Module): string | undefined {
  const c = (model as unknown as { config?: { model_type?: unknown } }).config;
  return typeof c?.model_type === 'string' ? c.model_type : undefined;
}

function defaultTaskType(model: Module): TaskType | null {
  const t = modelType(model);
  if (t === 'bert') return 'FEATURE_EXTRACTION';
  if (t && t in DEFAULT_LORA_TARGET_MODULES) return 'CAUSAL_LM';
  return null;
}

// ---------------------------------------------------------------- validation
// One checker for both sources; messages name the option (applyLora) or the field (adapter_config.json).
const SNAKE: Record<keyof LoraConfig, string> = {
  peftType: 'peft_type',
  taskType: 'task_type',
  r: 'r',
  loraAlpha: 'lora_alpha',
  loraDropout: 'lora_dropout',
  targetModules: 'target_modules',
  excludeModules: 'exclude_modules',
  useRslora: 'use_rslora',
  fanInFanOut: 'fan_in_fan_out',
  initLoraWeights: 'init_lora_weights',
  rankPattern: 'rank_pattern',
  alphaPattern: 'alpha_pattern',
  layersToTransform: 'layers_to_transform',
  layersPattern: 'layers_pattern',
  baseModelNameOrPath: 'base_model_name_or_path',
  revision: 'revision',
  inferenceMode: 'inference_mode',
};
// the option names of tk.applyLora where they differ from the config's
const OPTION: Partial<Record<keyof LoraConfig, string>> = { loraAlpha: 'alpha', loraDropout: 'dropout' };

function bad(src: ConfigSource, key: keyof LoraConfig, msg: string): never {
  throw new PeftError(src.where, `${fieldLabel(src, OPTION[key] ?? key, SNAKE[key])} ${msg}`, src.style === 'json' ? SNAKE[key] : OPTION[key] ?? key);
}

const isPosInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;
const isStrList = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string' && s.length > 0);

function checkModules(src: ConfigSource, key: 'targetModules' | 'excludeModules', v: unknown, nullable: boolean): string[] | string | null {
  if (v === null || v === undefined) {
    if (nullable) return null;
    bad(src, key, 'is required');
  }
  if (typeof v === 'string') {
    if (!v.length) bad(src, key, 'must not be an empty string');
    return v;
  }
  if (!isStrList(v)) bad(src, key, `must be a list of module names or a regular expression string, got ${show(v)}`);
  return [...new Set(v)];
}

function checkPattern(src: ConfigSource, key: 'rankPattern' | 'alphaPattern', v: unknown): Record<string, number> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) bad(src, key, `must be an object of pattern -> number, got ${show(v)}`);
  const out: Record<string, number> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (key === 'rankPattern' ? !isPosInt(x) : typeof x !== 'number' || !Number.isFinite(x))
      bad(src, key, `['${k}'] must be ${key === 'rankPattern' ? 'a positive integer' : 'a finite number'}, got ${show(x)}`);
    out[k] = x as number;
  }
  return out;
}

/** Checks every field of a (partially filled) config; returns it resolved. */
function checkConfig(src: ConfigSource, c: Record<keyof LoraConfig, unknown>): LoraConfig {
  if (!isPosInt(c.r)) bad(src, 'r', `must be a positive integer, got ${show(c.r)}`);
  if (typeof c.loraAlpha !== 'number' || !Number.isFinite(c.loraAlpha)) bad(src, 'loraAlpha', `must be a finite number, got ${show(c.loraAlpha)}`);
  const p = c.loraDropout;
  if (typeof p !== 'number' || !(p >= 0 && p < 1)) bad(src, 'loraDropout', `must be a number in [0, 1), got ${show(p)}`);
  if (c.taskType !== null && !TASK_TYPES.includes(c.taskType as TaskType))
    bad(src, 'taskType', `must be null or one of ${TASK_TYPES.join(', ')}, got ${show(c.taskType)}`);
  for (const k of ['useRslora', 'fanInFanOut', 'inferenceMode'] as const)
    if (typeof c[k] !== 'boolean') bad(src, k, `must be true or false, got ${show(c[k])}`);
  const init = c.initLoraWeights;
  if (typeof init !== 'boolean' && typeof init !== 'string') bad(src, 'initLoraWeights', `must be true, false or 'gaussian', got ${show(init)}`);
  const ltt = c.layersToTransform;
  if (ltt !== null && !(Number.isInteger(ltt) && (ltt as number) >= 0) && !(Array.isArray(ltt) && ltt.every((i) => Number.isInteger(i) && i >= 0)))
    bad(src, 'layersToTransform', `must be null, a layer index or a list of layer indices, got ${show(ltt)}`);
  const lp = c.layersPattern;
  if (lp !== null && typeof lp !== 'string' && !isStrList(lp)) bad(src, 'layersPattern', `must be null, a string or a list of strings, got ${show(lp)}`);
  for (const k of ['baseModelNameOrPath', 'revision'] as const)
    if (c[k] !== null && typeof c[k] !== 'string') bad(src, k, `must be null or a string, got ${show(c[k])}`);
  return {
    peftType: 'LORA',
    taskType: c.taskType as TaskType | null,
    r: c.r as number,
    loraAlpha: c.loraAlpha as number,
    loraDropout: p as number,
    targetModules: checkModules(src, 'targetModules', c.targetModules, false)!,
    excludeModules: checkModules(src, 'excludeModules', c.excludeModules, true),
    useRslora: c.useRslora as boolean,
    fanInFanOut: c.fanInFanOut as boolean,
    initLoraWeights: init as boolean | string,
    rankPattern: checkPattern(src, 'rankPattern', c.rankPattern),
    alphaPattern: checkPattern(src, 'alphaPattern', c.alphaPattern),
    layersToTransform: Array.isArray(ltt) ? [...(ltt as number[])] : (ltt as number | null),
    layersPattern: Array.isArray(lp) ? [...(lp as string[])] : (lp as string | null),
    baseModelNameOrPath: c.baseModelNameOrPath as string | null,
    revision: c.revision as string | null,
    inferenceMode: c.inferenceMode as boolean,
  };
}

const OPTION_KEYS = new Set<string>([
  'r', 'alpha', 'dropout', 'targetModules', 'excludeModules', 'useRslora', 'taskType', 'fanInFanOut', 'initLoraWeights',
  'rankPattern', 'alphaPattern', 'layersToTransform', 'layersPattern', 'baseModelNameOrPath', 'revision', 'inferenceMode',
]);

/** tk.applyLora's options resolved for a model (PEFT's LoraConfig defaults; target modules by architecture). */
export function resolveLoraOptions(opts: LoraOptions | undefined, model: Module, where = 'applyLora'): LoraConfig {
  const src: ConfigSource = { where, style: 'options' };
  const o = (opts ?? {}) as LoraOptions & Record<string, unknown>;
  if (typeof o !== 'object' || Array.isArray(o)) throw new PeftError(where, `options must be an object, got ${show(opts)}`);
  for (const k of Object.keys(o))
    if (!OPTION_KEYS.has(k)) throw new PeftError(where, `unknown option '${k}' (options: ${[...OPTION_KEYS].join(', ')})`, k);
  if (o.initLoraWeights !== undefined && o.initLoraWeights !== true && o.initLoraWeights !== false && o.initLoraWeights !== 'gaussian')
    bad(src, 'initLoraWeights', `must be true, false or 'gaussian' (other PEFT initializations are not implemented), got ${show(o.initLoraWeights)}`);
  let target: unknown = o.targetModules;
  if (target === undefined || target === null) {
    const t = modelType(model);
    const d = t ? DEFAULT_LORA_TARGET_MODULES[t] : undefined;
    if (!d) throw new PeftError(where, `option 'targetModules' is required for model type ${show(t ?? null)} (PEFT has no default for it)`, 'targetModules');
    target = [...d];
  }
  const name = (model as unknown as { config?: { _name_or_path?: unknown } }).config?._name_or_path;
  return checkConfig(src, {
    peftType: 'LORA',
    taskType: o.taskType === undefined ? defaultTaskType(model) : o.taskType,
    r: o.r ?? 8,
    loraAlpha: o.alpha ?? 8,
    loraDropout: o.dropout ?? 0,
    targetModules: target,
    excludeModules: o.excludeModules ?? null,
    useRslora: o.useRslora ?? false,
    fanInFanOut: o.fanInFanOut ?? false,
    initLoraWeights: o.initLoraWeights ?? true,
    rankPattern: o.rankPattern,
    alphaPattern: o.alphaPattern,
    layersToTransform: o.layersToTransform ?? null,
    layersPattern: o.layersPattern ?? null,
    baseModelNameOrPath: o.baseModelNameOrPath !== undefined ? o.baseModelNameOrPath : typeof name === 'string' && name ? name : null,
    revision: o.revision ?? null,
    inferenceMode: o.inferenceMode ?? false,
  });
}

// ---------------------------------------------------------------- adapter_config.json
/**
 * Fields PEFT's LoraConfig has whose value does not change what a saved
 * adapter computes (initialization methods, bookkeeping): any value is accepted.
 */
const IGNORED_FIELDS = new Set([
  'auto_mapping', 'megatron_core', 'qalora_group_size', 'loftq_config', 'eva_config', 'corda_config', 'lora_ga_config',
  'runtime_config', 'peft_version', 'ensure_weight_tying',
]);

/** Fields that select LoRA variants tunekit does not implement: each must hold its "off" value. */
const OFF_FIELDS: Record<string, (v: unknown) => boolean> = {
  bias: (v) => v === 'none' || v === undefined,
  use_dora: (v) => !v,
  lora_bias: (v) => !v,
  use_qalora: (v) => !v,
  use_bdlora: (v) => !v,
  modules_to_save: (v) => v === null || (Array.isArray(v) && v.length === 0),
  layer_replication: (v) => v === null || (Array.isArray(v) && v.length === 0),
  trainable_token_indices: (v) => v === null || (Array.isArray(v) && v.length === 0) || (typeof v === 'object' && !Object.keys(v as object).length),
  target_parameters: (v) => v === null || (Array.isArray(v) && v.length === 0),
  alora_invocation_tokens: (v) => v === null,
  megatron_config: (v) => v === null,
  arrow_config: (v) => v === null,
};

const KNOWN_FIELDS = new Set<string>([...Object.values(SNAKE), ...IGNORED_FIELDS, ...Object.keys(OFF_FIELDS)]);

const isEmpty = (v: unknown): boolean =>
  v === null || v === false || (Array.isArray(v) && v.length === 0) || (typeof v === 'object' && v !== null && !Object.keys(v).length);

/**
 * A LoRA config from the parsed adapter_config.json at `file` (PEFT's format).
 * Fields PEFT would fill in take PEFT's defaults; fields that turn on a LoRA
 * variant tunekit does not implement, and unknown fields holding a value,
 * are errors naming the field.
 */
export function loraConfigFromJson(json: unknown, file: string): LoraConfig {
  const src: ConfigSource = { where: file, style: 'json' };
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw new PeftError(file, 'must hold a JSON object');
  const j = json as Record<string, unknown>;
  if (j.peft_type !== 'LORA') throw new PeftError(file, `field 'peft_type' is ${show(j.peft_type)}, expected "LORA"`, 'peft_type');
  for (const [k, ok] of Object.entries(OFF_FIELDS))
    if (k in j && !ok(j[k])) throw new PeftError(file, `field '${k}' is ${show(j[k])}: this LoRA variant is not supported by tunekit`, k);
  for (const k of Object.keys(j))
    if (!KNOWN_FIELDS.has(k) && !isEmpty(j[k]))
      throw new PeftError(file, `unknown field '${k}' = ${show(j[k])} (a newer PEFT feature that tunekit does not implement)`, k);
  const get = (k: keyof LoraConfig, dflt: unknown): unknown => (SNAKE[k] in j ? j[SNAKE[k]] : dflt);
  const target = get('targetModules', null);
  if (target === null) throw new PeftError(file, `field 'target_modules' is missing or null (PEFT writes the resolved module names)`, 'target_modules');
  return checkConfig(src, {
    peftType: 'LORA',
    taskType: get('taskType', null),
    r: get('r', 8),
    loraAlpha: get('loraAlpha', 8),
    loraDropout: get('loraDropout', 0),
    targetModules: target,
    excludeModules: get('excludeModules', null),
    useRslora: get('useRslora', false),
    fanInFanOut: get('fanInFanOut', false),
    initLoraWeights: get('initLoraWeights', true),
    rankPattern: get('rankPattern', {}),
    alphaPattern: get('alphaPattern', {}),
    layersToTransform: get('layersToTransform', null),
    layersPattern: get('layersPattern', null),
    baseModelNameOrPath: get('baseModelNameOrPath', null),
    revision: get('revision', null),
    inferenceMode: get('inferenceMode', true),
  });
}

/** adapter_config.json's object as PEFT's LoraConfig.to_dict() writes it (the caller sorts the keys). */
export function loraConfigToJson(c: LoraConfig): Record<string, unknown> {
  return {
    alpha_pattern: { ...c.alphaPattern },
    auto_mapping: null,
    base_model_name_or_path: c.baseModelNameOrPath,
    bias: 'none',
    corda_config: null,
    eva_config: null,
    exclude_modules: c.excludeModules,
    fan_in_fan_out: c.fanInFanOut,
    inference_mode: c.inferenceMode,
    init_lora_weights: c.initLoraWeights,
    layer_replication: null,
    layers_pattern: c.layersPattern,
    layers_to_transform: c.layersToTransform,
    loftq_config: {},
    lora_alpha: c.loraAlpha,
    lora_bias: false,
    lora_dropout: c.loraDropout,
    megatron_config: null,
    megatron_core: 'megatron.core',
    modules_to_save: null,
    peft_type: 'LORA',
    qalora_group_size: 16,
    r: c.r,
    rank_pattern: { ...c.rankPattern },
    revision: c.revision,
    target_modules: c.targetModules,
    target_parameters: null,
    task_type: c.taskType,
    trainable_token_indices: null,
    use_dora: false,
    use_qalora: false,
    use_rslora: c.useRslora,
  };
}

/** The LoRA scale for rank r: alpha / r, or alpha / sqrt(r) with rsLoRA (PEFT's scaling[adapter]). */
export function loraScale(alpha: number, r: number, useRslora: boolean): number {
  return useRslora ? alpha / Math.sqrt(r) : alpha / r;
}
