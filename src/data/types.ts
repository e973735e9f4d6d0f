// Types shared by the data pipeline: records (what a JSONL line says), examples (token ids ready
// for a model) and batches (padded rows). Conventions, as in transformers:
//  - labels are aligned with inputIds (labels[t] is the token at t, or -100); the loss shifts them,
//    so logits at t are scored against labels[t + 1]. -100 (IGNORE_INDEX) means "no loss here".
//  - attentionMask: 1 = real token, 0 = padding. Padding is on the right.
import type { ChatMessage } from '../tokenizer/types.js';

/** Label value that the loss ignores (tk.ops.crossEntropy's default ignoreIndex). */
export const IGNORE_INDEX = -100;

/** The JSONL shapes the pipeline reads (see records.ts for the detection rules). */
export type DataFormat = 'text' | 'completion' | 'alpaca' | 'chat' | 'classification' | 'preference';
export const DATA_FORMATS: readonly DataFormat[] = Object.freeze(['text', 'completion', 'alpaca', 'chat', 'classification', 'preference']);

/** What a dataset holds: 'lm' (text, completion, alpaca, chat), 'classification', 'preference', or 'packed' rows. */
export type DatasetKind = 'lm' | 'classification' | 'preference' | 'packed';

// ---- records: one parsed, validated JSONL line ----
export interface TextRecord { format: 'text'; text: string }
export interface CompletionRecord { format: 'completion'; prompt: string; completion: string }
export interface AlpacaRecord { format: 'alpaca'; instruction: string; input: string; output: string }
export interface ChatRecord { format: 'chat'; messages: ChatMessage[] }
export interface ClassificationRecord { format: 'classification'; text: string; label: string | number }
/**
 * Standard (strings) or conversational (message lists) preference pair. `prompt` is null when the
 * line had none (implicit prompt: the longest common prefix of chosen and rejected is used).
 */
export type PreferenceRecord =
  | { format: 'preference'; conversational: false; prompt: string | null; chosen: string; rejected: string }
  | { format: 'preference'; conversational: true; prompt: ChatMessage[] | null; chosen: ChatMessage[]; rejected: ChatMessage[] };
export type DataRecord = TextRecord | CompletionRecord | AlpacaRecord | ChatRecord | ClassificationRecord | PreferenceRecord;

// ---- examples ----
/** A causal-LM example: labels[t] = inputIds[t] where the loss counts, else -100. */
export interface LmExample {
  inputIds: number[];
  labels: number[];
}
/** A sequence-classification example; label is the class id (see Dataset.labelNames). */
export interface ClassificationExample {
  inputIds: number[];
  label: number;
}
/** A preference pair: prompt + chosen and prompt + rejected, prompt tokens masked (-100) in labels. */
export interface PreferenceExample {
  chosen: LmExample;
  rejected: LmExample;
}
/**
 * Several LM examples packed into one row. positionIds restart at 0 for each example; segmentIds
 * number the examples of the row 1, 2, ...; the first token of every example has label -100 so
 * that no position learns to predict the next example's first token.
 */
export interface PackedExample extends LmExample {
  positionIds: number[];
  segmentIds: number[];
}
export type AnyExample = LmExample | ClassificationExample | PreferenceExample | PackedExample;

export type KindOf<E> = E extends PackedExample
  ? 'packed'
  : E extends LmExample
    ? 'lm'
    : E extends ClassificationExample
      ? 'classification'
      : E extends PreferenceExample
        ? 'preference'
        : DatasetKind;

// ---- batches ----
/** [B, T] rows, right-padded. Packed batches also carry positionIds and segmentIds (0 = padding). */
export interface LmBatch {
  inputIds: number[][];
  labels: number[][];
  attentionMask: number[][];
  /** Packed batches only: positions restarting at 0 per example (padding: 0). */
  positionIds?: number[][];
  /**
   * Packed batches only: 1, 2, ... per example within a row, 0 on padding. Attention must stay
   * inside a segment: build the mask with packedAttentionMask(segmentIds).
   */
  segmentIds?: number[][];
}
export interface PackedBatch extends LmBatch {
  positionIds: number[][];
  segmentIds: number[][];
}
export interface ClassificationBatch {
  inputIds: number[][];
  attentionMask: number[][];
  /** [B] class ids. */
  labels: number[];
}
/** chosen and rejected padded to the same length T, so they can be concatenated into one [2B, T] batch. */
export interface PreferenceBatch {
  chosen: LmBatch;
  rejected: LmBatch;
}

export type BatchOf<E> = E extends PackedExample
  ? PackedBatch
  : E extends LmExample
    ? LmBatch
    : E extends ClassificationExample
      ? ClassificationBatch
      : E extends PreferenceExample
        ? PreferenceBatch
        : unknown;
