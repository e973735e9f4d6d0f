// Tokenizers: Hugging Face tokenizer directories (via @huggingface/tokenizers) and a byte-level
// tokenizer for models trained from scratch, behind one Tokenizer interface.
export type {
  Tokenizer,
  ChatMessage,
  EncodeOptions,
  DecodeOptions,
  BatchEncodeOptions,
  BatchEncoding,
  ChatTemplateOptions,
  TokenizerSide,
} from './types.js';
export { BaseTokenizer } from './base.js';
export { HfTokenizer, loadTokenizer, loadTokenizerSync } from './hf.js';
export { ByteTokenizer, byteTokenizer, DEFAULT_BYTE_SPECIALS, DEFAULT_BYTE_CHAT_TEMPLATE, BYTE_TO_UNICODE } from './byte.js';
export type { ByteTokenizerOptions } from './byte.js';
export { ChatTemplateError } from './chat.js';
export { TokenizerFileError } from './config.js';
