// tokenizer_config.json: validated field by field; every error names the file and the field.
import { parseChatTemplates } from './chat.js';
import type { SpecialTokenNames } from './base.js';
import type { TokenizerSide } from './types.js';

/** A tokenizer file that is missing, unreadable or malformed. `file` is its path; `field` the bad field, if any. */
export class TokenizerFileError extends Error {
  readonly file: string;
  readonly field: string | undefined;
  constructor(file: string, message: string, field?: string, options?: { cause?: unknown }) {
    super(`${file}: ${field !== undefined ? `field "${field}" ` : ''}${message}`, options);
    this.name = 'TokenizerFileError';
    this.file = file;
    this.field = field;
  }
}

export interface ParsedTokenizerConfig {
  specials: SpecialTokenNames;
  /** For each special-token field that was set: the file it came from. */
  specialSources: Record<string, string>;
  /** undefined when the file does not say (then tokenizer.json's post_processor decides). */
  addBosToken: boolean | undefined;
  addEosToken: boolean | undefined;
  modelMaxLength: number | null;
  chatTemplates: Record<string, string>;
  paddingSide: TokenizerSide;
  truncationSide: TokenizerSide;
  cleanUpTokenizationSpaces: boolean;
  splitSpecialTokens: boolean;
}

/** A special token as written in the config: a string, an AddedToken-like { content }, or null. */
export function specialTokenContent(value: unknown, file: string, field: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && !Array.isArray(value) && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  throw new TokenizerFileError(file, 'must be a string or an object { content: string }', field);
}

function optionalBool(obj: Record<string, unknown>, key: string, file: string): boolean | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw new TokenizerFileError(file, `must be a boolean, got ${JSON.stringify(v)}`, key);
  return v;
}

function optionalSide(obj: Record<string, unknown>, key: string, file: string): TokenizerSide {
  const v = obj[key];
  if (v === undefined || v === null) return 'right';
  if (v !== 'left' && v !== 'right') throw new TokenizerFileError(file, `must be "left" or "right", got ${JSON.stringify(v)}`, key);
  return v;
}

export function parseJsonFile(text: string, file: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new TokenizerFileError(file, `is not valid JSON (${(e as Error).message})`, undefined, { cause: e });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new TokenizerFileError(file, 'must contain a JSON object');
  }
  return value as Record<string, unknown>;
}

const SPECIAL_KEYS = ['bos_token', 'eos_token', 'pad_token', 'unk_token'] as const;

/**
 * @param config tokenizer_config.json's object
 * @param specialTokensMap special_tokens_map.json's object, when the directory has one: its
 *   entries override tokenizer_config.json's (as in transformers; older checkpoints keep them there)
 * @param chatTemplateFile the text of chat_template.jinja, used when the config has no chat_template
 */
export function parseTokenizerConfig(
  config: Record<string, unknown>,
  file: string,
  specialTokensMap?: { value: Record<string, unknown>; file: string },
  chatTemplateFile?: string,
): ParsedTokenizerConfig {
  const specialSources: Record<string, string> = {};
  const special = (key: string): string | null => {
    // As transformers' from_pretrained: special_tokens_map.json's entries override the config's.
    const src = specialTokensMap && Object.hasOwn(specialTokensMap.value, key) ? specialTokensMap : { value: config, file };
    const content = specialTokenContent(src.value[key], src.file, key);
    if (content !== null) specialSources[key] = src.file;
    return content;
  };
  const [bos, eos, pad, unk] = SPECIAL_KEYS.map(special) as [string | null, string | null, string | null, string | null];

  let additionalSrc: { v: unknown; f: string } | undefined;
  if (specialTokensMap && Object.hasOwn(specialTokensMap.value, 'additional_special_tokens')) {
    additionalSrc = { v: specialTokensMap.value.additional_special_tokens, f: specialTokensMap.file };
  } else if (Object.hasOwn(config, 'additional_special_tokens')) additionalSrc = { v: config.additional_special_tokens, f: file };
  const additional: string[] = [];
  if (additionalSrc && additionalSrc.v !== null) {
    if (!Array.isArray(additionalSrc.v)) {
      throw new TokenizerFileError(additionalSrc.f, 'must be a list', 'additional_special_tokens');
    }
    additionalSrc.v.forEach((t, i) => {
      const c = specialTokenContent(t, additionalSrc.f, `additional_special_tokens[${i}]`);
      if (c !== null) {
        specialSources[`additional_special_tokens[${additional.length}]`] = additionalSrc.f;
        additional.push(c);
      }
    });
  }

  const addBosToken = optionalBool(config, 'add_bos_token', file);
  const addEosToken = optionalBool(config, 'add_eos_token', file);
  if (addBosToken && bos === null) throw new TokenizerFileError(file, 'is true but bos_token is not set', 'add_bos_token');
  if (addEosToken && eos === null) throw new TokenizerFileError(file, 'is true but eos_token is not set', 'add_eos_token');

  let modelMaxLength: number | null = null;
  const mml = config.model_max_length;
  if (mml !== undefined && mml !== null) {
    if (typeof mml !== 'number' || !(mml > 0)) {
      throw new TokenizerFileError(file, `must be a positive number, got ${JSON.stringify(mml)}`, 'model_max_length');
    }
    // transformers writes int(1e30) for "no limit".
    modelMaxLength = mml > Number.MAX_SAFE_INTEGER ? null : Math.floor(mml);
  }

  let chatTemplates: Record<string, string> = {};
  if (config.chat_template !== undefined && config.chat_template !== null) {
    const parsed = parseChatTemplates(config.chat_template);
    if (typeof parsed === 'string') throw new TokenizerFileError(file, parsed.replace(/^chat_template\S* /, ''), parsed.split(' ')[0]);
    chatTemplates = parsed;
  } else if (chatTemplateFile !== undefined) {
    chatTemplates = { default: chatTemplateFile };
  }

  return {
    specials: { bos, eos, pad, unk, additional },
    specialSources,
    addBosToken,
    addEosToken,
    modelMaxLength,
    chatTemplates,
    paddingSide: optionalSide(config, 'padding_side', file),
    truncationSide: optionalSide(config, 'truncation_side', file),
    // transformers >= 4.45 defaults this to false; exact round trips need it off.
    cleanUpTokenizationSpaces: optionalBool(config, 'clean_up_tokenization_spaces', file) ?? false,
    splitSpecialTokens: optionalBool(config, 'split_special_tokens', file) ?? false,
  };
}
