// A byte-level tokenizer for models trained from scratch: ids 0..255 are the UTF-8 byte values,
// special tokens follow from 256. Nothing to download; save(dir) writes it in Hugging Face terms
// (a BPE model over GPT-2's 256 byte-level symbols with no merges, ByteLevel pre-tokenizer and
// decoder), which loadTokenizer(dir) reads back to a tokenizer that encodes and decodes alike.
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BaseTokenizer, idArray } from './base.js';
import type { DecodeOptions, TokenizerSide } from './types.js';

export const DEFAULT_BYTE_SPECIALS: readonly string[] = Object.freeze(['<|bos|>', '<|eos|>', '<|pad|>']);

/**
 * The byte tokenizer's default chat template: `bos <|role|>\ncontent eos ...`, and `<|assistant|>\n`
 * as the generation prompt. Role markers are plain text (bytes); bos/eos are the special tokens.
 */
export const DEFAULT_BYTE_CHAT_TEMPLATE =
  "{{- bos_token if bos_token is defined else '' -}}" +
  '{%- for message in messages -%}' +
  "{{- '<|' + message['role'] + '|>\\n' + message['content'] + (eos_token if eos_token is defined else '') -}}" +
  '{%- endfor -%}' +
  "{%- if add_generation_prompt -%}{{- '<|assistant|>\\n' -}}{%- endif -%}";

export interface ByteTokenizerOptions {
  /** Special tokens, ids 256, 257, ... in order. Default ['<|bos|>', '<|eos|>', '<|pad|>']. */
  specials?: readonly string[];
  /** Which special is bos / eos / pad. Default: '<|bos|>' / '<|eos|>' / '<|pad|>' when in specials, else null. */
  bosToken?: string | null;
  eosToken?: string | null;
  padToken?: string | null;
  /** encode() with addSpecialTokens (the default) puts bos before / eos after the text. Default false, false. */
  addBosToken?: boolean;
  addEosToken?: boolean;
  /** Default DEFAULT_BYTE_CHAT_TEMPLATE; null for none. */
  chatTemplate?: string | null;
  modelMaxLength?: number | null;
  paddingSide?: TokenizerSide;
  truncationSide?: TokenizerSide;
}

/** GPT-2's byte → printable character table (the one ByteLevel pre-tokenizers and decoders use). */
export const BYTE_TO_UNICODE: readonly string[] = (() => {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const table = new Array<string>(256);
  let n = 0;
  for (let b = 0; b < 256; b++) table[b] = String.fromCharCode(printable.includes(b) ? b : 256 + n++);
  return Object.freeze(table);
})();

interface TrieNode {
  next: Map<string, TrieNode>;
  end?: number; // special index
}

const utf8 = new TextEncoder();

export class ByteTokenizer extends BaseTokenizer {
  static readonly BYTE_COUNT = 256;
  readonly vocabSize: number;
  readonly specials: readonly string[];
  readonly specialTokenIds: readonly number[];
  readonly addBosToken: boolean;
  readonly addEosToken: boolean;
  protected readonly specialPrefix: readonly number[];
  protected readonly specialSuffix: readonly number[];
  protected readonly defaultAllowSpecial = false;
  private readonly specialIds: Map<string, number>;
  private readonly trie: TrieNode;

  constructor(options: ByteTokenizerOptions = {}) {
    const specials = [...(options.specials ?? DEFAULT_BYTE_SPECIALS)];
    const seen = new Set<string>();
    specials.forEach((s, i) => {
      if (typeof s !== 'string' || s.length === 0) throw new TypeError(`byteTokenizer: specials[${i}] must be a non-empty string`);
      if (seen.has(s)) throw new Error(`byteTokenizer: special token ${JSON.stringify(s)} is listed twice`);
      seen.add(s);
    });
    const pick = (given: string | null | undefined, fallback: string, name: string): string | null => {
      if (given === undefined) return seen.has(fallback) ? fallback : null;
      if (given !== null && !seen.has(given)) throw new Error(`byteTokenizer: ${name} ${JSON.stringify(given)} is not one of the specials`);
      return given;
    };
    const bos = pick(options.bosToken, '<|bos|>', 'bosToken');
    const eos = pick(options.eosToken, '<|eos|>', 'eosToken');
    const pad = pick(options.padToken, '<|pad|>', 'padToken');
    const template = options.chatTemplate === undefined ? DEFAULT_BYTE_CHAT_TEMPLATE : options.chatTemplate;
    const mml = options.modelMaxLength ?? null;
    if (mml !== null && (!Number.isInteger(mml) || mml <= 0)) throw new RangeError('byteTokenizer: modelMaxLength must be a positive integer');
    super({
      specials: { bos, eos, pad, unk: null, additional: specials.filter((s) => s !== bos && s !== eos && s !== pad) },
      modelMaxLength: mml,
      chatTemplates: template === null ? {} : { default: template },
      paddingSide: options.paddingSide ?? 'right',
      truncationSide: options.truncationSide ?? 'right',
    });
    this.specials = Object.freeze(specials);
    this.vocabSize = 256 + specials.length;
    this.specialIds = new Map(specials.map((s, i) => [s, 256 + i]));
    this.specialTokenIds = Object.freeze(specials.map((_, i) => 256 + i));
    this.addBosToken = options.addBosToken ?? false;
    this.addEosToken = options.addEosToken ?? false;
    if (this.addBosToken && bos === null) throw new Error('byteTokenizer: addBosToken needs a bos token');
    if (this.addEosToken && eos === null) throw new Error('byteTokenizer: addEosToken needs an eos token');
    this.specialPrefix = Object.freeze(this.addBosToken ? [this.specialIds.get(bos!)!] : []);
    this.specialSuffix = Object.freeze(this.addEosToken ? [this.specialIds.get(eos!)!] : []);
    this.trie = { next: new Map() };
    specials.forEach((s, i) => {
      let node = this.trie;
      for (const ch of s.split('')) {
        let child = node.next.get(ch);
        if (child === undefined) node.next.set(ch, (child = { next: new Map() }));
        node = child;
      }
      node.end = i;
    });
  }

  protected encodeContent(text: string, allowSpecial: boolean): number[] {
    if (!allowSpecial || this.specials.length === 0) return Array.from(utf8.encode(text));
    // Leftmost-longest match over UTF-16 units, as @huggingface/tokenizers splits added tokens.
    const out: number[] = [];
    let start = 0;
    let i = 0;
    while (i < text.length) {
      let node: TrieNode | undefined = this.trie;
      let match = -1;
      let matchLen = 0;
      for (let j = i; j < text.length; j++) {
        node = node.next.get(text[j]!);
        if (node === undefined) break;
        if (node.end !== undefined) {
          match = node.end;
          matchLen = j - i + 1;
        }
      }
      if (match >= 0) {
        if (i > start) for (const b of utf8.encode(text.slice(start, i))) out.push(b);
        out.push(256 + match);
        i += matchLen;
        start = i;
      } else {
        i++;
      }
    }
    if (start < text.length) for (const b of utf8.encode(text.slice(start))) out.push(b);
    return out;
  }

  decode(input: ArrayLike<number>, options: DecodeOptions = {}): string {
    const ids = idArray(input);
    // One decoder per call: ignoreBOM keeps a leading U+FEFF, as the ByteLevel decoder does.
    const dec = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
    const parts: string[] = [];
    let bytes: number[] = [];
    const flush = (): void => {
      if (bytes.length > 0) parts.push(dec.decode(Uint8Array.from(bytes)));
      bytes = [];
    };
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new RangeError(`decode: ${id} is not a token id (vocabSize ${this.vocabSize})`);
      }
      if (id < 256) {
        bytes.push(id);
      } else if (!options.skipSpecialTokens) {
        flush();
        parts.push(this.specials[id - 256]!);
      }
    }
    flush();
    return parts.join('');
  }

  /** Byte tokens are named by their GPT-2 byte-level symbol (as in the saved tokenizer.json). */
  tokenToId(token: string): number | null {
    const s = this.specialIds.get(token);
    if (s !== undefined) return s;
    if (token.length === 1) {
      const b = BYTE_TO_UNICODE.indexOf(token);
      if (b >= 0) return b;
    }
    return null;
  }

  idToToken(id: number): string | null {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) return null;
    return id < 256 ? BYTE_TO_UNICODE[id]! : this.specials[id - 256]!;
  }

  /** tokenizer.json (Hugging Face format) as an object. */
  toTokenizerJson(): Record<string, unknown> {
    const vocab: Record<string, number> = {};
    BYTE_TO_UNICODE.forEach((ch, b) => (vocab[ch] = b));
    const special = (s: string): { id: string; ids: number[]; tokens: string[] } => ({ id: s, ids: [this.specialIds.get(s)!], tokens: [s] });
    const single: unknown[] = [];
    const pair: unknown[] = [];
    const specialTokens: Record<string, unknown> = {};
    if (this.addBosToken) {
      single.push({ SpecialToken: { id: this.bosToken, type_id: 0 } });
      pair.push({ SpecialToken: { id: this.bosToken, type_id: 0 } });
      specialTokens[this.bosToken!] = special(this.bosToken!);
    }
    single.push({ Sequence: { id: 'A', type_id: 0 } });
    pair.push({ Sequence: { id: 'A', type_id: 0 } });
    if (this.addEosToken) {
      single.push({ SpecialToken: { id: this.eosToken, type_id: 0 } });
      pair.push({ SpecialToken: { id: this.eosToken, type_id: 0 } });
      specialTokens[this.eosToken!] = special(this.eosToken!);
    }
    if (this.addBosToken) pair.push({ SpecialToken: { id: this.bosToken, type_id: 1 } });
    pair.push({ Sequence: { id: 'B', type_id: 1 } });
    if (this.addEosToken) pair.push({ SpecialToken: { id: this.eosToken, type_id: 1 } });
    return {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: this.specials.map((s, i) => ({
        id: 256 + i,
        content: s,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: true,
      })),
      normalizer: null,
      // use_regex: false: the whole text is one piece; with no merges the split would not matter anyway.
      pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      post_processor: { type: 'TemplateProcessing', single, pair, special_tokens: specialTokens },
      decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab,
        merges: [],
      },
    };
  }

  /** tokenizer_config.json as an object (transformers-compatible fields). */
  toTokenizerConfig(): Record<string, unknown> {
    const cfg: Record<string, unknown> = {
      tokenizer_class: 'PreTrainedTokenizerFast',
      added_tokens_decoder: Object.fromEntries(
        this.specials.map((s, i) => [
          String(256 + i),
          { content: s, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true },
        ]),
      ),
      bos_token: this.bosToken,
      eos_token: this.eosToken,
      pad_token: this.padToken,
      additional_special_tokens: [...this.additionalSpecialTokens],
      add_bos_token: this.addBosToken,
      add_eos_token: this.addEosToken,
      clean_up_tokenization_spaces: false,
      // Special-token strings inside plain text stay text unless asked for (allowSpecial).
      split_special_tokens: true,
      padding_side: this.paddingSide,
      truncation_side: this.truncationSide,
    };
    if (this.modelMaxLength !== null) cfg.model_max_length = this.modelMaxLength;
    if (this.chatTemplate !== null) cfg.chat_template = this.chatTemplate;
    return cfg;
  }

  /** Writes dir/tokenizer.json and dir/tokenizer_config.json (creating dir). */
  async save(dir: string): Promise<void> {
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(this.toTokenizerJson(), null, 2) + '\n');
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(this.toTokenizerConfig(), null, 2) + '\n');
  }

  saveSync(dir: string): void {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(this.toTokenizerJson(), null, 2) + '\n');
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(this.toTokenizerConfig(), null, 2) + '\n');
  }
}

/** A byte-level tokenizer: ids 0..255 = byte values, then the specials (default <|bos|>, <|eos|>, <|pad|>). */
export function byteTokenizer(options: ByteTokenizerOptions = {}): ByteTokenizer {
  return new ByteTokenizer(options);
}
