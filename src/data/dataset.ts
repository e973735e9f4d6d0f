// Datasets: JSONL lines (or in-memory records) parsed, validated and tokenized into examples.
// Lines stream from the file in chunks and each is tokenized as it is read, so the raw text is
// never held whole. Empty (whitespace-only) lines are ignored but still counted in line numbers.
import type { Tokenizer } from '../tokenizer/types.js';
import { DataLineError, RecordError } from './errors.js';
import type { DataProblem } from './errors.js';
import { readLines, readLinesSync, stringLines } from './lines.js';
import type { Line } from './lines.js';
import { packExamples } from './pack.js';
import type { PackOptions } from './pack.js';
import { seed32, shuffledIndices } from './prng.js';
import { toRecord } from './records.js';
import {
  resolveTokenizeOptions,
  tokenizeAlpaca,
  tokenizeChat,
  tokenizePreference,
  tokenizePromptCompletion,
  tokenizeText,
  truncateExample,
} from './tokenize.js';
import type { ResolvedTokenizeOptions, TokenizeOptions } from './tokenize.js';
import { DATA_FORMATS, IGNORE_INDEX } from './types.js';
import type {
  AnyExample,
  ClassificationExample,
  DataFormat,
  DataRecord,
  KindOf,
  LmExample,
  PackedExample,
  PreferenceExample,
} from './types.js';

/** Dataset kinds a file can hold (packed datasets come from Dataset.pack). */
export type LoadKind = 'lm' | 'classification' | 'preference';

export interface LoadOptions extends TokenizeOptions {
  /** Read every line as this format instead of detecting it per line. */
  format?: DataFormat;
  /** Require this kind of dataset (lines of another kind are errors). Default: the kind of the first good line. */
  kind?: LoadKind;
  /**
   * Classification: the label names in id order. A string label must be one of them; an integer
   * label is taken as the id and must be < labels.length. Without it: all-integer labels are their
   * own ids (labelNames '0'..'max'); otherwise every label is turned into a string and the distinct
   * names sorted (UTF-16 code unit order) give ids 0, 1, ...
   */
  labels?: readonly string[];
  /** Skip malformed lines (counted in dataset.skipped, first reasons in dataset.skippedReasons) instead of throwing. Default false. */
  skipBadLines?: boolean;
  /** How many skip reasons to keep. Default 10. */
  maxSkippedReasons?: number;
  /** Drop LM/preference examples with no label left to train on (e.g. a prompt longer than seqLen). Default true. */
  dropNoLoss?: boolean;
  /** Name used in error messages for in-memory data (files use their path). */
  source?: string;
  /** Pad id for batches. Default: the tokenizer's pad token, else its eos token. */
  padTokenId?: number;
}

export interface SplitOptions {
  /** Validation share: ceil(fraction * n) examples (as Hugging Face datasets' train_test_split). In [0, 1]. */
  fraction?: number;
  /** Validation size as a count, in [0, n]. Give fraction or count, not both. */
  count?: number;
  /** Seed of the permutation that picks the validation examples. Default 0. */
  seed?: number;
}

export interface DatasetStats {
  /** Non-empty lines (or records) read. */
  lines: number;
  /** Examples in this dataset. */
  examples: number;
  /** Malformed lines skipped (skipBadLines). */
  skipped: number;
  /** Examples cut to seqLen (keeping their start). */
  truncated: number;
  /** Examples dropped because no token was left to train on (dropNoLoss). */
  droppedNoLoss: number;
  /** Examples per detected format. */
  formats: Partial<Record<DataFormat, number>>;
}

export interface DatasetInit<E extends AnyExample> {
  kind: KindOf<E>;
  examples: E[];
  source?: string;
  padTokenId?: number | null;
  labelNames?: readonly string[] | null;
  skipped?: number;
  skippedReasons?: readonly string[];
  stats?: Partial<DatasetStats>;
}

/** A list of tokenized examples and what is known about where they came from. */
export class Dataset<E extends AnyExample = AnyExample> implements Iterable<E> {
  readonly kind: KindOf<E>;
  readonly examples: readonly E[];
  /** File path, or the source name of in-memory data. */
  readonly source: string;
  /** Pad id for batches (the tokenizer's pad token, else eos), or null. */
  readonly padTokenId: number | null;
  /** Classification: class id -> label name. Null otherwise. */
  readonly labelNames: readonly string[] | null;
  /** Classification: label name -> class id. Null otherwise. */
  readonly labelToId: Readonly<Record<string, number>> | null;
  /** Malformed lines skipped while loading (skipBadLines: true). */
  readonly skipped: number;
  /** The first skip reasons, each "file:line: problem". */
  readonly skippedReasons: readonly string[];
  readonly stats: Readonly<DatasetStats>;

  constructor(init: DatasetInit<E>) {
    this.kind = init.kind;
    this.examples = Object.freeze(init.examples.slice());
    this.source = init.source ?? '<examples>';
    this.padTokenId = init.padTokenId ?? null;
    this.labelNames = init.labelNames ? Object.freeze([...init.labelNames]) : null;
    this.labelToId = this.labelNames ? Object.freeze(Object.fromEntries(this.labelNames.map((n, i) => [n, i]))) : null;
    this.skipped = init.skipped ?? 0;
    this.skippedReasons = Object.freeze([...(init.skippedReasons ?? [])]);
    this.stats = Object.freeze({
      lines: init.stats?.lines ?? init.examples.length,
      examples: init.examples.length,
      skipped: this.skipped,
      truncated: init.stats?.truncated ?? 0,
      droppedNoLoss: init.stats?.droppedNoLoss ?? 0,
      formats: Object.freeze({ ...(init.stats?.formats ?? {}) }),
    });
  }

  get length(): number {
    return this.examples.length;
  }

  get(i: number): E {
    const e = this.examples[i];
    if (e === undefined) throw new RangeError(`dataset index ${i} out of range [0, ${this.examples.length})`);
    return e;
  }

  [Symbol.iterator](): Iterator<E> {
    return this.examples[Symbol.iterator]();
  }

  /** A dataset of the examples at these indices, in this order. */
  select(indices: readonly number[]): Dataset<E> {
    return this.derive(indices.map((i) => this.get(i)));
  }

  /** A shuffled copy (the permutation shuffledIndices(length, seed)). */
  shuffled(seed: number): Dataset<E> {
    return this.select(shuffledIndices(this.length, seed));
  }

  /**
   * Train/validation split: the validation set is the first k indices of shuffledIndices(n, seed)
   * (k from fraction or count); both parts keep the dataset's order. Same seed, same split.
   */
  split(options: SplitOptions): { train: Dataset<E>; validation: Dataset<E> } {
    const n = this.length;
    const { fraction, count } = options;
    if ((fraction === undefined) === (count === undefined)) throw new TypeError('split: give exactly one of fraction and count');
    let k: number;
    if (fraction !== undefined) {
      if (typeof fraction !== 'number' || !(fraction >= 0 && fraction <= 1)) throw new RangeError(`split: fraction must be in [0, 1], got ${String(fraction)}`);
      // the epsilon keeps 0.1 * 30 (3.0000000000000004) at 3
      k = Math.min(n, Math.ceil(fraction * n - 1e-9));
    } else {
      if (!Number.isInteger(count) || count! < 0 || count! > n) throw new RangeError(`split: count must be an integer in [0, ${n}], got ${String(count)}`);
      k = count!;
    }
    const perm = shuffledIndices(n, seed32(options.seed ?? 0));
    const inVal = new Uint8Array(n);
    for (let i = 0; i < k; i++) inVal[perm[i]!] = 1;
    const train: E[] = [];
    const validation: E[] = [];
    this.examples.forEach((e, i) => (inVal[i] ? validation : train).push(e));
    return { train: this.derive(train), validation: this.derive(validation) };
  }

  /** LM datasets: pack examples into rows of at most seqLen tokens (see pack.ts). */
  pack(this: Dataset<LmExample>, seqLen: number, options: PackOptions = {}): Dataset<PackedExample> {
    if (this.kind !== 'lm') throw new TypeError(`pack: needs an lm dataset, this one is ${this.kind}`);
    const { rows, truncated } = packExamples(this.examples, seqLen, options);
    return new Dataset<PackedExample>({
      kind: 'packed',
      examples: rows,
      source: this.source,
      padTokenId: this.padTokenId,
      skipped: this.skipped,
      skippedReasons: this.skippedReasons,
      stats: { ...this.stats, truncated: this.stats.truncated + truncated },
    });
  }

  private derive(examples: E[]): Dataset<E> {
    return new Dataset<E>({
      kind: this.kind,
      examples,
      source: this.source,
      padTokenId: this.padTokenId,
      labelNames: this.labelNames,
      skipped: this.skipped,
      skippedReasons: this.skippedReasons,
      stats: this.stats,
    });
  }
}

export type AnyDataset = Dataset<LmExample> | Dataset<ClassificationExample> | Dataset<PreferenceExample>;
type ExampleOfKind<K> = K extends 'classification' ? ClassificationExample : K extends 'preference' ? PreferenceExample : LmExample;
type KindOfFormat<F> = F extends 'classification' ? 'classification' : F extends 'preference' ? 'preference' : 'lm';
type DatasetOfKind<K> = K extends LoadKind ? Dataset<ExampleOfKind<K>> : never;
/** The dataset type a load returns for these options: typed by kind, else by format, when given. */
export type DatasetFor<O> = O extends { kind: infer K extends LoadKind }
  ? DatasetOfKind<K>
  : O extends { format: infer F extends DataFormat }
    ? DatasetOfKind<KindOfFormat<F>>
    : AnyDataset;

export function kindOfFormat(format: DataFormat): LoadKind {
  return format === 'classification' ? 'classification' : format === 'preference' ? 'preference' : 'lm';
}

function hasLoss(ex: LmExample): boolean {
  return ex.labels.some((l) => l !== IGNORE_INDEX);
}

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Turns lines into a Dataset; one per load. */
class DatasetBuilder {
  private readonly examples: AnyExample[] = [];
  /** Classification without options.labels: raw labels, resolved to ids in finish(). */
  private readonly rawLabels: Array<string | number> = [];
  private readonly opts: ResolvedTokenizeOptions;
  private readonly format: DataFormat | undefined;
  private kind: LoadKind | null;
  private kindFrom: string;
  private readonly labelIds: Map<string, number> | null;
  private readonly skipBad: boolean;
  private readonly maxReasons: number;
  private readonly dropNoLoss: boolean;
  private lines = 0;
  private skipped = 0;
  private readonly skippedReasons: string[] = [];
  private truncated = 0;
  private droppedNoLoss = 0;
  private readonly formats: Partial<Record<DataFormat, number>> = {};

  constructor(
    private readonly tok: Tokenizer,
    private readonly options: LoadOptions,
    private readonly source: string,
  ) {
    if (tok === null || typeof tok !== 'object' || typeof tok.encode !== 'function') throw new TypeError('load: a tokenizer is required');
    this.opts = resolveTokenizeOptions(tok, options);
    if (options.format !== undefined && !DATA_FORMATS.includes(options.format)) {
      throw new TypeError(`load: format must be one of ${DATA_FORMATS.join(', ')}, got ${JSON.stringify(options.format)}`);
    }
    if (options.kind !== undefined && !['lm', 'classification', 'preference'].includes(options.kind)) {
      throw new TypeError(`load: kind must be 'lm', 'classification' or 'preference', got ${JSON.stringify(options.kind)}`);
    }
    this.format = options.format;
    const fkind = options.format === undefined ? undefined : kindOfFormat(options.format);
    if (fkind !== undefined && options.kind !== undefined && fkind !== options.kind) {
      throw new TypeError(`load: format ${options.format} gives ${fkind} examples, not kind ${options.kind}`);
    }
    this.kind = fkind ?? options.kind ?? null;
    this.kindFrom = options.format !== undefined ? 'options.format' : 'options.kind';
    if (options.labels !== undefined) {
      if (!Array.isArray(options.labels) || options.labels.some((l) => typeof l !== 'string')) throw new TypeError('load: labels must be an array of strings');
      this.labelIds = new Map(options.labels.map((l, i) => [l, i]));
      if (this.labelIds.size !== options.labels.length) throw new TypeError('load: labels has duplicates');
    } else {
      this.labelIds = null;
    }
    this.skipBad = options.skipBadLines ?? false;
    this.maxReasons = options.maxSkippedReasons ?? 10;
    this.dropNoLoss = options.dropNoLoss ?? true;
  }

  addLine(line: Line): void {
    if (line.text.trim() === '') return;
    this.lines++;
    let value: unknown;
    try {
      value = JSON.parse(line.text);
    } catch (e) {
      this.bad(line.lineNumber, 'bad_json', `bad JSON: ${errorMessage(e)}`);
      return;
    }
    this.add(value, line.lineNumber);
  }

  addRecord(value: unknown, lineNumber: number): void {
    this.lines++;
    this.add(value, lineNumber);
  }

  private add(value: unknown, lineNumber: number): void {
    try {
      const rec = toRecord(value, this.format);
      const kind = kindOfFormat(rec.format);
      if (rec.format === 'text' && this.kind === 'classification') {
        throw new RecordError('missing_field', 'missing field "label" (classification record)');
      }
      if (this.kind !== null && kind !== this.kind) {
        throw new RecordError(
          'wrong_kind',
          `a ${rec.format} record, but this dataset holds ${this.kind} examples (set by ${this.kindFrom}); pass format to read every line as one format`,
        );
      }
      let label: number | null = null;
      if (rec.format === 'classification' && this.labelIds !== null) label = this.knownLabel(rec.label);
      const example = this.tokenize(rec);
      if (this.kind === null) {
        this.kind = kind;
        this.kindFrom = `line ${lineNumber}`;
      }
      this.formats[rec.format] = (this.formats[rec.format] ?? 0) + 1;
      if (example === null) {
        this.droppedNoLoss++;
        return;
      }
      if (rec.format === 'classification') {
        if (label !== null) (example as ClassificationExample).label = label;
        else this.rawLabels.push(rec.label);
      }
      this.examples.push(example);
    } catch (e) {
      if (!(e instanceof RecordError)) throw e;
      this.bad(lineNumber, e.problem, e.message);
    }
  }

  private knownLabel(label: string | number): number {
    const names = this.options.labels!;
    if (typeof label === 'number') {
      if (label >= names.length) throw new RecordError('unknown_label', `unknown label: ${label} is not an id of labels (${names.length} labels)`);
      return label;
    }
    const id = this.labelIds!.get(label);
    if (id === undefined) throw new RecordError('unknown_label', `unknown label: ${JSON.stringify(label)} is not in labels`);
    return id;
  }

  /** The example for a record, or null when it has nothing to train on (dropNoLoss). */
  private tokenize(rec: DataRecord): AnyExample | null {
    const { tok, opts } = this;
    try {
      switch (rec.format) {
        case 'classification': {
          let inputIds = tok.encode(rec.text, { addSpecialTokens: opts.addSpecialTokens });
          if (opts.seqLen !== null && inputIds.length > opts.seqLen) {
            inputIds = inputIds.slice(0, opts.seqLen);
            this.truncated++;
          }
          return { inputIds, label: -1 };
        }
        case 'preference': {
          const pair = tokenizePreference(tok, rec, opts);
          const a = truncateExample(pair.chosen, opts.seqLen);
          const b = truncateExample(pair.rejected, opts.seqLen);
          if (a || b) this.truncated++;
          if (this.dropNoLoss && (!hasLoss(pair.chosen) || !hasLoss(pair.rejected))) return null;
          return pair;
        }
        default: {
          const ex =
            rec.format === 'text'
              ? tokenizeText(tok, rec.text, opts)
              : rec.format === 'completion'
                ? tokenizePromptCompletion(tok, rec.prompt, rec.completion, opts)
                : rec.format === 'alpaca'
                  ? tokenizeAlpaca(tok, rec, opts)
                  : tokenizeChat(tok, rec.messages, opts);
          if (truncateExample(ex, opts.seqLen)) this.truncated++;
          if (this.dropNoLoss && !hasLoss(ex)) return null;
          return ex;
        }
      }
    } catch (e) {
      throw new RecordError('tokenize', `${rec.format === 'chat' || rec.format === 'preference' ? 'tokenizer or chat template' : 'tokenizer'} failed: ${errorMessage(e)}`);
    }
  }

  private bad(lineNumber: number, problem: DataProblem, detail: string): void {
    const err = new DataLineError(this.source, lineNumber, problem, detail);
    if (!this.skipBad) throw err;
    this.skipped++;
    if (this.skippedReasons.length < this.maxReasons) this.skippedReasons.push(err.message);
  }

  finish(): AnyDataset {
    const kind = this.kind ?? 'lm';
    let labelNames: string[] | null = null;
    if (kind === 'classification') {
      if (this.options.labels !== undefined) {
        labelNames = [...this.options.labels];
      } else {
        const raw = this.rawLabels;
        if (raw.every((l) => typeof l === 'number')) {
          const max = raw.reduce<number>((m, l) => Math.max(m, l as number), -1);
          labelNames = Array.from({ length: max + 1 }, (_, i) => String(i));
          this.examples.forEach((e, i) => ((e as ClassificationExample).label = raw[i] as number));
        } else {
          labelNames = [...new Set(raw.map((l) => String(l)))].sort();
          const ids = new Map(labelNames.map((n, i) => [n, i]));
          this.examples.forEach((e, i) => ((e as ClassificationExample).label = ids.get(String(raw[i]))!));
        }
      }
    }
    const padTokenId = this.options.padTokenId ?? this.tok.padTokenId ?? this.tok.eosTokenId ?? null;
    return new Dataset<AnyExample>({
      kind: kind as KindOf<AnyExample>,
      examples: this.examples,
      source: this.source,
      padTokenId,
      labelNames,
      skipped: this.skipped,
      skippedReasons: this.skippedReasons,
      stats: { lines: this.lines, truncated: this.truncated, droppedNoLoss: this.droppedNoLoss, formats: this.formats },
    }) as AnyDataset;
  }
}

/**
 * Reads a JSONL file (streamed in chunks) into a dataset. Formats are detected per line (see
 * records.ts) unless options.format is given. A malformed line throws DataLineError
 * ("path:line: problem") unless skipBadLines.
 */
export async function loadJsonl<O extends LoadOptions = LoadOptions>(path: string, tokenizer: Tokenizer, options?: O): Promise<DatasetFor<O>> {
  const b = new DatasetBuilder(tokenizer, options ?? {}, path);
  for await (const line of readLines(path)) b.addLine(line);
  return b.finish() as DatasetFor<O>;
}

/** loadJsonl, synchronously (the file still streams in chunks). */
export function loadJsonlSync<O extends LoadOptions = LoadOptions>(path: string, tokenizer: Tokenizer, options?: O): DatasetFor<O> {
  const b = new DatasetBuilder(tokenizer, options ?? {}, path);
  for (const line of readLinesSync(path)) b.addLine(line);
  return b.finish() as DatasetFor<O>;
}

/** A dataset from JSONL text in memory (errors name options.source, default '<string>'). */
export function datasetFromJsonl<O extends LoadOptions = LoadOptions>(text: string, tokenizer: Tokenizer, options?: O): DatasetFor<O> {
  if (typeof text !== 'string') throw new TypeError('datasetFromJsonl: text must be a string');
  const b = new DatasetBuilder(tokenizer, options ?? {}, options?.source ?? '<string>');
  for (const line of stringLines(text)) b.addLine(line);
  return b.finish() as DatasetFor<O>;
}

/** A dataset from parsed records (objects as JSONL lines would hold); record i is "line" i + 1 in errors. */
export function datasetFromRecords<O extends LoadOptions = LoadOptions>(records: readonly unknown[], tokenizer: Tokenizer, options?: O): DatasetFor<O> {
  if (!Array.isArray(records)) throw new TypeError('datasetFromRecords: records must be an array');
  const b = new DatasetBuilder(tokenizer, options ?? {}, options?.source ?? '<records>');
  records.forEach((r, i) => b.addRecord(r, i + 1));
  return b.finish() as DatasetFor<O>;
}
