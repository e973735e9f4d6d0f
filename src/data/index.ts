// The training data pipeline: JSONL in the shapes practitioners use -> tokenized examples ->
// padded or packed batches, in a seeded, resumable order.
//
//   const ds = await tk.loadJsonl('train.jsonl', tokenizer, { kind: 'lm', seqLen: 1024 });
//   const { train, validation } = ds.split({ fraction: 0.05, seed: 1 });
//   const loader = new tk.DataLoader(train.pack(1024), { batchSize: 8, seed: 42 }); // or train, unpacked
//   for (const batch of loader) { ... }   // one epoch: inputIds, labels, attentionMask (+ positionIds, segmentIds)
//   save(loader.state()); ... loader.restore(saved);   // resume exactly where it stopped
//
// Without kind or format the load is typed AnyDataset: narrow on ds.kind, or use createDataLoader.
export { IGNORE_INDEX, DATA_FORMATS } from './types.js';
export type {
  DataFormat,
  DatasetKind,
  DataRecord,
  TextRecord,
  CompletionRecord,
  AlpacaRecord,
  ChatRecord,
  ClassificationRecord,
  PreferenceRecord,
  LmExample,
  ClassificationExample,
  PreferenceExample,
  PackedExample,
  AnyExample,
  KindOf,
  LmBatch,
  PackedBatch,
  ClassificationBatch,
  PreferenceBatch,
  BatchOf,
} from './types.js';
export { DataLineError } from './errors.js';
export type { DataProblem } from './errors.js';
export { Rng, shuffledIndices, seededShuffle, epochOrder } from './prng.js';
export { readLines, readLinesSync } from './lines.js';
export type { Line } from './lines.js';
export { detectFormat, toRecord } from './records.js';
export {
  DEFAULT_ALPACA_TEMPLATE,
  renderAlpacaPrompt,
  assistantSpans,
  tokenizePromptCompletion,
  tokenizeChat,
  resolveTokenizeOptions,
} from './tokenize.js';
export type { AlpacaTemplate, TokenizeOptions, ResolvedTokenizeOptions } from './tokenize.js';
export { Dataset, loadJsonl, loadJsonlSync, datasetFromJsonl, datasetFromRecords, kindOfFormat } from './dataset.js';
export type { AnyDataset, DatasetFor, DatasetInit, DatasetStats, LoadKind, LoadOptions, SplitOptions } from './dataset.js';
export { packExamples, packGroups, packRow, packedAttentionMask } from './pack.js';
export type { PackOptions, PackResult, PackStrategy } from './pack.js';
export { collateLm, collatePacked, collateClassification, collatePreference, collateFor, paddedLength } from './collate.js';
export type { CollateOptions } from './collate.js';
export { DataLoader, createDataLoader } from './loader.js';
export type { DataLoaderOptions, LoaderState } from './loader.js';
