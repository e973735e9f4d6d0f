// Collation: examples to right-padded [B, T] batches. T is the longest row in the batch (rounded up
// to padToMultipleOf), or exactly padToLength. Padding: inputIds = padTokenId, attentionMask 0,
// labels -100, and for packed rows positionIds 0 and segmentIds 0.
import { IGNORE_INDEX } from './types.js';
import type {
  AnyExample,
  ClassificationBatch,
  ClassificationExample,
  DatasetKind,
  LmBatch,
  LmExample,
  PackedBatch,
  PackedExample,
  PreferenceBatch,
  PreferenceExample,
} from './types.js';

export interface CollateOptions {
  /** Id written into padded positions (the dataset's padTokenId: the tokenizer's pad, else its eos). */
  padTokenId: number;
  /** Round the padded length up to a multiple of this. */
  padToMultipleOf?: number;
  /** Pad every batch to exactly this length (a row longer than it throws). */
  padToLength?: number;
}

function checkOptions(o: CollateOptions): void {
  if (!Number.isInteger(o.padTokenId) || o.padTokenId < 0) {
    throw new TypeError(`collate: padTokenId must be a non-negative integer, got ${String(o.padTokenId)} (the tokenizer has no pad or eos token? pass padTokenId)`);
  }
  if (o.padToMultipleOf !== undefined && (!Number.isInteger(o.padToMultipleOf) || o.padToMultipleOf < 1)) {
    throw new RangeError('collate: padToMultipleOf must be a positive integer');
  }
  if (o.padToLength !== undefined && (!Number.isInteger(o.padToLength) || o.padToLength < 1)) {
    throw new RangeError('collate: padToLength must be a positive integer');
  }
}

/** The padded length for rows of these lengths. */
export function paddedLength(lengths: readonly number[], o: Omit<CollateOptions, 'padTokenId'> = {}): number {
  const longest = lengths.reduce((m, n) => Math.max(m, n), 0);
  if (o.padToLength !== undefined) {
    if (longest > o.padToLength) throw new RangeError(`collate: a row of ${longest} tokens is longer than padToLength ${o.padToLength}`);
    return o.padToLength;
  }
  const m = o.padToMultipleOf ?? 1;
  return Math.ceil(longest / m) * m;
}

function padRow(row: readonly number[], T: number, value: number): number[] {
  const out = row.slice();
  for (let t = row.length; t < T; t++) out.push(value);
  return out;
}

function maskRow(n: number, T: number): number[] {
  const out = new Array<number>(T).fill(0);
  out.fill(1, 0, n);
  return out;
}

function lmRows(examples: readonly LmExample[], T: number, padId: number): LmBatch {
  examples.forEach((e, i) => {
    if (e.labels.length !== e.inputIds.length) throw new RangeError(`collate: example ${i} has ${e.inputIds.length} inputIds but ${e.labels.length} labels`);
  });
  return {
    inputIds: examples.map((e) => padRow(e.inputIds, T, padId)),
    labels: examples.map((e) => padRow(e.labels, T, IGNORE_INDEX)),
    attentionMask: examples.map((e) => maskRow(e.inputIds.length, T)),
  };
}

/** LM examples: inputIds, labels (-100 on padding) and attentionMask, [B, T]. */
export function collateLm(examples: readonly LmExample[], options: CollateOptions): LmBatch {
  checkOptions(options);
  return lmRows(examples, paddedLength(examples.map((e) => e.inputIds.length), options), options.padTokenId);
}

/** Packed rows: as collateLm plus positionIds and segmentIds (0 on padding). */
export function collatePacked(examples: readonly PackedExample[], options: CollateOptions): PackedBatch {
  checkOptions(options);
  const T = paddedLength(examples.map((e) => e.inputIds.length), options);
  return {
    ...lmRows(examples, T, options.padTokenId),
    positionIds: examples.map((e) => padRow(e.positionIds, T, 0)),
    segmentIds: examples.map((e) => padRow(e.segmentIds, T, 0)),
  };
}

/** Classification examples: inputIds and attentionMask [B, T], labels [B]. */
export function collateClassification(examples: readonly ClassificationExample[], options: CollateOptions): ClassificationBatch {
  checkOptions(options);
  const T = paddedLength(examples.map((e) => e.inputIds.length), options);
  return {
    inputIds: examples.map((e) => padRow(e.inputIds, T, options.padTokenId)),
    attentionMask: examples.map((e) => maskRow(e.inputIds.length, T)),
    labels: examples.map((e) => e.label),
  };
}

/** Preference pairs: chosen and rejected batches padded to one common length T. */
export function collatePreference(examples: readonly PreferenceExample[], options: CollateOptions): PreferenceBatch {
  checkOptions(options);
  const T = paddedLength(examples.flatMap((e) => [e.chosen.inputIds.length, e.rejected.inputIds.length]), options);
  return {
    chosen: lmRows(
      examples.map((e) => e.chosen),
      T,
      options.padTokenId,
    ),
    rejected: lmRows(
      examples.map((e) => e.rejected),
      T,
      options.padTokenId,
    ),
  };
}

/** The collate function for a dataset kind. */
export function collateFor(kind: DatasetKind, options: CollateOptions): (examples: readonly AnyExample[]) => unknown {
  switch (kind) {
    case 'lm':
      return (ex) => collateLm(ex as readonly LmExample[], options);
    case 'packed':
      return (ex) => collatePacked(ex as readonly PackedExample[], options);
    case 'classification':
      return (ex) => collateClassification(ex as readonly ClassificationExample[], options);
    case 'preference':
      return (ex) => collatePreference(ex as readonly PreferenceExample[], options);
    default:
      throw new TypeError(`collate: unknown dataset kind ${String(kind)}`);
  }
}
