// BERT loaded from Hugging Face layout checkpoints written here (BertModel
// keys, and BertFor* keys with the 'bert.' prefix), against the float64
// reference: post-LN blocks, exact erf GELU, tanh pooler, padding mask.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import {
  type BertCfg,
  bertWeights,
  erf,
  erfcContinuedFraction,
  erfSeries,
  freshSeed,
  Prng,
  refBert,
  relErr,
  rows,
  TOL,
  writeCheckpoint,
} from './reference-models';

const root = mkdtempSync(join(tmpdir(), 'tk-bert-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const CFG: BertCfg = {
  model_type: 'bert',
  architectures: ['BertModel'],
  vocab_size: 37,
  hidden_size: 24,
  num_hidden_layers: 2,
  num_attention_heads: 3,
  intermediate_size: 40,
  max_position_embeddings: 16,
  type_vocab_size: 2,
  layer_norm_eps: 1e-12,
  hidden_act: 'gelu',
};

function run(model: tk.BertModel, ids: number[][], mask?: number[][], tokenTypeIds?: number[][]) {
  return tk.tidy(() => {
    const o = model.forward(ids, { attentionMask: mask, tokenTypeIds });
    return { last: o.lastHiddenState.toArray(), pooled: o.pooled.toArray(), shapes: [[...o.lastHiddenState.shape], [...o.pooled.shape]] };
  });
}

describe('float64 erf of the reference', () => {
  it('matches known values and the two methods agree where they meet', () => {
    const known: Array<[number, number]> = [
      [0.1, 0.1124629160182849],
      [0.5, 0.5204998778130465],
      [1, 0.8427007929497149],
      [2, 0.9953222650189527],
      [3, 0.9999779095030014],
      [4, 0.9999999845827421],
      [-1.5, -0.9661051464753108],
    ];
    for (const [x, v] of known) expect(Math.abs(erf(x) - v), `erf(${x})`).toBeLessThan(4e-16);
    for (const x of [2.5, 3, 3.5]) expect(Math.abs(erfSeries(x) - (1 - erfcContinuedFraction(x))), `x=${x}`).toBeLessThan(2e-15);
  });
});

describe.each([
  ['BertModel layout (no prefix)', ''],
  ["BertFor* layout ('bert.' prefix)", 'bert.'],
])('BERT, %s', (_name, prefix) => {
  const seed = freshSeed();
  const rng = new Prng(seed);
  const ws = bertWeights(CFG, rng, prefix);
  const model = tk.loadModel(writeCheckpoint(join(root, `bert-${prefix || 'bare'}`), CFG, ws)) as tk.BertModel;
  const C = CFG.hidden_size;

  it('loads with every tensor used', () => {
    expect(model).toBeInstanceOf(tk.BertModel);
    expect(model.training).toBe(false);
    expect(model.unusedCheckpointKeys).toEqual([]);
  });

  it('lastHiddenState and pooled match with right padding and token types', () => {
    const lens = [7, 5, 2];
    const T = 7;
    const seqs = lens.map((n) => rng.ints(n, 0, CFG.vocab_size));
    const ids = seqs.map((s) => [...s, ...new Array(T - s.length).fill(0)]);
    const mask = seqs.map((s) => [...new Array(s.length).fill(1), ...new Array(T - s.length).fill(0)]);
    const types = seqs.map((s) => Array.from({ length: T }, (_, t) => (t >= Math.ceil(s.length / 2) && t < s.length ? 1 : 0)));
    const y = run(model, ids, mask, types);
    expect(y.shapes).toEqual([[3, T, C], [3, C]]);
    const ref = refBert(CFG, ws, ids, mask, types, prefix);
    const e1 = relErr(y.last, ref.last), e2 = relErr(y.pooled, ref.pooled);
    expect(e1, `seed=${seed} lastHiddenState: ${e1}`).toBeLessThan(TOL);
    expect(e2, `seed=${seed} pooled: ${e2}`).toBeLessThan(TOL);
    // padding does not change the real rows: each sequence alone
    seqs.forEach((s, b) => {
      const alone = run(model, [s], undefined, [types[b]!.slice(0, s.length)]);
      const e = relErr(rows(y.last, b, T, C, 0, s.length), alone.last);
      expect(e, `seed=${seed} row ${b} vs alone: ${e}`).toBeLessThan(1e-5);
      expect(relErr(y.pooled.subarray(b * C, (b + 1) * C), alone.pooled), `row ${b} pooled vs alone`).toBeLessThan(1e-5);
    });
  });

  it('without a mask or token types', () => {
    const ids = [rng.ints(7, 0, CFG.vocab_size)];
    const y = run(model, ids);
    const ref = refBert(CFG, ws, ids, undefined, undefined, prefix);
    expect(relErr(y.last, ref.last), `seed=${seed}`).toBeLessThan(TOL);
    expect(relErr(y.pooled, ref.pooled), `seed=${seed}`).toBeLessThan(TOL);
  });

  it('the padding mask matters (a masked-out key would change the real rows)', () => {
    const ids = [rng.ints(6, 0, CFG.vocab_size)];
    const masked = run(model, ids, [[1, 1, 1, 1, 0, 0]]);
    const unmasked = run(model, ids);
    expect(relErr(masked.last.subarray(0, 4 * C), unmasked.last.subarray(0, 4 * C))).toBeGreaterThan(1e-2);
  });

  it('sequences longer than max_position_embeddings are refused', () => {
    expect(() => model.forward([new Array(CFG.max_position_embeddings + 1).fill(1)])).toThrow(/max_position_embeddings/);
  });
});

it('the two layouts give bit-identical outputs for the same weights', () => {
  const seed = freshSeed();
  const a = bertWeights(CFG, new Prng(seed), '');
  const b = bertWeights(CFG, new Prng(seed), 'bert.');
  const ma = tk.loadModel(writeCheckpoint(join(root, 'same-a'), CFG, a)) as tk.BertModel;
  const mb = tk.loadModel(writeCheckpoint(join(root, 'same-b'), CFG, b)) as tk.BertModel;
  const ids = [new Prng(seed + 1).ints(5, 0, CFG.vocab_size)];
  const ya = run(ma, ids), yb = run(mb, ids);
  expect(Array.from(yb.last)).toEqual(Array.from(ya.last));
  expect(Array.from(yb.pooled)).toEqual(Array.from(ya.pooled));
  ma.dispose();
  mb.dispose();
});
