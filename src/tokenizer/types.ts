// The tokenizer interface shared by the rest of tunekit (data pipeline, trainer, generation).
// Two implementations: HfTokenizer (a Hugging Face tokenizer.json + tokenizer_config.json, run by
// @huggingface/tokenizers) and ByteTokenizer (256 byte tokens plus specials, for models trained
// from scratch). Both extend BaseTokenizer (base.ts), which owns batching and chat templates.

/** One chat message. Extra keys (tool_calls, name, ...) are passed through to the chat template. */
export interface ChatMessage {
  role: string;
  content: string;
  [key: string]: unknown;
}

export interface EncodeOptions {
  /**
   * Add the tokenizer's special tokens around the text (bos/eos, or what tokenizer.json's
   * post_processor adds). Default true, as in transformers.
   */
  addSpecialTokens?: boolean;
  /**
   * Recognize special-token strings (e.g. '<|eos|>') inside the text as their ids. When false they
   * are tokenized as ordinary text. Default: true for loaded tokenizers unless tokenizer_config.json
   * sets split_special_tokens: true; false for byteTokenizer() (whose saved config sets it).
   */
  allowSpecial?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens (bos, eos, pad, unk, additional and added tokens marked special). Default false. */
  skipSpecialTokens?: boolean;
}

export type TokenizerSide = 'left' | 'right';

export interface BatchEncodeOptions extends EncodeOptions {
  /**
   * true or 'longest': pad every row to the longest row; 'max_length': pad to maxLength;
   * false (default): no padding (rows keep their own lengths).
   */
  padding?: boolean | 'longest' | 'max_length';
  /** Length limit for truncation and for padding: 'max_length'. Defaults to modelMaxLength for truncation. */
  maxLength?: number;
  /** Cut rows longer than maxLength; special tokens added by addSpecialTokens are kept. Default false. */
  truncation?: boolean;
  /** Round padded lengths up to a multiple of this. */
  padToMultipleOf?: number;
  /** Defaults to the tokenizer's paddingSide (tokenizer_config.json padding_side, else 'right'). */
  paddingSide?: TokenizerSide;
  /** Defaults to the tokenizer's truncationSide (tokenizer_config.json truncation_side, else 'right'). */
  truncationSide?: TokenizerSide;
  /** Overrides the tokenizer's pad token id for this call (e.g. eosTokenId when there is no pad token). */
  padTokenId?: number;
}

export interface BatchEncoding {
  inputIds: number[][];
  attentionMask: number[][];
}

export interface ChatTemplateOptions {
  /** Append the prompt that opens an assistant turn (add_generation_prompt). Default false. */
  addGenerationPrompt?: boolean;
  /** Return token ids (default, as in transformers) instead of the rendered string. */
  tokenize?: boolean;
  /**
   * A template name from tokenizer_config.json's list form (e.g. 'tool_use'), or a literal Jinja
   * template. Default: the 'default' template ('tool_use' when tools are given and it exists).
   */
  chatTemplate?: string;
  /** Passed to the template as `tools`. */
  tools?: unknown[];
  /** Passed to the template as `documents`. */
  documents?: unknown[];
  /** Extra template variables (transformers' **kwargs), e.g. { enable_thinking: false }. */
  templateKwargs?: Record<string, unknown>;
}

/** The tokenizer interface used across tunekit. Ids are plain numbers. */
export interface Tokenizer {
  /** Number of embedding rows needed: the largest id (model vocab or added token) + 1. */
  readonly vocabSize: number;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly padToken: string | null;
  readonly unkToken: string | null;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly padTokenId: number | null;
  readonly unkTokenId: number | null;
  /** Ids skipped by decode({ skipSpecialTokens: true }), ascending. */
  readonly specialTokenIds: readonly number[];
  /** tokenizer_config.json model_max_length (null when absent or the "no limit" sentinel). */
  readonly modelMaxLength: number | null;
  /** Default side for batchEncode padding. */
  paddingSide: TokenizerSide;
  /** Default side for batchEncode truncation. */
  truncationSide: TokenizerSide;
  /** The default chat template, or null when there is none. */
  readonly chatTemplate: string | null;
  /** All named chat templates ('default' for the plain string form). */
  readonly chatTemplates: Readonly<Record<string, string>>;

  encode(text: string, options?: EncodeOptions): number[];
  /** ids: a number array or a typed array (Int32Array, ...). */
  decode(ids: ArrayLike<number>, options?: DecodeOptions): string;
  tokenToId(token: string): number | null;
  idToToken(id: number): string | null;
  batchEncode(texts: readonly string[], options?: BatchEncodeOptions): BatchEncoding;
  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions & { tokenize: false }): string;
  applyChatTemplate(messages: readonly ChatMessage[], options?: ChatTemplateOptions & { tokenize?: true }): number[];
  applyChatTemplate(messages: readonly ChatMessage[], options?: ChatTemplateOptions): string | number[];
}
