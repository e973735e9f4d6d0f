// What every PEFT method shares: task types, the adapter directory layout
// (adapter_config.json + adapter_model.safetensors, as Hugging Face PEFT writes
// them), errors that name the file and the field, and the Python regular
// expressions that PEFT configs contain (target_modules as a pattern).
import { readFileSync } from 'node:fs';

/** PEFT's TaskType values (what task_type may hold in adapter_config.json). */
export const TASK_TYPES = ['SEQ_CLS', 'SEQ_2_SEQ_LM', 'CAUSAL_LM', 'TOKEN_CLS', 'QUESTION_ANS', 'FEATURE_EXTRACTION'] as const;
export type TaskType = (typeof TASK_TYPES)[number];

/** The PEFT methods tunekit implements (peft_type in adapter_config.json). */
export type PeftType = 'LORA';

export const ADAPTER_CONFIG_NAME = 'adapter_config.json';
export const ADAPTER_WEIGHTS_NAME = 'adapter_model.safetensors';
/** Every key PEFT saves starts with this (PeftModel.base_model = tuner, tuner.model = the transformers model). */
export const PEFT_KEY_PREFIX = 'base_model.model.';
/** PEFT's default adapter name. */
export const DEFAULT_ADAPTER = 'default';

/** A bad adapter config or adapter file: names the file (or the API call) and the field or tensor. */
export class PeftError extends Error {
  override readonly name = 'PeftError';
  constructor(
    /** the file concerned, or the function when the problem is in its options */
    readonly where: string,
    message: string,
    /** the config field or tensor name concerned */
    readonly field?: string,
  ) {
    super(`${where}: ${message}`);
  }
}

/**
 * Where a config comes from, so that its errors name the right thing: a file
 * and snake_case fields (adapter_config.json), or a function and its camelCase
 * options (tk.applyLora).
 */
export interface ConfigSource {
  where: string;
  style: 'json' | 'options';
}

export function fieldLabel(src: ConfigSource, camel: string, snake: string): string {
  return src.style === 'json' ? `field '${snake}'` : `option '${camel}'`;
}

export function readJsonFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new PeftError(path, `cannot read (${(e as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new PeftError(path, `invalid JSON (${(e as Error).message})`);
  }
}

export function show(v: unknown): string {
  try {
    const s = JSON.stringify(v);
    return s === undefined ? String(v) : s.length > 200 ? s.slice(0, 200) + '...' : s;
  } catch {
    return String(v);
  }
}

/**
 * A Python `re` pattern as a JavaScript RegExp. The dialects agree on what
 * PEFT configs use (classes, groups, alternation, quantifiers, lookarounds);
 * Python's named groups (?P<n>...) and (?P=n) and the anchors \A, \Z are
 * translated. mode 'full' anchors both ends (re.fullmatch); 'suffix' matches
 * `(.*\.)?(pattern)$` from the start (PEFT's rank_pattern / alpha_pattern keys);
 * 'start' matches at the start only (re.match).
 */
export function pyRegex(pattern: string, mode: 'full' | 'suffix' | 'start', src: ConfigSource, camel: string, snake: string): RegExp {
  const js = pattern
    .replace(/\(\?P<([A-Za-z_][A-Za-z0-9_]*)>/g, '(?<$1>')
    .replace(/\(\?P=([A-Za-z_][A-Za-z0-9_]*)\)/g, '\\k<$1>')
    .replace(/\\A/g, '^')
    .replace(/\\Z/g, '$');
  try {
    if (mode === 'full') return new RegExp(`^(?:${js})$`);
    if (mode === 'start') return new RegExp(`^(?:${js})`);
    return new RegExp(`^(?:.*\\.)?(?:${js})$`);
  } catch (e) {
    throw new PeftError(src.where, `${fieldLabel(src, camel, snake)}: invalid regular expression ${show(pattern)} (${(e as Error).message})`, snake);
  }
}

/** Python's format(n, ',d'). */
export function thousands(n: number): string {
  const s = String(Math.abs(Math.trunc(n)));
  return (n < 0 ? '-' : '') + s.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/**
 * Python's format(x, '.{digits}f'): the exact binary value of x rounded to
 * `digits` decimals, ties to even (Number.prototype.toFixed breaks exact ties
 * upwards, Python to the even digit).
 */
export function pyFixed(x: number, digits: number): string {
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : x < 0 ? '-inf' : 'nan';
  const neg = x < 0 || Object.is(x, -0);
  const ax = Math.abs(x);
  if (ax >= 1e21) return x.toFixed(digits);
  // toFixed(100) is the exact decimal expansion for every double in this range that can tie at `digits` places
  const exact = ax.toFixed(100);
  const [ip, fp] = exact.split('.') as [string, string];
  const keep = BigInt(ip + fp.slice(0, digits));
  const rest = fp.slice(digits);
  let q = keep;
  const half = '5' + '0'.repeat(rest.length - 1);
  if (rest > half || (rest === half && keep % 2n === 1n)) q = keep + 1n;
  let s = q.toString().padStart(digits + 1, '0');
  s = digits ? `${s.slice(0, s.length - digits)}.${s.slice(s.length - digits)}` : s;
  return (neg ? '-' : '') + s;
}
