// DataLoader: batches in a seeded order, epoch after epoch, with a position that can be saved and
// restored so that a resumed run sees exactly the batches it had not seen yet.
//
// Position: (epoch, index), index = how many items of this epoch's order were already handed out.
// Order of epoch e: shuffledIndices(n, seed + e) (mulberry32 Fisher–Yates, see prng.ts), or
// 0..n-1 when shuffle is false. Once an epoch is used up (or, with dropLast, fewer than batchSize
// items are left) the position moves to (epoch + 1, 0).
import type { AnyDataset, Dataset } from './dataset.js';
import { collateFor } from './collate.js';
import { epochOrder, seed32 } from './prng.js';
import type { AnyExample, BatchOf, DatasetKind } from './types.js';

export interface DataLoaderOptions<E, B> {
  batchSize: number;
  /** Shuffle each epoch (seed + epoch). Default true. */
  shuffle?: boolean;
  /** Default 0. */
  seed?: number;
  /** Leave out an epoch's last batch when it would be smaller than batchSize. Default false. */
  dropLast?: boolean;
  /** Default: the dataset's padTokenId. */
  padTokenId?: number;
  padToMultipleOf?: number;
  padToLength?: number;
  /** Batches from examples. Default: the collate function of the dataset's kind (collate.ts). */
  collate?: (examples: E[]) => B;
  /** Kind of a plain example array (for the default collate). Default 'lm'. */
  kind?: DatasetKind;
}

/** A loader's position as plain JSON (JSON.stringify / JSON.parse it freely). */
export interface LoaderState {
  version: 1;
  epoch: number;
  /** Items of this epoch's order already handed out. */
  index: number;
  seed: number;
  shuffle: boolean;
  /** Dataset length; restore checks it. */
  size: number;
}

export class DataLoader<E extends AnyExample = AnyExample, B = BatchOf<E>> implements Iterable<B> {
  readonly size: number;
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly seed: number;
  readonly dropLast: boolean;
  private readonly items: readonly E[];
  private readonly collate: (examples: E[]) => B;
  private _epoch = 0;
  private _index = 0;
  private cachedEpoch = -1;
  private cachedOrder: readonly number[] = [];

  constructor(data: Dataset<E> | readonly E[], options: DataLoaderOptions<E, B>) {
    const isArray = Array.isArray(data);
    this.items = isArray ? (data as readonly E[]) : (data as Dataset<E>).examples;
    this.size = this.items.length;
    const { batchSize } = options;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`DataLoader: batchSize must be a positive integer, got ${String(batchSize)}`);
    this.batchSize = batchSize;
    this.shuffle = options.shuffle ?? true;
    this.seed = seed32(options.seed ?? 0);
    this.dropLast = options.dropLast ?? false;
    if (options.collate !== undefined) {
      this.collate = options.collate;
    } else {
      const kind: DatasetKind = isArray ? (options.kind ?? 'lm') : (data as Dataset<E>).kind;
      const padTokenId = options.padTokenId ?? (isArray ? null : (data as Dataset<E>).padTokenId);
      if (padTokenId === null || padTokenId === undefined) {
        throw new TypeError('DataLoader: no pad id (the tokenizer has no pad or eos token); pass padTokenId');
      }
      const fn = collateFor(kind, { padTokenId, padToMultipleOf: options.padToMultipleOf, padToLength: options.padToLength });
      this.collate = fn as unknown as (examples: E[]) => B;
    }
  }

  /** Batches per epoch. */
  get batchesPerEpoch(): number {
    return this.dropLast ? Math.floor(this.size / this.batchSize) : Math.ceil(this.size / this.batchSize);
  }

  get epoch(): number {
    return this._epoch;
  }

  /** Items of the current epoch already handed out. */
  get index(): number {
    return this._index;
  }

  /** The order (dataset indices) of an epoch. */
  order(epoch: number = this._epoch): readonly number[] {
    if (epoch === this.cachedEpoch) return this.cachedOrder;
    const o = this.shuffle ? epochOrder(this.size, this.seed, epoch) : Array.from({ length: this.size }, (_, i) => i);
    if (epoch === this._epoch) {
      this.cachedEpoch = epoch;
      this.cachedOrder = Object.freeze(o);
    }
    return o;
  }

  /** The dataset indices of the next batch; advances the position (rolling into the next epoch). */
  nextIndices(): number[] {
    if (this.batchesPerEpoch === 0) {
      throw new RangeError(`DataLoader: no batch in an epoch (${this.size} items, batchSize ${this.batchSize}${this.dropLast ? ', dropLast' : ''})`);
    }
    this.normalize();
    const order = this.order();
    const end = Math.min(this._index + this.batchSize, this.size);
    const idx = order.slice(this._index, end);
    this._index = end;
    this.normalize();
    return idx;
  }

  /** The next batch (rolling into the next epoch when this one is used up). */
  next(): B {
    return this.collate(this.nextIndices().map((i) => this.items[i]!));
  }

  /** The batches left in the current epoch; afterwards the position is (epoch + 1, 0). */
  *[Symbol.iterator](): Iterator<B> {
    this.normalize();
    const epoch = this._epoch;
    if (this.batchesPerEpoch === 0) {
      this.moveTo(epoch + 1, 0);
      return;
    }
    while (this._epoch === epoch) yield this.next();
  }

  state(): LoaderState {
    this.normalize();
    return { version: 1, epoch: this._epoch, index: this._index, seed: this.seed, shuffle: this.shuffle, size: this.size };
  }

  /** Continues from a state() taken from a loader over the same data with the same seed and shuffle. */
  restore(state: LoaderState): void {
    if (typeof state !== 'object' || state === null) throw new TypeError('DataLoader.restore: state must be an object from state()');
    const s = state as Partial<LoaderState>;
    if (s.version !== 1) throw new TypeError(`DataLoader.restore: unknown state version ${String(s.version)}`);
    if (!Number.isSafeInteger(s.epoch) || s.epoch! < 0) throw new TypeError(`DataLoader.restore: bad epoch ${String(s.epoch)}`);
    if (!Number.isSafeInteger(s.index) || s.index! < 0 || s.index! > this.size) {
      throw new TypeError(`DataLoader.restore: bad index ${String(s.index)} (dataset of ${this.size})`);
    }
    if (s.size !== this.size) throw new Error(`DataLoader.restore: the state is for a dataset of ${String(s.size)} items, this one has ${this.size}`);
    if (s.seed !== this.seed) throw new Error(`DataLoader.restore: the state has seed ${String(s.seed)}, this loader ${this.seed}`);
    if (s.shuffle !== this.shuffle) throw new Error(`DataLoader.restore: the state has shuffle ${String(s.shuffle)}, this loader ${this.shuffle}`);
    this.moveTo(s.epoch!, s.index!);
    this.normalize();
  }

  private moveTo(epoch: number, index: number): void {
    this._epoch = epoch;
    this._index = index;
  }

  private normalize(): void {
    if (this.batchesPerEpoch === 0) return;
    const left = this.size - this._index;
    if (left <= 0 || (this.dropLast && left < this.batchSize)) this.moveTo(this._epoch + 1, 0);
  }
}

/**
 * A DataLoader with the batch type of the dataset's kind; an AnyDataset (kind not known to the
 * type checker) gives a loader of the union of batch types.
 */
export function createDataLoader<E extends AnyExample>(data: Dataset<E> | readonly E[], options: DataLoaderOptions<E, BatchOf<E>>): DataLoader<E, BatchOf<E>>;
export function createDataLoader(data: AnyDataset, options: DataLoaderOptions<AnyExample, BatchOf<AnyExample>>): DataLoader<AnyExample>;
export function createDataLoader<E extends AnyExample>(data: Dataset<E> | readonly E[], options: DataLoaderOptions<E, BatchOf<E>>): DataLoader<E, BatchOf<E>> {
  return new DataLoader<E, BatchOf<E>>(data, options);
}
