// Collation (dynamic padding, attention masks) and packing (boundaries, positions, label masking,
// block-diagonal causal attention).
import { describe, expect, it } from 'vitest';
import * as tk from 'tunekit';

const EOS = 257, PAD = 258, X = -100;
const tok = tk.byteTokenizer();

describe('collateLm', () => {
  const a = { inputIds: [1, 2, 3], labels: [X, 2, 3] };
  const b = { inputIds: [4], labels: [4] };

  it('pads to the longest row with the pad id, labels -100, attention mask 0', () => {
    expect(tk.collateLm([a, b], { padTokenId: PAD })).toEqual({
      inputIds: [
        [1, 2, 3],
        [4, PAD, PAD],
      ],
      labels: [
        [X, 2, 3],
        [4, X, X],
      ],
      attentionMask: [
        [1, 1, 1],
        [1, 0, 0],
      ],
    });
  });

  it('padToMultipleOf and padToLength', () => {
    expect(tk.collateLm([a, b], { padTokenId: PAD, padToMultipleOf: 4 }).inputIds).toEqual([
      [1, 2, 3, PAD],
      [4, PAD, PAD, PAD],
    ]);
    expect(tk.collateLm([b], { padTokenId: 0, padToLength: 3 }).attentionMask).toEqual([[1, 0, 0]]);
    expect(() => tk.collateLm([a], { padTokenId: 0, padToLength: 2 })).toThrow(/longer than padToLength/);
  });

  it('does not alias the examples', () => {
    const batch = tk.collateLm([a], { padTokenId: 0 });
    batch.inputIds[0]![0] = 99;
    expect(a.inputIds[0]).toBe(1);
  });

  it('classification and preference batches', () => {
    expect(tk.collateClassification([{ inputIds: [5, 6], label: 1 }, { inputIds: [7], label: 0 }], { padTokenId: PAD })).toEqual({
      inputIds: [
        [5, 6],
        [7, PAD],
      ],
      attentionMask: [
        [1, 1],
        [1, 0],
      ],
      labels: [1, 0],
    });
    const p = tk.collatePreference([{ chosen: { inputIds: [1], labels: [1] }, rejected: { inputIds: [2, 3, 4], labels: [X, 3, 4] } }], { padTokenId: PAD });
    expect(p.chosen).toEqual({ inputIds: [[1, PAD, PAD]], labels: [[1, X, X]], attentionMask: [[1, 0, 0]] });
    expect(p.rejected.inputIds).toEqual([[2, 3, 4]]);
  });

  it("a loader pads with the dataset's pad id (the tokenizer's pad, else eos)", () => {
    const ds = tk.datasetFromJsonl('{"text":"ab"}\n{"text":"c"}', tok, { kind: 'lm' });
    const batch = new tk.DataLoader(ds, { batchSize: 2, shuffle: false }).next();
    expect(batch.inputIds).toEqual([
      [97, 98, EOS],
      [99, EOS, PAD],
    ]);
    const noPad = tk.byteTokenizer({ specials: ['<|eos|>'] });
    expect(tk.datasetFromJsonl('{"text":"a"}', noPad).padTokenId).toBe(256);
  });
});

describe('packing', () => {
  const e1 = { inputIds: [10, 11, 12], labels: [X, 11, 12] };
  const e2 = { inputIds: [20, 21], labels: [20, 21] };
  const e3 = { inputIds: [30, 31, 32, 33], labels: [30, 31, X, 33] };

  it('sequential: rows in order; positions restart; the first token of each example is not a target', () => {
    const { rows } = tk.packExamples([e1, e2, e3], 6, { strategy: 'sequential' });
    expect(rows).toEqual([
      { inputIds: [10, 11, 12, 20, 21], labels: [X, 11, 12, X, 21], positionIds: [0, 1, 2, 0, 1], segmentIds: [1, 1, 1, 2, 2] },
      { inputIds: [30, 31, 32, 33], labels: [X, 31, X, 33], positionIds: [0, 1, 2, 3], segmentIds: [1, 1, 1, 1] },
    ]);
  });

  it('bfd: longest first, each into the tightest row that fits', () => {
    expect(tk.packGroups([3, 2, 4, 1, 5], 6)).toEqual([[4, 3], [2, 1], [0]]);
    // 5 -> row0 (1 left), 4 -> row1 (2 left), 3 -> row2 (3 left), 2 -> row1 (tightest), 1 -> row0
    expect(tk.packGroups([2, 5, 3, 4, 1], 6)).toEqual([[1, 4], [3, 0], [2]]);
  });

  it('examples longer than seqLen are cut to their start', () => {
    const r = tk.packExamples([{ inputIds: [1, 2, 3, 4], labels: [1, 2, 3, 4] }], 3);
    expect(r.truncated).toBe(1);
    expect(r.rows).toEqual([{ inputIds: [1, 2, 3], labels: [X, 2, 3], positionIds: [0, 1, 2], segmentIds: [1, 1, 1] }]);
  });

  it('a packed dataset batches with positionIds and segmentIds (padding 0)', () => {
    const ds = tk.datasetFromJsonl(['{"text":"ab"}', '{"prompt":"c","completion":"d"}', '{"text":"efgh"}'].join('\n'), tok);
    if (ds.kind !== 'lm') throw new Error('expected an lm dataset'); // narrows AnyDataset to Dataset<LmExample>
    const packed = ds.pack(8, { strategy: 'sequential' });
    expect(packed.kind).toBe('packed');
    expect(packed.length).toBe(2);
    const batch = new tk.DataLoader(packed, { batchSize: 2, shuffle: false }).next();
    expect(batch).toEqual({
      inputIds: [
        [97, 98, EOS, 99, 100, EOS],
        [101, 102, 103, 104, EOS, PAD],
      ],
      // "ab": first token masked; "c"+"d": prompt masked anyway; boundaries never predict the next example
      labels: [
        [X, 98, EOS, X, 100, EOS],
        [X, 102, 103, 104, EOS, X],
      ],
      attentionMask: [
        [1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 0],
      ],
      positionIds: [
        [0, 1, 2, 0, 1, 2],
        [0, 1, 2, 3, 4, 0],
      ],
      segmentIds: [
        [1, 1, 1, 2, 2, 2],
        [1, 1, 1, 1, 1, 0],
      ],
    });
  });

  it('packs every token exactly once and never exceeds seqLen', () => {
    const lengths = Array.from({ length: 200 }, (_, i) => 1 + ((i * 37) % 29));
    const examples = lengths.map((n, i) => ({ inputIds: Array.from({ length: n }, (_, t) => i * 100 + t), labels: new Array(n).fill(1) }));
    for (const strategy of ['bfd', 'sequential'] as const) {
      const { rows } = tk.packExamples(examples, 32, { strategy });
      expect(rows.every((r) => r.inputIds.length <= 32)).toBe(true);
      const all = rows.flatMap((r) => r.inputIds).sort((x, y) => x - y);
      expect(all).toEqual(examples.flatMap((e) => e.inputIds).sort((x, y) => x - y));
      // example boundaries: label -100 exactly where a position restarts at 0
      for (const r of rows) r.positionIds.forEach((p, t) => expect(r.labels[t] === X).toBe(p === 0));
    }
    const total = lengths.reduce((s, n) => s + n, 0);
    expect(tk.packExamples(examples, 32).rows.length).toBe(Math.ceil(total / 32)); // bfd is tight here
  });
});

describe('packedAttentionMask', () => {
  it('is block-diagonal and causal, 1 = masked, [B, 1, T, T]', () => {
    const m = tk.packedAttentionMask([[1, 1, 2, 2, 2, 0]]);
    const rows: string[] = [];
    for (let t = 0; t < 6; t++) rows.push(Array.from(m.subarray(t * 6, t * 6 + 6)).join(''));
    expect(rows).toEqual([
      '011111', // token 0 (segment 1) sees itself
      '001111', // token 1 sees 0, 1
      '110111', // token 2 starts segment 2: sees only itself
      '110011',
      '110001',
      '111110', // padding sees only itself (no fully masked row)
    ]);
    expect(m).toBeInstanceOf(Int8Array);
  });

  it('attention never crosses an example boundary in packed batches', () => {
    const lengths = [5, 1, 7, 3, 2, 9, 4, 6, 2, 3];
    const ds = new tk.Dataset({
      kind: 'lm',
      examples: lengths.map((n, i) => ({ inputIds: new Array(n).fill(i), labels: new Array(n).fill(i) })),
      padTokenId: 0,
    });
    const packed = ds.pack(12);
    const batch = new tk.DataLoader(packed, { batchSize: packed.length, shuffle: false }).next();
    const B = batch.inputIds.length, T = batch.inputIds[0]!.length;
    const mask = tk.packedAttentionMask(batch.segmentIds);
    expect(mask.length).toBe(B * T * T);
    for (let b = 0; b < B; b++) {
      const ids = batch.inputIds[b]!, seg = batch.segmentIds[b]!;
      for (let q = 0; q < T; q++) {
        for (let k = 0; k < T; k++) {
          const allowed = mask[(b * T + q) * T + k] === 0;
          if (seg[q] === 0) {
            expect(allowed).toBe(k === q);
            continue;
          }
          // the example a token came from is its id here: attention stays inside it, causally
          const same = seg[k] === seg[q];
          expect(allowed).toBe(same && k <= q);
          if (allowed) expect(ids[k]).toBe(ids[q]);
        }
        if (seg[q] !== 0) {
          // a query sees exactly positionIds[q] + 1 keys
          let n = 0;
          for (let k = 0; k < T; k++) n += mask[(b * T + q) * T + k] === 0 ? 1 : 0;
          expect(n).toBe(batch.positionIds[b]![q]! + 1);
        }
      }
    }
  });
});
