// The training run configuration: YAML or JSON file, every field also a CLI
// flag. Unknown fields and bad values are errors that name the field.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';

export interface LoraSettings {
  r: number;
  alpha: number;
  dropout: number;
  targetModules?: string[] | string;
  useRslora: boolean;
}

export interface TrainConfig {
  /** model directory, or an inline config.json-shaped object to train from scratch */
  model: string | Record<string, unknown>;
  /** tokenizer directory, or 'byte' for the byte-level tokenizer (default: the model directory's) */
  tokenizer?: string;
  data: string;
  validationData?: string;
  /** fraction (0-1) or count of training examples held out when validationData is absent */
  validationSplit: number;
  format?: string;
  method: 'full' | 'lora';
  lora: LoraSettings;
  optimizer: 'adamw' | 'sgd';
  batchSize: number;
  gradAccum: number;
  seqLen: number;
  steps?: number;
  epochs?: number;
  lr: number;
  schedule: 'constant' | 'linear' | 'cosine';
  warmupSteps: number;
  weightDecay: number;
  maxGradNorm: number;
  evalEvery: number;
  saveEvery: number;
  logEvery: number;
  earlyStoppingPatience: number;
  outDir: string;
  seed: number;
  device: 'cpu' | 'cuda';
  dtype: 'f32' | 'bf16';
  packing: boolean;
  trainOnPrompt: boolean;
  skipBadLines: boolean;
  skipNonFinite: boolean;
  evalBatches: number;
}

type Kind = 'string' | 'int' | 'number' | 'bool' | 'enum' | 'model' | 'strings';
interface FieldSpec {
  kind: Kind;
  values?: readonly string[];
  min?: number;
  max?: number;
  required?: boolean;
  default?: unknown;
  help: string;
}

export const FIELDS: Record<string, FieldSpec> = {
  model: { kind: 'model', required: true, help: 'model directory, or an inline config object (training from scratch)' },
  tokenizer: { kind: 'string', help: "tokenizer directory, or 'byte' (default: the model directory)" },
  data: { kind: 'string', required: true, help: 'training data (JSONL)' },
  validationData: { kind: 'string', help: 'validation data (JSONL)' },
  validationSplit: { kind: 'number', min: 0, default: 0, help: 'fraction (<1) or count of examples held out for validation' },
  format: { kind: 'enum', values: ['text', 'completion', 'alpaca', 'chat'], help: 'force a data format (default: detected per line)' },
  method: { kind: 'enum', values: ['full', 'lora'], default: 'lora', help: 'full fine-tuning or LoRA' },
  'lora.r': { kind: 'int', min: 1, default: 8, help: 'LoRA rank' },
  'lora.alpha': { kind: 'number', min: 0, default: 16, help: 'LoRA alpha (scale = alpha / r)' },
  'lora.dropout': { kind: 'number', min: 0, max: 1, default: 0, help: 'dropout on the LoRA branch' },
  'lora.targetModules': { kind: 'strings', help: 'module names or a regex (default per architecture)' },
  'lora.useRslora': { kind: 'bool', default: false, help: 'scale alpha / sqrt(r)' },
  optimizer: { kind: 'enum', values: ['adamw', 'sgd'], default: 'adamw', help: 'optimizer' },
  batchSize: { kind: 'int', min: 1, default: 8, help: 'examples per micro-batch' },
  gradAccum: { kind: 'int', min: 1, default: 1, help: 'micro-batches per optimizer step' },
  seqLen: { kind: 'int', min: 2, default: 128, help: 'maximum tokens per example (truncation / packing length)' },
  steps: { kind: 'int', min: 1, help: 'optimizer steps (or give epochs)' },
  epochs: { kind: 'number', min: 0, help: 'passes over the training data (or give steps)' },
  lr: { kind: 'number', min: 0, default: 2e-4, help: 'peak learning rate' },
  schedule: { kind: 'enum', values: ['constant', 'linear', 'cosine'], default: 'cosine', help: 'learning-rate schedule' },
  warmupSteps: { kind: 'int', min: 0, default: 0, help: 'linear warmup steps' },
  weightDecay: { kind: 'number', min: 0, default: 0, help: 'decoupled weight decay (not on biases and norms)' },
  maxGradNorm: { kind: 'number', min: 0, default: 1, help: 'clip the global gradient norm (0 = off)' },
  evalEvery: { kind: 'int', min: 0, default: 0, help: 'evaluate every N steps (0 = at the end only)' },
  saveEvery: { kind: 'int', min: 0, default: 0, help: 'checkpoint every N steps (0 = at the end only)' },
  logEvery: { kind: 'int', min: 1, default: 10, help: 'plain progress line every N steps (non-TTY)' },
  earlyStoppingPatience: { kind: 'int', min: 0, default: 0, help: 'stop after N evaluations without improvement (0 = off)' },
  outDir: { kind: 'string', required: true, help: 'run directory (checkpoints, metrics.jsonl, final weights)' },
  seed: { kind: 'int', min: 0, default: 42, help: 'seed for initialization, shuffling, dropout' },
  device: { kind: 'enum', values: ['cpu', 'cuda'], default: 'cpu', help: 'device' },
  dtype: { kind: 'enum', values: ['f32', 'bf16'], default: 'f32', help: "compute dtype: 'bf16' runs matmuls in bf16 with f32 master weights (CUDA only)" },
  packing: { kind: 'bool', default: false, help: 'pack short examples into full sequences' },
  trainOnPrompt: { kind: 'bool', default: false, help: 'also compute the loss on prompt tokens' },
  skipBadLines: { kind: 'bool', default: false, help: 'skip (and count) malformed data lines' },
  skipNonFinite: { kind: 'bool', default: false, help: 'skip steps whose loss is NaN or Inf instead of stopping' },
  evalBatches: { kind: 'int', min: 0, default: 0, help: 'cap on validation batches per evaluation (0 = all)' },
};

export class ConfigError extends Error {
  constructor(
    readonly field: string,
    message: string,
    readonly source?: string,
  ) {
    super(`${source ? source + ': ' : ''}${field ? `field '${field}': ` : ''}${message}`);
    this.name = 'ConfigError';
  }
}

function flatten(obj: Record<string, unknown>, prefix = '', out: Record<string, unknown> = {}): Record<string, unknown> {
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (k === 'model' && !prefix) out[key] = v;
    else if (v && typeof v === 'object' && !Array.isArray(v) && FIELDS[key] === undefined) flatten(v as Record<string, unknown>, key, out);
    else out[key] = v;
  }
  return out;
}

function coerce(field: string, spec: FieldSpec, v: unknown, source?: string, fromFlag = false): unknown {
  const err = (m: string) => new ConfigError(field, m, source);
  if (fromFlag && typeof v === 'string') {
    if (spec.kind === 'int' || spec.kind === 'number') v = v.trim() === '' ? NaN : Number(v);
    else if (spec.kind === 'bool') v = v === 'true' ? true : v === 'false' ? false : v;
    else if (spec.kind === 'strings') v = v.split(',').map((s) => s.trim()).filter(Boolean);
    else if (spec.kind === 'model' && v.trim().startsWith('{')) {
      try {
        v = JSON.parse(v);
      } catch {
        throw err('is not valid JSON');
      }
    }
  }
  switch (spec.kind) {
    case 'string':
      if (typeof v !== 'string' || !v) throw err(`must be a non-empty string, got ${JSON.stringify(v)}`);
      return v;
    case 'model':
      if (typeof v === 'string' && v) return v;
      if (v && typeof v === 'object' && !Array.isArray(v)) return v;
      throw err('must be a model directory or an inline config object');
    case 'int':
    case 'number': {
      if (typeof v !== 'number' || !Number.isFinite(v)) throw err(`must be a number, got ${JSON.stringify(v)}`);
      if (spec.kind === 'int' && !Number.isInteger(v)) throw err(`must be an integer, got ${v}`);
      if (spec.min !== undefined && v < spec.min) throw err(`must be >= ${spec.min}, got ${v}`);
      if (spec.max !== undefined && v > spec.max) throw err(`must be <= ${spec.max}, got ${v}`);
      return v;
    }
    case 'bool':
      if (typeof v !== 'boolean') throw err(`must be true or false, got ${JSON.stringify(v)}`);
      return v;
    case 'enum':
      if (typeof v !== 'string' || !spec.values!.includes(v)) throw err(`must be one of ${spec.values!.join(', ')}, got ${JSON.stringify(v)}`);
      return v;
    case 'strings':
      if (typeof v === 'string' && v) return v;
      if (Array.isArray(v) && v.length && v.every((s) => typeof s === 'string' && s)) return v;
      throw err('must be a list of module names or a regex string');
  }
}

/** Reads a YAML or JSON run file (YAML is a superset of JSON). */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError('', `cannot read (${(e as Error).message})`, path);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text, { prettyErrors: true });
  } catch (e) {
    throw new ConfigError('', `invalid YAML: ${(e as Error).message}`, path);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError('', 'must be a mapping of fields', path);
  return doc as Record<string, unknown>;
}

/**
 * Validates a configuration (file values, then flag overrides as strings) and
 * fills in defaults. Throws ConfigError naming the field.
 */
export function resolveConfig(fileValues: Record<string, unknown>, flagValues: Record<string, string> = {}, source?: string): TrainConfig {
  const flat = flatten(fileValues);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(flat)) {
    const spec = FIELDS[k];
    if (!spec) throw new ConfigError(k, `unknown field (known: ${Object.keys(FIELDS).join(', ')})`, source);
    out[k] = coerce(k, spec, v, source);
  }
  // the length of the run is steps or epochs (steps wins when both are given); a flag for one
  // overrides the file's choice of the other
  if (flagValues.epochs !== undefined && flagValues.steps === undefined) delete out.steps;
  for (const [k, v] of Object.entries(flagValues)) {
    const spec = FIELDS[k];
    if (!spec) throw new ConfigError(k, 'unknown field', flagName(k));
    out[k] = coerce(k, spec, v, flagName(k), true);
  }
  for (const [k, spec] of Object.entries(FIELDS)) {
    if (out[k] === undefined && spec.default !== undefined) out[k] = spec.default;
    if (out[k] === undefined && spec.required) throw new ConfigError(k, 'is required', source);
  }
  if (out.steps === undefined && out.epochs === undefined) out.epochs = 1;
  const cfg: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(out)) {
    if (v === undefined) continue;
    const parts = k.split('.');
    if (parts.length === 2) {
      cfg[parts[0]!] ??= {};
      (cfg[parts[0]!] as Record<string, unknown>)[parts[1]!] = v;
    } else cfg[k] = v;
  }
  return cfg as unknown as TrainConfig;
}

/** camelCase field path -> --kebab-case flag (lora.r -> --lora-r) */
export function flagName(field: string): string {
  return '--' + field.replace(/\./g, '-').replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}
