// Seeded shuffling, train/validation splits, and a loader whose position survives a restart.
import { describe, expect, it } from 'vitest';
import * as tk from 'tunekit';

const tok = tk.byteTokenizer();
const N = 23;
const load = () => tk.datasetFromJsonl(Array.from({ length: N }, (_, i) => JSON.stringify({ text: `ex${i}` })).join('\n'), tok, { kind: 'lm' });
const ds = load();
const name = (ex: tk.LmExample): string => tok.decode(ex.inputIds, { skipSpecialTokens: true });

describe('PRNG and shuffling', () => {
  it('mulberry32 from fmix32(seed): pinned outputs, same seed same stream', () => {
    const a = new tk.Rng(42), b = new tk.Rng(42);
    const xs = Array.from({ length: 4 }, () => a.nextUint32());
    expect(Array.from({ length: 4 }, () => b.nextUint32())).toEqual(xs);
    // pinned so that a change of generator (and so of every data order) cannot go unnoticed
    expect(xs).toEqual([2091601267, 2169168056, 306405048, 1675291194]);
    expect(new tk.Rng(43).nextUint32()).not.toBe(xs[0]);
    const r = new tk.Rng(7);
    for (let i = 0; i < 1000; i++) {
      const k = r.nextInt(7);
      expect(Number.isInteger(k) && k >= 0 && k < 7).toBe(true);
    }
  });

  it('the same seed gives the same permutation; another seed another', () => {
    const p = tk.shuffledIndices(50, 3);
    expect(tk.shuffledIndices(50, 3)).toEqual(p);
    expect([...p].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(tk.shuffledIndices(50, 4)).not.toEqual(p);
    expect(tk.seededShuffle(['a', 'b', 'c', 'd', 'e'], 3)).toEqual(tk.shuffledIndices(5, 3).map((i) => 'abcde'[i]));
    expect(tk.epochOrder(50, 3, 2)).toEqual(tk.shuffledIndices(50, 5));
    expect(ds.shuffled(9).examples).toEqual(tk.shuffledIndices(N, 9).map((i) => ds.examples[i]));
  });

  it('Fisher–Yates is unbiased (every item lands in every slot about equally)', () => {
    const n = 5, trials = 20000;
    const counts = Array.from({ length: n }, () => new Array(n).fill(0));
    for (let s = 0; s < trials; s++) tk.shuffledIndices(n, s).forEach((item, slot) => counts[item]![slot]++);
    for (const row of counts) for (const c of row) expect(Math.abs(c - trials / n)).toBeLessThan(0.05 * (trials / n));
  });
});

describe('split', () => {
  it('by fraction: ceil(fraction * n), deterministic per seed, order kept, disjoint and complete', () => {
    const { train, validation } = ds.split({ fraction: 0.2, seed: 1 });
    expect(validation.length).toBe(5);
    expect(train.length).toBe(18);
    const again = ds.split({ fraction: 0.2, seed: 1 });
    expect(again.validation.examples).toEqual(validation.examples);
    expect(again.train.examples).toEqual(train.examples);
    const index = (e: tk.LmExample) => ds.examples.indexOf(e);
    const vi = validation.examples.map(index), ti = train.examples.map(index);
    expect(vi).toEqual([...vi].sort((a, b) => a - b));
    expect([...vi, ...ti].sort((a, b) => a - b)).toEqual(Array.from({ length: N }, (_, i) => i));
    expect(vi).toEqual([...tk.shuffledIndices(N, 1).slice(0, 5)].sort((a, b) => a - b));
    expect(ds.split({ fraction: 0.2, seed: 2 }).validation.examples).not.toEqual(validation.examples);
    expect(validation.kind).toBe('lm');
    expect(validation.padTokenId).toBe(ds.padTokenId);
  });

  it('by count; bad arguments throw', () => {
    expect(ds.split({ count: 3, seed: 0 }).validation.length).toBe(3);
    expect(ds.split({ count: 0 }).train.length).toBe(N);
    expect(ds.split({ fraction: 0.1 }).validation.length).toBe(3);
    expect(() => ds.split({ count: N + 1 })).toThrow(RangeError);
    expect(() => ds.split({ fraction: 1.5 })).toThrow(RangeError);
    expect(() => ds.split({ fraction: 0.1, count: 2 })).toThrow(TypeError);
  });
});

describe('DataLoader', () => {
  it('visits each example once per epoch, in the seed + epoch order, reshuffling every epoch', () => {
    const loader = new tk.DataLoader(ds, { batchSize: 5, seed: 11 });
    expect(loader.batchesPerEpoch).toBe(5);
    const e0 = [...loader].flatMap((b) => b.inputIds);
    expect(loader.state()).toMatchObject({ epoch: 1, index: 0 });
    const e1 = [...loader].flatMap((b) => b.inputIds);
    expect(e0).toHaveLength(N);
    const strip = (rows: number[][]) => rows.map((r) => tok.decode(r, { skipSpecialTokens: true }));
    expect(strip(e0)).toEqual(tk.epochOrder(N, 11, 0).map((i) => name(ds.examples[i]!)));
    expect(strip(e1)).toEqual(tk.shuffledIndices(N, 12).map((i) => name(ds.examples[i]!)));
    expect(strip(e1)).not.toEqual(strip(e0));
    expect([...strip(e0)].sort()).toEqual([...strip(e1)].sort());
  });

  it('shuffle: false keeps dataset order; dropLast drops the short last batch', () => {
    const loader = new tk.DataLoader(ds, { batchSize: 5, shuffle: false, dropLast: true });
    expect(loader.batchesPerEpoch).toBe(4);
    const idx = [0, 1, 2, 3].map(() => loader.nextIndices());
    expect(idx.flat()).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(loader.state()).toMatchObject({ epoch: 1, index: 0 });
    expect(loader.nextIndices()).toEqual([0, 1, 2, 3, 4]);
    const keep = new tk.DataLoader(ds, { batchSize: 5, shuffle: false });
    const sizes = [...keep].map((b) => b.inputIds.length);
    expect(sizes).toEqual([5, 5, 5, 5, 3]);
  });

  it('state() -> JSON -> restore() continues with the identical remaining batches, across epochs', () => {
    for (const stopAt of [0, 1, 3, 4, 5, 7, 12]) {
      const a = new tk.DataLoader(ds, { batchSize: 5, seed: 123 });
      for (let i = 0; i < stopAt; i++) a.next();
      const saved = JSON.stringify(a.state());
      const rest = Array.from({ length: 12 }, () => a.next());

      // a fresh process: the data loaded again, a new loader, the saved position
      const b = new tk.DataLoader(load(), { batchSize: 5, seed: 123 });
      b.restore(JSON.parse(saved));
      expect(Array.from({ length: 12 }, () => b.next())).toEqual(rest);
    }
  });

  it('restoring mid-epoch then iterating yields only the rest of that epoch', () => {
    const a = new tk.DataLoader(ds, { batchSize: 4, seed: 5 });
    const full = [...a].map((x) => x.inputIds);
    const b = new tk.DataLoader(ds, { batchSize: 4, seed: 5 });
    b.next();
    b.next();
    const c = new tk.DataLoader(ds, { batchSize: 4, seed: 5 });
    c.restore(b.state());
    expect(c.state()).toEqual({ version: 1, epoch: 0, index: 8, seed: 5, shuffle: true, size: N });
    expect([...c].map((x) => x.inputIds)).toEqual(full.slice(2));
    expect(c.epoch).toBe(1);
  });

  it('restore refuses a state from another dataset, seed or shuffle setting', () => {
    const state = new tk.DataLoader(ds, { batchSize: 4, seed: 5 }).state();
    expect(() => new tk.DataLoader(ds, { batchSize: 4, seed: 6 }).restore(state)).toThrow(/seed/);
    expect(() => new tk.DataLoader(ds, { batchSize: 4, seed: 5, shuffle: false }).restore(state)).toThrow(/shuffle/);
    expect(() => new tk.DataLoader(ds.select([0, 1]), { batchSize: 4, seed: 5 }).restore(state)).toThrow(/23 items, this one has 2/);
    expect(() => new tk.DataLoader(ds, { batchSize: 4, seed: 5 }).restore({ ...state, index: N + 1 })).toThrow(/index/);
    // batchSize may change: the position counts examples
    const other = new tk.DataLoader(ds, { batchSize: 7, seed: 5 });
    other.restore(state);
    expect(other.nextIndices()).toEqual(tk.epochOrder(N, 5, 0).slice(0, 7));
  });

  it('a custom collate and plain example arrays', () => {
    const loader = new tk.DataLoader<tk.LmExample, number[]>(ds.examples, { batchSize: 10, shuffle: false, collate: (ex) => ex.map((e) => e.inputIds.length) });
    expect(loader.next()).toEqual(ds.examples.slice(0, 10).map((e) => e.inputIds.length));
    const empty = new tk.DataLoader(ds.select([]), { batchSize: 2 });
    expect([...empty]).toEqual([]);
    expect(() => empty.next()).toThrow(/no batch/);
  });

  it('createDataLoader takes a dataset of any kind (classification batches here)', () => {
    const any = tk.datasetFromJsonl('{"text":"ab","label":"y"}\n{"text":"c","label":"x"}', tok);
    const loader = tk.createDataLoader(any, { batchSize: 2, shuffle: false });
    expect(loader.next()).toEqual({
      inputIds: [
        [97, 98],
        [99, 258],
      ],
      attentionMask: [
        [1, 1],
        [1, 0],
      ],
      labels: [1, 0],
    });
  });
});
