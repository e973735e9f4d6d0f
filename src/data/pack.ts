// Packing: several short LM examples share one row of at most seqLen tokens. Attention must not
// cross examples: each packed row carries segmentIds (1, 2, ... per example, 0 = padding) and
// positionIds that restart at 0 per example; packedAttentionMask(segmentIds) builds the
// block-diagonal causal mask. The first token of every example gets label -100, so the last
// position of one example is never trained to predict the first token of the next.
import { IGNORE_INDEX } from './types.js';
import type { LmExample, PackedExample } from './types.js';

export type PackStrategy = 'bfd' | 'sequential';

export interface PackOptions {
  /**
   * 'bfd' (default): best-fit decreasing, as TRL's packing_strategy='bfd': examples by length,
   * longest first, each into the row whose free space fits it most tightly; rows in creation order.
   * 'sequential': dataset order, a new row whenever the next example does not fit.
   */
  strategy?: PackStrategy;
}

export interface PackResult {
  rows: PackedExample[];
  /** Examples longer than seqLen, cut to their first seqLen tokens. */
  truncated: number;
}

/** Smallest index >= lo with a positive count, over [0, n): a segment tree of counts. */
class FreeSpaceIndex {
  private readonly size: number;
  private readonly tree: Int32Array;
  private readonly buckets: number[][];

  constructor(n: number) {
    let s = 1;
    while (s < n) s *= 2;
    this.size = s;
    this.tree = new Int32Array(2 * s);
    this.buckets = Array.from({ length: n }, () => []);
  }

  add(space: number, row: number): void {
    this.buckets[space]!.push(row);
    for (let i = space + this.size; i >= 1; i >>= 1) this.tree[i]!++;
  }

  /** Takes a row whose free space is the smallest >= need, or returns -1. */
  take(need: number): { row: number; space: number } | null {
    const space = this.findFirst(1, 0, this.size, need);
    if (space < 0) return null;
    const row = this.buckets[space]!.pop()!;
    for (let i = space + this.size; i >= 1; i >>= 1) this.tree[i]!--;
    return { row, space };
  }

  private findFirst(node: number, lo: number, hi: number, need: number): number {
    if (hi <= need || this.tree[node] === 0) return -1;
    if (hi - lo === 1) return lo;
    const mid = (lo + hi) >> 1;
    const left = this.findFirst(2 * node, lo, mid, need);
    return left >= 0 ? left : this.findFirst(2 * node + 1, mid, hi, need);
  }
}

/** Groups of example indices, one group per row, each group's total length <= seqLen. */
export function packGroups(lengths: readonly number[], seqLen: number, strategy: PackStrategy = 'bfd'): number[][] {
  if (!Number.isInteger(seqLen) || seqLen < 1) throw new RangeError(`pack: seqLen must be a positive integer, got ${seqLen}`);
  const len = (i: number): number => Math.min(lengths[i]!, seqLen);
  const groups: number[][] = [];
  if (strategy === 'sequential') {
    let used = 0;
    lengths.forEach((_, i) => {
      const n = len(i);
      if (n === 0) return;
      if (groups.length === 0 || used + n > seqLen) {
        groups.push([]);
        used = 0;
      }
      groups[groups.length - 1]!.push(i);
      used += n;
    });
    return groups;
  }
  if (strategy !== 'bfd') throw new TypeError(`pack: strategy must be 'bfd' or 'sequential', got ${String(strategy)}`);
  const order = lengths.map((_, i) => i).filter((i) => len(i) > 0);
  order.sort((a, b) => len(b) - len(a) || a - b);
  const free = new FreeSpaceIndex(seqLen + 1);
  for (const i of order) {
    const n = len(i);
    const hit = free.take(n);
    if (hit === null) {
      groups.push([i]);
      free.add(seqLen - n, groups.length - 1);
    } else {
      groups[hit.row]!.push(i);
      free.add(hit.space - n, hit.row);
    }
  }
  return groups;
}

/** One packed row from whole examples (each cut to seqLen first, if given). */
export function packRow(examples: readonly LmExample[], seqLen?: number): PackedExample {
  const row: PackedExample = { inputIds: [], labels: [], positionIds: [], segmentIds: [] };
  examples.forEach((ex, k) => {
    const n = seqLen === undefined ? ex.inputIds.length : Math.min(ex.inputIds.length, seqLen);
    for (let t = 0; t < n; t++) {
      row.inputIds.push(ex.inputIds[t]!);
      row.labels.push(t === 0 ? IGNORE_INDEX : ex.labels[t]!);
      row.positionIds.push(t);
      row.segmentIds.push(k + 1);
    }
  });
  if (seqLen !== undefined && row.inputIds.length > seqLen) throw new RangeError(`pack: row of ${row.inputIds.length} tokens exceeds seqLen ${seqLen}`);
  return row;
}

/** Packs examples into rows of at most seqLen tokens. */
export function packExamples(examples: readonly LmExample[], seqLen: number, options: PackOptions = {}): PackResult {
  const groups = packGroups(
    examples.map((e) => e.inputIds.length),
    seqLen,
    options.strategy ?? 'bfd',
  );
  const truncated = examples.reduce((n, e) => n + (e.inputIds.length > seqLen ? 1 : 0), 0);
  return { rows: groups.map((g) => packRow(g.map((i) => examples[i]!), seqLen)), truncated };
}

/**
 * The attention mask of packed rows as Int8Array [B, 1, T, T] (row-major), 1 = masked, 0 = may
 * attend: query t sees key j iff j <= t and both are in the same segment (segmentIds equal and
 * nonzero). A padding query (segment 0) sees only itself, so no row is fully masked. This is the
 * layout of the models' attention masks (tk.tensor(mask, [B, 1, T, T], { dtype: 'i8' })).
 */
export function packedAttentionMask(segmentIds: readonly (readonly number[])[]): Int8Array {
  const B = segmentIds.length;
  const T = segmentIds[0]?.length ?? 0;
  if (segmentIds.some((r) => r.length !== T)) throw new RangeError('packedAttentionMask: segmentIds rows must have equal length');
  const mask = new Int8Array(B * T * T).fill(1);
  for (let b = 0; b < B; b++) {
    const seg = segmentIds[b]!;
    for (let t = 0; t < T; t++) {
      const base = (b * T + t) * T;
      const s = seg[t]!;
      if (s === 0) {
        mask[base + t] = 0;
        continue;
      }
      for (let j = 0; j <= t; j++) if (seg[j] === s) mask[base + j] = 0;
    }
  }
  return mask;
}
