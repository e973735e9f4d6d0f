// A Hugging Face tokenizer directory (tokenizer.json + tokenizer_config.json), run by
// @huggingface/tokenizers. This module only adapts: validation, special tokens, bos/eos policy.
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Tokenizer as HFTokenizer } from '@huggingface/tokenizers';
import { BaseTokenizer, idArray } from './base.js';
import { parseJsonFile, parseTokenizerConfig, TokenizerFileError, type ParsedTokenizerConfig } from './config.js';
import type { DecodeOptions } from './types.js';

const KNOWN_MODELS = new Set(['BPE', 'WordPiece', 'Unigram']);

interface AddedTokenJson {
  id: number;
  content: string;
  special?: boolean;
  [k: string]: unknown;
}

/** Checks what @huggingface/tokenizers would otherwise crash on with an unhelpful message. */
function normalizeTokenizerJson(json: Record<string, unknown>, file: string): Record<string, unknown> {
  const model = json.model as Record<string, unknown> | undefined;
  if (model === undefined || model === null || typeof model !== 'object' || Array.isArray(model)) {
    throw new TokenizerFileError(file, 'is missing or not an object', 'model');
  }
  const type = model.type;
  if (type !== undefined && (typeof type !== 'string' || !KNOWN_MODELS.has(type))) {
    throw new TokenizerFileError(file, `type ${JSON.stringify(type)} is not supported (BPE, WordPiece, Unigram)`, 'model.type');
  }
  if (model.vocab === undefined || model.vocab === null || typeof model.vocab !== 'object') {
    throw new TokenizerFileError(file, 'is missing or not an object/list', 'model.vocab');
  }
  if (type === 'Unigram' && !Array.isArray(model.vocab)) throw new TokenizerFileError(file, 'must be a list of [piece, score]', 'model.vocab');
  if ((type === 'BPE' || type === 'WordPiece') && Array.isArray(model.vocab)) {
    throw new TokenizerFileError(file, 'must be an object { token: id }', 'model.vocab');
  }
  if (!Array.isArray(model.vocab)) {
    for (const [tok, id] of Object.entries(model.vocab as Record<string, unknown>)) {
      if (!Number.isInteger(id) || (id as number) < 0) {
        throw new TokenizerFileError(file, `token ${JSON.stringify(tok)} has id ${JSON.stringify(id)}, not a non-negative integer`, 'model.vocab');
      }
    }
  }
  const fixedModel: Record<string, unknown> = { ...model };
  if (type === 'BPE') {
    if (fixedModel.merges === undefined || fixedModel.merges === null) fixedModel.merges = [];
    if (!Array.isArray(fixedModel.merges)) throw new TokenizerFileError(file, 'must be a list', 'model.merges');
    (fixedModel.merges as unknown[]).forEach((m, i) => {
      const ok = typeof m === 'string' ? m.includes(' ') : Array.isArray(m) && m.length === 2 && m.every((p) => typeof p === 'string');
      if (!ok) throw new TokenizerFileError(file, `is not "a b" or ["a", "b"]: ${JSON.stringify(m)}`, `model.merges[${i}]`);
    });
  }
  let added = json.added_tokens ?? [];
  if (!Array.isArray(added)) throw new TokenizerFileError(file, 'must be a list', 'added_tokens');
  added.forEach((t: AddedTokenJson, i) => {
    if (t === null || typeof t !== 'object' || typeof t.content !== 'string' || !Number.isInteger(t.id) || t.id < 0) {
      throw new TokenizerFileError(file, 'must be an object { id: integer, content: string, ... }', `added_tokens[${i}]`);
    }
  });
  added = added as AddedTokenJson[];
  return {
    normalizer: null,
    post_processor: null,
    decoder: null,
    ...json,
    pre_tokenizer: adaptPreTokenizer(json.pre_tokenizer ?? null),
    model: fixedModel,
    added_tokens: added,
  };
}

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Rewrites pre-tokenizer settings that @huggingface/tokenizers 0.2 reads differently from the Rust
 * library: Metaspace's `split` (true unless false: split before each replacement character, so no
 * merge crosses a word boundary) is ignored by the library, so it becomes Metaspace without split
 * followed by a Split that keeps each "▁word" piece; and an old-style Metaspace with
 * add_prefix_space: false and no prepend_scheme means prepend_scheme "never".
 */
function adaptPreTokenizer(pt: unknown): unknown {
  if (pt === null || typeof pt !== 'object' || Array.isArray(pt)) return pt;
  const p = pt as Record<string, unknown>;
  if (p.type === 'Sequence' && Array.isArray(p.pretokenizers)) return { ...p, pretokenizers: p.pretokenizers.map(adaptPreTokenizer) };
  if (p.type !== 'Metaspace') return pt;
  const meta: Record<string, unknown> = { ...p, split: false };
  if (meta.prepend_scheme === undefined && meta.add_prefix_space === false) meta.prepend_scheme = 'never';
  if (p.split === false) return meta;
  // Rust's replacement is a single char; the library's Split with invert: true keeps the matches:
  // "▁word" pieces, and any text before the first ▁
  const r = escapeRegExp(typeof p.replacement === 'string' ? p.replacement : '\u2581');
  const split = { type: 'Split', pattern: { Regex: `${r}[^${r}]*|[^${r}]+` }, behavior: 'Isolated', invert: true };
  return { type: 'Sequence', pretokenizers: [meta, split] };
}

function sanitizedLibConfig(raw: Record<string, unknown>, parsed: ParsedTokenizerConfig): Record<string, unknown> {
  // The library reads a few config fields and expects plain strings; give it the resolved values.
  const out: Record<string, unknown> = { ...raw };
  for (const [k, v] of [
    ['bos_token', parsed.specials.bos],
    ['eos_token', parsed.specials.eos],
    ['pad_token', parsed.specials.pad],
    ['unk_token', parsed.specials.unk],
  ] as const) {
    if (v === null) delete out[k];
    else out[k] = v;
  }
  out.additional_special_tokens = parsed.specials.additional;
  out.clean_up_tokenization_spaces = parsed.cleanUpTokenizationSpaces;
  delete out.chat_template;
  return out;
}

function buildLib(json: Record<string, unknown>, libConfig: Record<string, unknown>, file: string): HFTokenizer {
  try {
    return new HFTokenizer(json, libConfig);
  } catch (e) {
    throw new TokenizerFileError(file, `is not supported by @huggingface/tokenizers: ${(e as Error).message}`, undefined, { cause: e });
  }
}

export interface HfTokenizerSource {
  tokenizerJson: Record<string, unknown>;
  tokenizerJsonFile: string;
  config: Record<string, unknown>;
  configFile: string;
  specialTokensMap?: { value: Record<string, unknown>; file: string };
  chatTemplateFile?: string;
}

/** A tokenizer loaded from tokenizer.json + tokenizer_config.json. Create with loadTokenizer(dir). */
export class HfTokenizer extends BaseTokenizer {
  readonly vocabSize: number;
  readonly specialTokenIds: readonly number[];
  protected readonly specialPrefix: readonly number[];
  protected readonly specialSuffix: readonly number[];
  protected readonly defaultAllowSpecial: boolean;
  /** The underlying @huggingface/tokenizers instance. */
  readonly lib: HFTokenizer;
  private readonly noSpecialJson: Record<string, unknown> | null;
  private readonly libConfig: Record<string, unknown>;
  private noSpecialLib: HFTokenizer | null = null;
  private readonly specialSet: Set<number>;
  private readonly cleanUp: boolean;
  private readonly file: string;

  constructor(src: HfTokenizerSource) {
    const parsed = parseTokenizerConfig(src.config, src.configFile, src.specialTokensMap, src.chatTemplateFile);
    super({
      specials: parsed.specials,
      modelMaxLength: parsed.modelMaxLength,
      chatTemplates: parsed.chatTemplates,
      paddingSide: parsed.paddingSide,
      truncationSide: parsed.truncationSide,
    });
    this.file = src.tokenizerJsonFile;
    const json = normalizeTokenizerJson(src.tokenizerJson, src.tokenizerJsonFile);
    this.libConfig = sanitizedLibConfig(src.config, parsed);
    this.lib = buildLib(json, this.libConfig, src.tokenizerJsonFile);
    this.cleanUp = parsed.cleanUpTokenizationSpaces;
    this.defaultAllowSpecial = !parsed.splitSpecialTokens;

    const vocab = this.lib.get_vocab(true);
    let maxId = -1;
    for (const id of vocab.values()) if (id > maxId) maxId = id;
    this.vocabSize = maxId + 1;

    // Every special token named by the config must exist, or its id would silently be null.
    const named: [string, string | null][] = [
      ['bos_token', parsed.specials.bos],
      ['eos_token', parsed.specials.eos],
      ['pad_token', parsed.specials.pad],
      ['unk_token', parsed.specials.unk],
      ...parsed.specials.additional.map((t, i): [string, string] => [`additional_special_tokens[${i}]`, t]),
    ];
    const special = new Set<number>();
    for (const [field, tok] of named) {
      if (tok === null) continue;
      const id = this.tokenToId(tok);
      if (id === null) {
        const file = parsed.specialSources[field] ?? src.configFile;
        throw new TokenizerFileError(file, `${JSON.stringify(tok)} is not a token of ${src.tokenizerJsonFile}`, field);
      }
      special.add(id);
    }
    const addedTokens = json.added_tokens as AddedTokenJson[];
    for (const t of addedTokens) if (t.special) special.add(t.id);
    this.specialSet = special;
    this.specialTokenIds = Object.freeze([...special].sort((a, b) => a - b));

    // Tokenizing text with split_special_tokens (allowSpecial: false): same tokenizer without the
    // special added tokens, so their strings go through the model like any text. Built lazily.
    const hasSpecialAdded = addedTokens.some((t) => t.special);
    this.noSpecialJson = hasSpecialAdded ? { ...json, added_tokens: addedTokens.filter((t) => !t.special) } : null;

    // Special tokens framing the content: tokenizer_config.json's add_bos_token / add_eos_token
    // when it states either (as transformers' Llama tokenizers rebuild their post-processor from
    // them), else whatever tokenizer.json's post_processor adds around a single sequence.
    if (parsed.addBosToken !== undefined || parsed.addEosToken !== undefined) {
      this.specialPrefix = parsed.addBosToken ? [this.bosTokenId!] : [];
      this.specialSuffix = parsed.addEosToken ? [this.eosTokenId!] : [];
    } else {
      [this.specialPrefix, this.specialSuffix] = this.postProcessorFrame();
    }
    Object.freeze(this.specialPrefix);
    Object.freeze(this.specialSuffix);
  }

  private postProcessorFrame(): [number[], number[]] {
    const pp = this.lib.post_processor;
    if (pp === null) return [[], []];
    const sentinel = '\u0000tunekit-sequence\u0000';
    let tokens: string[];
    try {
      tokens = pp([sentinel], null, true).tokens;
    } catch (e) {
      throw new TokenizerFileError(this.file, `cannot be applied: ${(e as Error).message}`, 'post_processor', { cause: e });
    }
    const at = tokens.indexOf(sentinel);
    if (at < 0 || tokens.indexOf(sentinel, at + 1) >= 0) {
      throw new TokenizerFileError(this.file, 'does not frame a single sequence once', 'post_processor');
    }
    const toId = (t: string): number => {
      const id = this.tokenToId(t);
      if (id === null) throw new TokenizerFileError(this.file, `adds ${JSON.stringify(t)}, which is not a token`, 'post_processor');
      return id;
    };
    return [tokens.slice(0, at).map(toId), tokens.slice(at + 1).map(toId)];
  }

  protected encodeContent(text: string, allowSpecial: boolean): number[] {
    if (text.length === 0) return [];
    let lib = this.lib;
    if (!allowSpecial && this.noSpecialJson !== null) {
      this.noSpecialLib ??= buildLib(this.noSpecialJson, this.libConfig, this.file);
      lib = this.noSpecialLib;
    }
    const ids = lib.encode(text, { add_special_tokens: false }).ids;
    for (const id of ids) {
      // Text that maps to no token and no unk_token: the library would emit undefined.
      if (id === undefined) throw new Error(`encode: text contains characters that ${this.file} cannot represent (no unk_token)`);
    }
    return ids;
  }

  decode(input: ArrayLike<number>, options: DecodeOptions = {}): string {
    const ids = idArray(input);
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize || this.lib.id_to_token(id) === undefined) {
        throw new RangeError(`decode: ${id} is not a token id (vocabSize ${this.vocabSize})`);
      }
    }
    const kept = options.skipSpecialTokens ? ids.filter((id) => !this.specialSet.has(id)) : ids;
    if (kept.length === 0) return '';
    return this.lib.decode([...kept], { skip_special_tokens: false, clean_up_tokenization_spaces: this.cleanUp });
  }

  tokenToId(token: string): number | null {
    return this.lib.token_to_id(token) ?? null;
  }

  idToToken(id: number): string | null {
    if (!Number.isInteger(id) || id < 0) return null;
    return this.lib.id_to_token(id) ?? null;
  }
}

function readRequired(path: string, text: string | Error): string {
  if (text instanceof Error) {
    const code = (text as NodeJS.ErrnoException).code;
    throw new TokenizerFileError(path, code === 'ENOENT' ? 'not found' : `cannot be read (${text.message})`, undefined, { cause: text });
  }
  return text;
}

function sourceFrom(
  dir: string,
  read: (p: string) => string | Error,
  exists: (p: string) => boolean,
): HfTokenizerSource {
  const tokFile = join(dir, 'tokenizer.json');
  const cfgFile = join(dir, 'tokenizer_config.json');
  const tokenizerJson = parseJsonFile(readRequired(tokFile, read(tokFile)), tokFile);
  const config = parseJsonFile(readRequired(cfgFile, read(cfgFile)), cfgFile);
  const src: HfTokenizerSource = { tokenizerJson, tokenizerJsonFile: tokFile, config, configFile: cfgFile };
  const stmFile = join(dir, 'special_tokens_map.json');
  if (exists(stmFile)) src.specialTokensMap = { value: parseJsonFile(readRequired(stmFile, read(stmFile)), stmFile), file: stmFile };
  const ctFile = join(dir, 'chat_template.jinja');
  if (exists(ctFile)) src.chatTemplateFile = readRequired(ctFile, read(ctFile));
  return src;
}

/**
 * Loads a Hugging Face tokenizer directory: tokenizer.json (required, run by @huggingface/tokenizers),
 * tokenizer_config.json (required: special tokens, add_bos_token/add_eos_token, model_max_length,
 * chat_template, padding_side, ...), and when present special_tokens_map.json and chat_template.jinja.
 * Errors are TokenizerFileError, naming the file (and the field).
 */
export async function loadTokenizer(dir: string): Promise<HfTokenizer> {
  const names = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'chat_template.jinja'];
  const texts = new Map<string, string | Error>();
  await Promise.all(
    names.map(async (n) => {
      const p = join(dir, n);
      try {
        texts.set(p, await readFile(p, 'utf8'));
      } catch (e) {
        texts.set(p, e as Error);
      }
    }),
  );
  const exists = (p: string): boolean => {
    const t = texts.get(p);
    return !(t instanceof Error && (t as NodeJS.ErrnoException).code === 'ENOENT');
  };
  return new HfTokenizer(sourceFrom(dir, (p) => texts.get(p)!, exists));
}

/** loadTokenizer, synchronously. */
export function loadTokenizerSync(dir: string): HfTokenizer {
  const read = (p: string): string | Error => {
    try {
      return readFileSync(p, 'utf8');
    } catch (e) {
      return e as Error;
    }
  };
  return new HfTokenizer(sourceFrom(dir, read, existsSync));
}
