// Packing: a packed row's logits equal those of each of its examples run
// alone (positions restart per example, attention never crosses a boundary),
// the packed loss equals the sum of the examples' losses (no target across a
// boundary), and a training run with packing: true works and resumes exactly.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import { baseConfig, cleanup, expectSameBits, makeTask, paramsOf, relErr, tempRoot, TINY_GPT2 } from './util.js';

let root: string;
let task: { train: string; valid: string };
beforeAll(() => {
  root = tempRoot('packing');
  task = makeTask(join(root, 'task'), 12, 3, 13);
});
afterAll(() => cleanup(root));

const tok = tk.byteTokenizer();
const LLAMA = {
  model_type: 'llama',
  hidden_size: 32,
  intermediate_size: 48,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 256,
  rms_norm_eps: 1e-5,
};

const F32_TOL = 1e-5;

for (const [family, modelCfg] of [['gpt2', TINY_GPT2], ['llama', LLAMA]] as const) {
  describe(`packing (${family})`, () => {
    let model: tk.PreTrainedModel;
    let ds: ReturnType<typeof tk.loadJsonlSync<{ kind: 'lm'; seqLen: number }>>;
    beforeAll(() => {
      tk.manualSeed(21);
      model = tk.createModel({ ...modelCfg, vocab_size: tok.vocabSize }) as tk.PreTrainedModel;
      model.eval();  // no dropout: outputs must be comparable
      ds = tk.loadJsonlSync(task.train, tok, { kind: 'lm', seqLen: 128 });
    });

    it("a packed row's logits equal each example's logits run alone", () => {
      const packed = ds.pack(256);
      expect(packed.length).toBeLessThan(ds.length);  // several examples per row
      const rows = packed.examples.slice(0, 2);
      const batch = tk.collatePacked(rows, { padTokenId: tok.padTokenId ?? 0 });
      const B = rows.length, T = batch.inputIds[0]!.length, V = model.vocabSize;
      const logits = tk.noGrad(() =>
        tk.tidy(() => model.forward(batch.inputIds, { attentionMask: batch.attentionMask, positionIds: batch.positionIds, segmentIds: batch.segmentIds }).toArray() as Float32Array),
      );
      let checked = 0;
      for (let b = 0; b < B; b++) {
        const seg = batch.segmentIds[b]!;
        const ids = new Set(seg.filter((s) => s > 0));
        expect(ids.size, `row ${b} packs several examples`).toBeGreaterThan(1);
        for (const s of ids) {
          const pos = seg.flatMap((x, t) => (x === s ? [t] : []));
          const alone = batch.inputIds[b]!.filter((_, t) => seg[t] === s);
          expect(pos.map((t) => batch.positionIds[b]![t])).toEqual(pos.map((_, i) => i));  // positions restart
          const ref = tk.noGrad(() => tk.tidy(() => model.forward([alone]).toArray() as Float32Array));
          const got = new Float32Array(pos.length * V);
          pos.forEach((t, i) => got.set(logits.subarray((b * T + t) * V, (b * T + t + 1) * V), i * V));
          expect(relErr(got, ref), `row ${b} segment ${s}`).toBeLessThan(F32_TOL);
          checked++;
        }
      }
      expect(checked).toBeGreaterThan(3);
    });

    it('packed loss = the sum of the examples\' losses (no target crosses a boundary)', () => {
      const packed = ds.pack(256);
      const row = packed.examples[0]!;
      const batch = tk.collatePacked([row], { padTokenId: tok.padTokenId ?? 0 });
      const p = tk.noGrad(() => tk.tidy(() => { const r = tk.lmLossSum(model, batch); return { v: r.loss.item(), n: r.tokens }; }));
      let sum = 0, n = 0;
      const segs = [...new Set(row.segmentIds.filter((s) => s > 0))];
      for (const s of segs) {
        const idx = row.segmentIds.flatMap((x, t) => (x === s ? [t] : []));
        const ex = { inputIds: idx.map((t) => row.inputIds[t]!), labels: idx.map((t) => row.labels[t]!) };
        const one = tk.collateLm([ex], { padTokenId: tok.padTokenId ?? 0 });
        const r = tk.noGrad(() => tk.tidy(() => { const x = tk.lmLossSum(model, one); return { v: x.loss.item(), n: x.tokens }; }));
        sum += r.v;
        n += r.n;
      }
      expect(p.n).toBe(n);
      expect(Math.abs(p.v - sum) / Math.abs(sum)).toBeLessThan(F32_TOL);
    });
  });
}

describe('training with packing: true', () => {
  it('runs, logs finite losses, and resumes bit for bit', async () => {
    const cfgFor = (d: string) => tk.resolveConfig(baseConfig(task, join(root, d), { packing: true, seqLen: 256, batchSize: 2, gradAccum: 1, steps: 5, model: { ...TINY_GPT2, n_positions: 256 } }));
    const a = await tk.train(cfgFor('run-a'), { quiet: true });
    expect(a.step).toBe(5);
    expect(Number.isFinite(a.lastLoss)).toBe(true);
    expect(a.evals.at(-1)!.eval_tokens).toBeGreaterThan(0);
    await tk.train(cfgFor('run-b'), { quiet: true, stopAfterStep: 2 });
    tk.manualSeed(99);
    const b = await tk.train(cfgFor('run-b'), { quiet: true, resume: true });
    expectSameBits(paramsOf(a.model), paramsOf(b.model), 'packed run resumed');
  });
});
