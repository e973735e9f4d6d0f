// Records to token ids. Conventions (see types.ts): labels aligned with inputIds, -100 = no loss.
//
// prompt/completion (and alpaca, and string preference pairs): the whole text prompt + completion
// is encoded once (so the ids are those the model sees at inference on the joined text), with the
// tokenizer's special tokens (addSpecialTokens, default true); the prompt is also encoded alone and
// the tokens in the longest common prefix of the two encodings are the prompt tokens (as TRL does;
// where a token straddles the boundary it goes to the completion). EOS is appended when the
// sequence does not already end with it (appendEos, default true; nothing when the tokenizer has no
// eos token). text: the same with an empty prompt (everything trained, bos if any masked).
//
// chat: the conversation is rendered with the tokenizer's chat template (applyChatTemplate). The
// loss covers assistant turns only, found by rendering prefixes: for the assistant message i, its
// span starts where messages[0..i) rendered with the generation prompt ends and stops where
// messages[0..i] rendered ends (both compared token by token with the full rendering, taking the
// longest common prefix). The span so includes the template's end-of-turn tokens (e.g. eos or
// <|im_end|>), which teaches the model to stop; nothing is appended (the template ends turns).
// Templates that render earlier turns differently once later ones exist (e.g. dropping reasoning
// from past turns) shrink a span to the common part rather than mislabel tokens.
//
// Truncation: an example longer than seqLen keeps its first seqLen tokens (and labels). A
// truncated completion loses its EOS (the model is not taught to stop mid-text).
import type { ChatMessage, ChatTemplateOptions, Tokenizer } from '../tokenizer/types.js';
import { IGNORE_INDEX } from './types.js';
import type { AlpacaRecord, LmExample, PreferenceRecord } from './types.js';

/** Prompt templates for Alpaca records; `{instruction}` and `{input}` are replaced (once, not recursively). */
export interface AlpacaTemplate {
  /** Used when input is a non-empty string. */
  withInput: string;
  /** Used when input is missing or empty. */
  withoutInput: string;
}

/**
 * The default Alpaca prompt: "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n",
 * the Input section left out when input is empty. The output follows the prompt directly.
 */
export const DEFAULT_ALPACA_TEMPLATE: Readonly<AlpacaTemplate> = Object.freeze({
  withInput: '### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n',
  withoutInput: '### Instruction:\n{instruction}\n\n### Response:\n',
});

/** The Alpaca prompt for an instruction and input. A string template serves both cases. */
export function renderAlpacaPrompt(instruction: string, input: string, template: string | AlpacaTemplate = DEFAULT_ALPACA_TEMPLATE): string {
  const t = typeof template === 'string' ? template : input.length > 0 ? template.withInput : template.withoutInput;
  return t.replace(/\{(instruction|input)\}/g, (_, k: string) => (k === 'instruction' ? instruction : input));
}

export interface TokenizeOptions {
  /** Keep the first seqLen tokens of each example. Default: the tokenizer's modelMaxLength, else no limit. */
  seqLen?: number | null;
  /** Compute the loss on prompt tokens too (prompt, instruction, non-assistant chat turns). Default false. */
  trainOnPrompt?: boolean;
  /** Append the eos token to text, completions, alpaca outputs and string preference responses. Default true. */
  appendEos?: boolean;
  /** Let the tokenizer add its special tokens (e.g. bos) when encoding non-chat text. Default true. */
  addSpecialTokens?: boolean;
  /** Alpaca prompt template (default DEFAULT_ALPACA_TEMPLATE). */
  alpacaTemplate?: string | AlpacaTemplate;
  /** Chat template name or literal Jinja template (default: the tokenizer's). */
  chatTemplate?: string;
  /** Extra chat template variables, e.g. { enable_thinking: false }. */
  chatTemplateKwargs?: Record<string, unknown>;
}

/** Options with defaults applied. */
export interface ResolvedTokenizeOptions {
  seqLen: number | null;
  trainOnPrompt: boolean;
  appendEos: boolean;
  addSpecialTokens: boolean;
  alpacaTemplate: string | AlpacaTemplate;
  chatOptions: ChatTemplateOptions;
}

export function resolveTokenizeOptions(tokenizer: Tokenizer, o: TokenizeOptions = {}): ResolvedTokenizeOptions {
  const seqLen = o.seqLen === undefined ? tokenizer.modelMaxLength : o.seqLen;
  if (seqLen !== null && (!Number.isInteger(seqLen) || seqLen < 1)) throw new RangeError(`seqLen must be a positive integer, got ${String(seqLen)}`);
  const tpl = o.alpacaTemplate ?? DEFAULT_ALPACA_TEMPLATE;
  if (typeof tpl !== 'string' && (typeof tpl !== 'object' || typeof tpl.withInput !== 'string' || typeof tpl.withoutInput !== 'string')) {
    throw new TypeError('alpacaTemplate must be a string or { withInput: string, withoutInput: string }');
  }
  const chatOptions: ChatTemplateOptions = {};
  if (o.chatTemplate !== undefined) chatOptions.chatTemplate = o.chatTemplate;
  if (o.chatTemplateKwargs !== undefined) chatOptions.templateKwargs = o.chatTemplateKwargs;
  return {
    seqLen,
    trainOnPrompt: o.trainOnPrompt ?? false,
    appendEos: o.appendEos ?? true,
    addSpecialTokens: o.addSpecialTokens ?? true,
    alpacaTemplate: tpl,
    chatOptions,
  };
}

export function commonPrefixLength(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** Cuts an example to its first seqLen tokens; returns whether it was cut. */
export function truncateExample(ex: LmExample, seqLen: number | null): boolean {
  if (seqLen === null || ex.inputIds.length <= seqLen) return false;
  ex.inputIds.length = seqLen;
  ex.labels.length = seqLen;
  return true;
}

/** prompt + completion as one example, prompt tokens masked unless trainOnPrompt (not truncated). */
export function tokenizePromptCompletion(tok: Tokenizer, prompt: string, completion: string, o: ResolvedTokenizeOptions): LmExample {
  const enc = { addSpecialTokens: o.addSpecialTokens };
  const inputIds = tok.encode(prompt + completion, enc);
  const boundary = o.trainOnPrompt ? 0 : commonPrefixLength(tok.encode(prompt, enc), inputIds);
  const eos = tok.eosTokenId;
  if (o.appendEos && eos !== null && inputIds[inputIds.length - 1] !== eos) inputIds.push(eos);
  const labels = inputIds.map((id, t) => (t < boundary ? IGNORE_INDEX : id));
  return { inputIds, labels };
}

export function tokenizeText(tok: Tokenizer, text: string, o: ResolvedTokenizeOptions): LmExample {
  return tokenizePromptCompletion(tok, '', text, { ...o, trainOnPrompt: false });
}

export function tokenizeAlpaca(tok: Tokenizer, r: AlpacaRecord, o: ResolvedTokenizeOptions): LmExample {
  return tokenizePromptCompletion(tok, renderAlpacaPrompt(r.instruction, r.input, o.alpacaTemplate), r.output, o);
}

/**
 * A conversation rendered with the chat template; the loss covers assistant messages with index
 * >= trainFrom (all tokens when trainOnPrompt). Not truncated.
 */
export function tokenizeChat(tok: Tokenizer, messages: readonly ChatMessage[], o: ResolvedTokenizeOptions, trainFrom = 0): LmExample {
  const inputIds = tok.applyChatTemplate(messages, { ...o.chatOptions, tokenize: true });
  if (o.trainOnPrompt) return { inputIds, labels: inputIds.slice() };
  const labels = new Array<number>(inputIds.length).fill(IGNORE_INDEX);
  for (const span of assistantSpans(tok, messages, inputIds, o.chatOptions, trainFrom)) {
    for (let t = span[0]; t < span[1]; t++) labels[t] = inputIds[t]!;
  }
  return { inputIds, labels };
}

/**
 * [start, end) token spans of the assistant messages (index >= trainFrom) within `full`, which must be
 * applyChatTemplate(messages, chatOptions) (tokenized).
 */
export function assistantSpans(
  tok: Tokenizer,
  messages: readonly ChatMessage[],
  full: readonly number[],
  chatOptions: ChatTemplateOptions = {},
  trainFrom = 0,
): Array<[number, number]> {
  const spans: Array<[number, number]> = [];
  for (let i = Math.max(0, trainFrom); i < messages.length; i++) {
    if (messages[i]!.role !== 'assistant') continue;
    let start = 0;
    if (i > 0) {
      start = commonPrefixLength(tok.applyChatTemplate(messages.slice(0, i), { ...chatOptions, addGenerationPrompt: true, tokenize: true }), full);
    } else {
      try {
        start = commonPrefixLength(tok.applyChatTemplate([], { ...chatOptions, addGenerationPrompt: true, tokenize: true }), full);
      } catch {
        start = 0; // templates that cannot render an empty conversation
      }
    }
    // the last message ends where the full rendering does (same call): one render saved
    const end =
      i === messages.length - 1 ? full.length : commonPrefixLength(tok.applyChatTemplate(messages.slice(0, i + 1), { ...chatOptions, tokenize: true }), full);
    if (end > start) spans.push([start, end]);
  }
  return spans;
}

function sameMessage(a: ChatMessage, b: ChatMessage): boolean {
  return a.role === b.role && a.content === b.content;
}

/** The prompt of a preference record: given, or the longest common prefix of chosen and rejected (as TRL's extract_prompt). */
export function splitPreference(r: PreferenceRecord):
  | { conversational: false; prompt: string; chosen: string; rejected: string }
  | { conversational: true; prompt: ChatMessage[]; chosen: ChatMessage[]; rejected: ChatMessage[] } {
  if (r.conversational) {
    if (r.prompt !== null) return { conversational: true, prompt: r.prompt, chosen: r.chosen, rejected: r.rejected };
    let i = 0;
    while (i < r.chosen.length && i < r.rejected.length && sameMessage(r.chosen[i]!, r.rejected[i]!)) i++;
    return { conversational: true, prompt: r.chosen.slice(0, i), chosen: r.chosen.slice(i), rejected: r.rejected.slice(i) };
  }
  if (r.prompt !== null) return { conversational: false, prompt: r.prompt, chosen: r.chosen, rejected: r.rejected };
  let i = 0;
  while (i < r.chosen.length && i < r.rejected.length && r.chosen[i] === r.rejected[i]) i++;
  if (i > 0 && i < Math.min(r.chosen.length, r.rejected.length) && r.chosen[i - 1] === ' ') i--;
  return { conversational: false, prompt: r.chosen.slice(0, i), chosen: r.chosen.slice(i), rejected: r.rejected.slice(i) };
}

/** Both sides of a preference pair as LM examples (prompt masked unless trainOnPrompt; not truncated). */
export function tokenizePreference(tok: Tokenizer, r: PreferenceRecord, o: ResolvedTokenizeOptions): { chosen: LmExample; rejected: LmExample } {
  const p = splitPreference(r);
  if (p.conversational) {
    return {
      chosen: tokenizeChat(tok, [...p.prompt, ...p.chosen], o, p.prompt.length),
      rejected: tokenizeChat(tok, [...p.prompt, ...p.rejected], o, p.prompt.length),
    };
  }
  return { chosen: tokenizePromptCompletion(tok, p.prompt, p.chosen, o), rejected: tokenizePromptCompletion(tok, p.prompt, p.rejected, o) };
}
