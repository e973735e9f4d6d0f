// Generation and scoring for GPT-2 and Llama loaded from checkpoints written
// here: greedy with the KV cache equals full recomputation and the float64
// reference's argmax; batched equals single; seeded sampling; top-k / top-p
// supports; repetition penalty; stop ids; stream; logLikelihood.
//
// Model weights use fixed seeds so that greedy paths are deterministic (a
// near-tie between two logits would otherwise be a coin flip between two
// float32 computations).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import {
  type GPT2Cfg,
  gpt2Weights,
  type LlamaCfg,
  llamaWeights,
  logSoftmax,
  Prng,
  refGpt2,
  refLlama,
  relErr,
  type Weights,
  writeCheckpoint,
} from './reference-models';

const root = mkdtempSync(join(tmpdir(), 'tk-gen-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const GPT2: GPT2Cfg = { model_type: 'gpt2', vocab_size: 37, n_positions: 40, n_embd: 24, n_layer: 2, n_head: 3 };
const LLAMA: LlamaCfg = {
  model_type: 'llama',
  vocab_size: 37,
  hidden_size: 24,
  intermediate_size: 40,
  num_hidden_layers: 2,
  num_attention_heads: 6,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-5,
  max_position_embeddings: 64,
};

interface Family {
  name: string;
  cfg: Record<string, unknown>;
  weights: (rng: Prng) => Weights;
  ref: (ws: Weights, ids: number[]) => Float64Array;
}
const FAMILIES: Family[] = [
  { name: 'gpt2', cfg: GPT2, weights: (r) => gpt2Weights(GPT2, r), ref: (ws, ids) => refGpt2(GPT2, ws, ids) },
  { name: 'llama', cfg: LLAMA, weights: (r) => llamaWeights(LLAMA, r), ref: (ws, ids) => refLlama(LLAMA, ws, ids) },
];

const V = 37;

/** logits of the last position of one sequence (full recomputation, float32) */
function lastLogits(model: tk.PreTrainedModel, seq: number[]): Float32Array {
  return tk.noGrad(() => tk.tidy(() => model.forward([seq], { lastOnly: true }).toArray() as Float32Array));
}

function argmax(a: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[best]!) best = i;
  return best;
}

/** tokens of `full` up to and including the first stop id */
function cutAtStop(full: number[], stop: Set<number>): number[] {
  const i = full.findIndex((t) => stop.has(t));
  return i < 0 ? full : full.slice(0, i + 1);
}

describe.each(FAMILIES)('$name generation', (fam) => {
  const ws = fam.weights(new Prng(fam.name === 'gpt2' ? 1234 : 4321));
  const dir = writeCheckpoint(join(root, fam.name), fam.cfg, ws);
  const model = tk.loadModel(dir) as tk.PreTrainedModel;
  const rng = new Prng(99);
  const prompts = [rng.ints(5, 0, V), rng.ints(2, 0, V), rng.ints(3, 0, V)];
  const N = 8;
  const greedy = model.generate(prompts, { maxNewTokens: N });

  it('greedy with the KV cache equals recomputing the whole sequence every step', () => {
    const nocache = model.generate(prompts, { maxNewTokens: N, useCache: false });
    expect(nocache).toEqual(greedy);
    for (const o of greedy) {
      expect(o.tokens).toHaveLength(N);
      expect(o.finishReason).toBe('length');
    }
  });

  it('batched prompts of different lengths give the single-prompt results', () => {
    prompts.forEach((p, i) => {
      expect(model.generate([p], { maxNewTokens: N })[0]!.tokens, `prompt ${i}`).toEqual(greedy[i]!.tokens);
      expect(model.generate([p], { maxNewTokens: N, useCache: false })[0]!.tokens, `prompt ${i} no cache`).toEqual(greedy[i]!.tokens);
    });
  });

  it('greedy tokens are the argmax of the float64 reference logits', () => {
    prompts.forEach((p, i) => {
      const seq = [...p];
      for (let s = 0; s < N; s++) {
        const ref = fam.ref(ws, seq).subarray((seq.length - 1) * V);
        const top = argmax(ref);
        const second = Math.max(...Array.from(ref).filter((_, j) => j !== top));
        if (ref[top]! - second < 1e-3) break;  // a near-tie: float32 may pick either
        expect(greedy[i]!.tokens[s], `prompt ${i} step ${s}`).toBe(top);
        seq.push(top);
      }
    });
  });

  it('a tensor prompt gives the same result as nested arrays', () => {
    const t = tk.tensor(Int32Array.from(prompts[0]!), [1, 5], { dtype: 'i32' });
    expect(model.generate(t, { maxNewTokens: N })[0]!.tokens).toEqual(greedy[0]!.tokens);
    t.dispose();
  });

  it('empty prompts are refused', () => {
    expect(() => model.generate([[1, 2], []], { maxNewTokens: 2 })).toThrow(/at least one token/);
  });

  it('sampling is reproducible for a seed, differs across seeds, and does not depend on the cache', () => {
    const opts = { maxNewTokens: 10, temperature: 1.2, topK: 12, topP: 0.95 };
    const a = model.generate(prompts, { ...opts, seed: 7 });
    const b = model.generate(prompts, { ...opts, seed: 7 });
    expect(b).toEqual(a);
    expect(model.generate(prompts, { ...opts, seed: 7, useCache: false })).toEqual(a);
    const seen = new Set<string>();
    for (let seed = 1; seed <= 5; seed++) seen.add(JSON.stringify(model.generate(prompts, { ...opts, seed }).map((o) => o.tokens)));
    expect(seen.size).toBeGreaterThanOrEqual(4);
    // sampled sequences are not just the greedy one
    expect(a.map((o) => o.tokens)).not.toEqual(greedy.map((o) => o.tokens));
  });

  it('without a seed, sampling follows the global sequence (tk.manualSeed)', () => {
    const opts = { maxNewTokens: 10, temperature: 1.2 };
    tk.manualSeed(2024);
    const a = model.generate(prompts, opts);
    const b = model.generate(prompts, opts);
    tk.manualSeed(2024);
    expect(model.generate(prompts, opts)).toEqual(a);
    expect(model.generate(prompts, opts)).toEqual(b);
    expect(b).not.toEqual(a);
  });

  it('invalid generation options are refused by name', () => {
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ temperature: -1 }, /temperature/],
      [{ temperature: NaN }, /temperature/],
      [{ topK: 1.5 }, /topK/],
      [{ topP: 0 }, /topP/],
      [{ topP: 1.5 }, /topP/],
      [{ repetitionPenalty: 0 }, /repetitionPenalty/],
      [{ maxNewTokens: -1 }, /maxNewTokens/],
      [{ seed: 0.5 }, /seed/],
    ];
    for (const [o, re] of bad) expect(() => model.generate(prompts, o as tk.GenerateOptions), JSON.stringify(o)).toThrow(re);
    expect(model.generate(prompts, { maxNewTokens: 0 }).every((o) => o.tokens.length === 0)).toBe(true);
  });

  it('topK = 1 (or a tiny topP) with a temperature is greedy', () => {
    expect(model.generate(prompts, { maxNewTokens: N, temperature: 1.5, topK: 1, seed: 3 }).map((o) => o.tokens)).toEqual(greedy.map((o) => o.tokens));
    expect(model.generate(prompts, { maxNewTokens: N, temperature: 1.5, topP: 1e-6, seed: 3 }).map((o) => o.tokens)).toEqual(greedy.map((o) => o.tokens));
  });

  it('sampled tokens stay inside the top-k set and the top-p nucleus', () => {
    const p = prompts[0]!;
    const temperature = 2;
    for (let seed = 0; seed < 4; seed++) {
      const k = model.generate([p], { maxNewTokens: 8, temperature, topK: 3, seed })[0]!.tokens;
      const seq = [...p];
      for (const t of k) {
        const l = lastLogits(model, seq);
        const order = Array.from(l.keys()).sort((x, y) => l[y]! - l[x]!);
        expect(order.slice(0, 3), `seed ${seed}: token ${t} outside the top 3`).toContain(t);
        seq.push(t);
      }
      const topP = 0.6;
      const pt = model.generate([p], { maxNewTokens: 8, temperature, topP, seed })[0]!.tokens;
      const seq2 = [...p];
      for (const t of pt) {
        const l = lastLogits(model, seq2);
        const lp = logSoftmax(Float64Array.from(l, (x) => x / temperature), V);
        const order = Array.from(lp.keys()).sort((x, y) => lp[y]! - lp[x]!);
        const nucleus: number[] = [];
        let cum = 0;
        for (const i of order) {
          nucleus.push(i);
          cum += Math.exp(lp[i]!);
          if (cum >= topP) break;
        }
        expect(nucleus, `seed ${seed}: token ${t} outside the ${topP} nucleus`).toContain(t);
        seq2.push(t);
      }
    }
  });

  it('repetitionPenalty follows the transformers rule (divide positive logits, multiply negative ones)', () => {
    const penalty = 3;
    const out = model.generate(prompts, { maxNewTokens: N, repetitionPenalty: penalty });
    prompts.forEach((p, i) => {
      const seq = [...p];
      for (let s = 0; s < N; s++) {
        const l = Float64Array.from(lastLogits(model, seq));
        for (const t of new Set(seq)) l[t] = l[t]! > 0 ? l[t]! / penalty : l[t]! * penalty;
        seq.push(argmax(l));
      }
      expect(out[i]!.tokens, `prompt ${i}`).toEqual(seq.slice(p.length));
    });
    // and it changes the greedy continuation of this model
    expect(out.map((o) => o.tokens)).not.toEqual(greedy.map((o) => o.tokens));
    expect(model.generate(prompts, { maxNewTokens: N, repetitionPenalty: penalty, useCache: false })).toEqual(out);
  });

  it('stop token ids end a sequence (stop token included) without disturbing the others', () => {
    const g0 = greedy[0]!.tokens;
    const i = g0.findIndex((t, j) => j >= 1 && !g0.slice(0, j).includes(t));
    expect(i, 'no usable stop token in the greedy output').toBeGreaterThanOrEqual(1);
    const stop = new Set([g0[i]!]);
    for (const useCache of [true, false]) {
      const out = model.generate(prompts, { maxNewTokens: N, stop: [g0[i]!], useCache });
      expect(out[0]!.tokens).toEqual(g0.slice(0, i + 1));
      expect(out[0]!.finishReason).toBe('stop');
      out.forEach((o, b) => {
        const want = cutAtStop(greedy[b]!.tokens, stop);
        expect(o.tokens, `row ${b} useCache=${useCache}`).toEqual(want);
        expect(o.finishReason).toBe(want.length < N || stop.has(want[want.length - 1]!) ? 'stop' : 'length');
      });
    }
  });

  it('eos_token_id and max_new_tokens from generation_config.json apply', () => {
    const g1 = greedy[1]!.tokens;
    const eos = g1[2]!;
    const d2 = writeCheckpoint(join(root, `${fam.name}-eos`), fam.cfg, ws, {
      files: { 'generation_config.json': JSON.stringify({ eos_token_id: [eos, V + 5], max_new_tokens: 6 }) },
    });
    const m2 = tk.loadModel(d2) as tk.PreTrainedModel;
    const out = m2.generate(prompts);
    out.forEach((o, b) => {
      const want = cutAtStop(greedy[b]!.tokens.slice(0, 6), new Set([eos]));
      expect(o.tokens, `row ${b}`).toEqual(want);
    });
    expect(out[1]!.finishReason).toBe('stop');
    m2.dispose();
  });

  it('stream yields the tokens of generate, then returns its outputs', async () => {
    const opts = { maxNewTokens: N, stop: [greedy[2]!.tokens[3]!] };
    const want = model.generate(prompts, opts);
    const got: number[][] = prompts.map(() => []);
    const it = model.stream(prompts, opts);
    let r = await it.next();
    let events = 0;
    while (!r.done) {
      got[r.value.index]!.push(r.value.token);
      events++;
      r = await it.next();
    }
    expect(got).toEqual(want.map((o) => o.tokens));
    expect(events).toBe(want.reduce((a, o) => a + o.tokens.length, 0));
    expect(r.value).toEqual(want);
    // sampled stream with a seed: same tokens as generate with that seed
    const sopts = { maxNewTokens: 6, temperature: 1, topK: 10, seed: 5 };
    const sgot: number[][] = prompts.map(() => []);
    for await (const e of model.stream(prompts, sopts)) sgot[e.index]!.push(e.token);
    expect(sgot).toEqual(model.generate(prompts, sopts).map((o) => o.tokens));
  });

  it('a KVCache fed in chunks gives the logits of the full forward (left padding included)', () => {
    const r = new Prng(11);
    const seqs = [r.ints(9, 0, V), r.ints(6, 0, V)];
    const T = 9;
    const ids = seqs.map((q) => [...new Array(T - q.length).fill(0), ...q]);
    const mask = seqs.map((q) => [...new Array(T - q.length).fill(0), ...new Array(q.length).fill(1)]);
    const full = tk.tidy(() => model.forward(ids, { attentionMask: mask }).toArray());
    const cache = new tk.KVCache(2, 2);  // 2 layers, batch 2
    const got = new Float32Array(full.length);
    try {
      let t0 = 0;
      for (const n of [4, 1, 3, 1]) {
        const chunk = ids.map((row) => row.slice(t0, t0 + n));
        const m = mask.map((row) => row.slice(t0, t0 + n));
        const y = tk.tidy(() => model.forward(chunk, { attentionMask: m, cache }).toArray());
        for (let b = 0; b < 2; b++) got.set(y.subarray(b * n * V, (b + 1) * n * V), (b * T + t0) * V);
        t0 += n;
        expect(cache.length).toBe(t0);
      }
    } finally {
      cache.dispose();
    }
    seqs.forEach((q, b) => {
      const lo = (b * T + T - q.length) * V, hi = (b + 1) * T * V;
      const e = relErr(got.subarray(lo, hi), full.subarray(lo, hi));
      expect(e, `row ${b}: ${e}`).toBeLessThan(1e-5);
    });
  });

  it('stopping a stream early frees its KV cache', async () => {
    const proto = tk.KVCache.prototype;
    const orig = proto.dispose;
    let disposed = 0;
    proto.dispose = function (this: tk.KVCache) {
      disposed++;
      return orig.call(this);
    };
    try {
      for await (const e of model.stream(prompts, { maxNewTokens: 50 })) {
        expect(e.token).toBe(greedy[e.index]!.tokens[0]);
        break;
      }
      expect(disposed).toBe(1);
      model.generate(prompts, { maxNewTokens: 2 });
      expect(disposed).toBe(2);
    } finally {
      proto.dispose = orig;
    }
  });

  it('logLikelihood is the summed log-softmax of the reference logits', () => {
    const r = new Prng(7);
    const ctx = [r.ints(3, 0, V), r.ints(1, 0, V), r.ints(6, 0, V), r.ints(2, 0, V)];
    const cont = [r.ints(2, 0, V), r.ints(4, 0, V), r.ints(1, 0, V), r.ints(5, 0, V)];
    const ours = model.logLikelihood(ctx, cont);
    const one = model.logLikelihood(ctx, cont, { batchSize: 1 });
    ctx.forEach((c, i) => {
      const seq = [...c, ...cont[i]!];
      const lp = logSoftmax(fam.ref(ws, seq), V);
      let want = 0;
      cont[i]!.forEach((t, j) => (want += lp[(c.length + j - 1) * V + t]!));
      expect(Math.abs(ours[i]! - want), `pair ${i}: ${ours[i]} vs ${want}`).toBeLessThan(1e-4 * Math.max(1, Math.abs(want)));
      expect(Math.abs(one[i]! - ours[i]!), `pair ${i} batchSize 1`).toBeLessThan(1e-5 * Math.max(1, Math.abs(want)));
    });
    expect(() => model.logLikelihood([[1]], [[2], [3]])).toThrow(RangeError);
  });
});

describe('text generation with a tokenizer in the model directory', () => {
  // a byte-level tokenizer: ids 0..255 are bytes, 256.. <|bos|> <|eos|> <|pad|>
  const tok = tk.byteTokenizer();
  const cfg: GPT2Cfg = { ...GPT2, vocab_size: 259 };
  const ws = gpt2Weights(cfg, new Prng(77));
  const dir = writeCheckpoint(join(root, 'gpt2-text'), cfg, ws);
  tok.saveSync(dir);
  const model = tk.loadModel(dir) as tk.GPT2LMHeadModel;

  it('string prompts are encoded, outputs decoded, and the eos token stops', () => {
    expect(model.tokenizer).not.toBeNull();
    const prompts = ['hello', 'a'];
    const out = model.generate(prompts, { maxNewTokens: 12 });
    const ids = prompts.map((p) => tok.encode(p));
    expect(model.generate(ids, { maxNewTokens: 12, tokenizer: tok })).toEqual(out);
    out.forEach((o, b) => {
      expect(o.text).toBe(tok.decode(o.tokens, { skipSpecialTokens: true }));
      // the tokenizer's eos (257) ends a sequence like an eos_token_id
      const i = o.tokens.indexOf(257);
      if (i >= 0) expect(o.tokens.length, `row ${b}`).toBe(i + 1);
    });
    // greedy single prompts agree
    prompts.forEach((p, b) => expect(model.generate(p, { maxNewTokens: 12 })[0]).toEqual(out[b]));
  });

  it('a stop string ends the sequence and is cut from the text', () => {
    const [base] = model.generate('hello', { maxNewTokens: 16 });
    const toks = base!.tokens;
    // the first printable ASCII byte (after the first token) not seen before it
    const i = toks.findIndex((t, j) => j >= 1 && t >= 0x21 && t < 0x7f && !toks.slice(0, j).includes(t));
    expect(i, 'no usable stop character in this continuation').toBeGreaterThanOrEqual(1);
    const stop = String.fromCharCode(toks[i]!);
    const [o] = model.generate('hello', { maxNewTokens: 16, stop: [stop] });
    expect(o!.tokens).toEqual(toks.slice(0, i + 1));
    expect(o!.finishReason).toBe('stop');
    expect(o!.text).toBe(tok.decode(toks.slice(0, i), { skipSpecialTokens: true }));
    expect(() => tk.loadModel(dir, { tokenizer: false }).generate('hello')).toThrow(/tokenizer/);
  });
});

