// What every tokenizer shares: special-token framing of encode(), batchEncode (truncation and
// padding) and applyChatTemplate. Subclasses supply the content encoder, decode and the vocabulary.
import { renderChatTemplate, selectChatTemplate, validateMessages } from './chat.js';
import type {
  BatchEncodeOptions,
  BatchEncoding,
  ChatMessage,
  ChatTemplateOptions,
  DecodeOptions,
  EncodeOptions,
  TokenizerSide,
  Tokenizer,
} from './types.js';

export interface SpecialTokenNames {
  bos: string | null;
  eos: string | null;
  pad: string | null;
  unk: string | null;
  additional: string[];
}

/** Ids as a plain array; accepts arrays and typed arrays. */
export function idArray(ids: ArrayLike<number>): readonly number[] {
  if (Array.isArray(ids)) return ids;
  if (ArrayBuffer.isView(ids)) return Array.from(ids);
  throw new TypeError('decode: ids must be an array (or typed array) of integers');
}

export abstract class BaseTokenizer implements Tokenizer {
  abstract readonly vocabSize: number;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly padToken: string | null;
  readonly unkToken: string | null;
  readonly additionalSpecialTokens: readonly string[];
  readonly modelMaxLength: number | null;
  readonly chatTemplates: Readonly<Record<string, string>>;
  paddingSide: TokenizerSide;
  truncationSide: TokenizerSide;

  protected constructor(init: {
    specials: SpecialTokenNames;
    modelMaxLength: number | null;
    chatTemplates: Record<string, string>;
    paddingSide: TokenizerSide;
    truncationSide: TokenizerSide;
  }) {
    this.bosToken = init.specials.bos;
    this.eosToken = init.specials.eos;
    this.padToken = init.specials.pad;
    this.unkToken = init.specials.unk;
    this.additionalSpecialTokens = Object.freeze([...init.specials.additional]);
    this.modelMaxLength = init.modelMaxLength;
    this.chatTemplates = Object.freeze({ ...init.chatTemplates });
    this.paddingSide = init.paddingSide;
    this.truncationSide = init.truncationSide;
  }

  // ---- supplied by subclasses ----
  /** Tokens of the text alone, no special tokens added around it. */
  protected abstract encodeContent(text: string, allowSpecial: boolean): number[];
  /** Ids encode() puts before / after the content when addSpecialTokens is true. */
  protected abstract readonly specialPrefix: readonly number[];
  protected abstract readonly specialSuffix: readonly number[];
  protected abstract readonly defaultAllowSpecial: boolean;
  abstract readonly specialTokenIds: readonly number[];
  abstract decode(ids: ArrayLike<number>, options?: DecodeOptions): string;
  abstract tokenToId(token: string): number | null;
  abstract idToToken(id: number): string | null;

  get bosTokenId(): number | null {
    return this.bosToken === null ? null : this.tokenToId(this.bosToken);
  }
  get eosTokenId(): number | null {
    return this.eosToken === null ? null : this.tokenToId(this.eosToken);
  }
  get padTokenId(): number | null {
    return this.padToken === null ? null : this.tokenToId(this.padToken);
  }
  get unkTokenId(): number | null {
    return this.unkToken === null ? null : this.tokenToId(this.unkToken);
  }
  get chatTemplate(): string | null {
    return this.chatTemplates.default ?? null;
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') throw new TypeError(`encode: text must be a string, got ${typeof text}`);
    const content = this.encodeContent(text, options.allowSpecial ?? this.defaultAllowSpecial);
    if (options.addSpecialTokens === false) return content;
    return [...this.specialPrefix, ...content, ...this.specialSuffix];
  }

  batchEncode(texts: readonly string[], options: BatchEncodeOptions = {}): BatchEncoding {
    if (!Array.isArray(texts)) throw new TypeError('batchEncode: texts must be an array of strings');
    const addSpecial = options.addSpecialTokens ?? true;
    const allowSpecial = options.allowSpecial ?? this.defaultAllowSpecial;
    const padding = options.padding === true ? 'longest' : options.padding === false ? undefined : options.padding;
    if (padding !== undefined && padding !== 'longest' && padding !== 'max_length') {
      throw new TypeError(`batchEncode: padding must be a boolean, 'longest' or 'max_length', got ${String(padding)}`);
    }
    const maxLength = options.maxLength ?? (options.truncation ? this.modelMaxLength ?? undefined : undefined);
    if (maxLength !== undefined && (!Number.isInteger(maxLength) || maxLength < 0)) {
      throw new RangeError(`batchEncode: maxLength must be a non-negative integer, got ${maxLength}`);
    }
    if (options.truncation && maxLength === undefined) {
      throw new Error('batchEncode: truncation needs maxLength (this tokenizer has no model_max_length)');
    }
    if (padding === 'max_length' && maxLength === undefined) {
      throw new Error("batchEncode: padding: 'max_length' needs maxLength");
    }
    const prefix = addSpecial ? this.specialPrefix : [];
    const suffix = addSpecial ? this.specialSuffix : [];
    const truncationSide = options.truncationSide ?? this.truncationSide;

    const rows = texts.map((text, i) => {
      if (typeof text !== 'string') throw new TypeError(`batchEncode: texts[${i}] must be a string`);
      let content = this.encodeContent(text, allowSpecial);
      if (options.truncation && maxLength !== undefined) {
        const room = maxLength - prefix.length - suffix.length;
        if (room < 0) {
          throw new RangeError(
            `batchEncode: maxLength ${maxLength} is shorter than the ${prefix.length + suffix.length} special tokens added`,
          );
        }
        if (content.length > room) {
          content = truncationSide === 'left' ? content.slice(content.length - room) : content.slice(0, room);
        }
      }
      return [...prefix, ...content, ...suffix];
    });

    if (padding === undefined) {
      return { inputIds: rows, attentionMask: rows.map((r) => r.map(() => 1)) };
    }
    let target = padding === 'max_length' ? maxLength! : rows.reduce((m, r) => Math.max(m, r.length), 0);
    const multiple = options.padToMultipleOf;
    if (multiple !== undefined) {
      if (!Number.isInteger(multiple) || multiple < 1) throw new RangeError('batchEncode: padToMultipleOf must be a positive integer');
      target = Math.ceil(target / multiple) * multiple;
    }
    const padId = options.padTokenId ?? this.padTokenId;
    if (padId === null) {
      throw new Error('batchEncode: padding needs a pad token; this tokenizer has none (pass padTokenId, e.g. eosTokenId)');
    }
    const side = options.paddingSide ?? this.paddingSide;
    const inputIds: number[][] = [];
    const attentionMask: number[][] = [];
    for (const row of rows) {
      const n = Math.max(0, target - row.length);
      const pad = new Array<number>(n).fill(padId);
      const zeros = new Array<number>(n).fill(0);
      const ones = new Array<number>(row.length).fill(1);
      if (side === 'left') {
        inputIds.push([...pad, ...row]);
        attentionMask.push([...zeros, ...ones]);
      } else {
        inputIds.push([...row, ...pad]);
        attentionMask.push([...ones, ...zeros]);
      }
    }
    return { inputIds, attentionMask };
  }

  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions & { tokenize: false }): string;
  applyChatTemplate(messages: readonly ChatMessage[], options?: ChatTemplateOptions & { tokenize?: true }): number[];
  applyChatTemplate(messages: readonly ChatMessage[], options?: ChatTemplateOptions): string | number[];
  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string | number[] {
    validateMessages(messages);
    const source = selectChatTemplate(this.chatTemplates, options.chatTemplate, options.tools !== undefined);
    const specialTokens: Record<string, string | string[]> = {};
    if (this.bosToken !== null) specialTokens.bos_token = this.bosToken;
    if (this.eosToken !== null) specialTokens.eos_token = this.eosToken;
    if (this.unkToken !== null) specialTokens.unk_token = this.unkToken;
    if (this.padToken !== null) specialTokens.pad_token = this.padToken;
    if (this.additionalSpecialTokens.length > 0) specialTokens.additional_special_tokens = [...this.additionalSpecialTokens];
    const rendered = renderChatTemplate(source, {
      messages,
      addGenerationPrompt: options.addGenerationPrompt ?? false,
      tools: options.tools,
      documents: options.documents,
      specialTokens,
      templateKwargs: options.templateKwargs,
    });
    if (options.tokenize === false) return rendered;
    // As transformers: the template writes the special tokens itself, so none are added, and the
    // special-token strings it wrote are recognized (note: so are any inside message contents).
    return this.encode(rendered, { addSpecialTokens: false, allowSpecial: true });
  }
}
