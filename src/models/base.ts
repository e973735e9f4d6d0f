// PreTrainedModel: what every causal language model shares — forward with a
// KV cache, generation (greedy and sampled, batched, streamed), log-likelihood
// scoring, and checkpoint key handling.
import { noGrad } from '../autograd.js';
import { Module } from '../nn/module.js';
import * as ops from '../ops/index.js';
import { nextSeed, Tensor, tidy } from '../tensor.js';
import type { Tokenizer } from '../tokenizer/index.js';
import { applyKeyMap, type CheckpointKeyMap, KVCache } from './common.js';

export type HFConfig = Record<string, unknown> & { model_type: string };

export interface ForwardOptions {
  attentionMask?: Tensor | number[][];
  /** carries keys/values between calls; updated in place */
  cache?: KVCache;
  /** compute logits for the last position only ([B, 1, V]) */
  lastOnly?: boolean;
  /** explicit positions [B][T] (packed rows restart at 0 per example); default from attentionMask */
  positionIds?: number[][];
  /** packed rows: example number per token [B][T] (0 = padding); attention never crosses examples */
  segmentIds?: number[][];
}

export interface GenerateOptions {
  maxNewTokens?: number;
  /** 0 or undefined: greedy */
  temperature?: number;
  topK?: number;
  topP?: number;
  repetitionPenalty?: number;
  /** stop strings (needs a tokenizer) or token ids; eos_token_id always stops */
  stop?: Array<string | number>;
  /** sampling seed; when omitted, drawn from the global sequence (tk.manualSeed), so repeated calls differ */
  seed?: number;
  /** use the KV cache (default true); false recomputes the whole sequence every step */
  useCache?: boolean;
  tokenizer?: Tokenizer;
}

export interface GenerationOutput {
  /** the new tokens (stop token included when one ended the sequence) */
  tokens: number[];
  /** decoded new text, when a tokenizer is known (stop strings cut off) */
  text?: string;
  finishReason: 'stop' | 'length';
}

export interface StreamEvent {
  /** index of the prompt in the batch */
  index: number;
  token: number;
  text?: string;
}

/** splitmix32-style PRNG for reproducible sampling */
function makeRng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return ((z ^ (z >>> 16)) >>> 0) / 4294967296;
  };
}

/** Picks the next token from one row of logits (HF order: penalty, temperature, top-k, top-p). */
export function sampleToken(logits: Float32Array, opts: GenerateOptions, seen: number[], rng: () => number): number {
  const V = logits.length;
  const l = Float64Array.from(logits);
  const pen = opts.repetitionPenalty ?? 1;
  if (pen !== 1) for (const t of new Set(seen)) l[t] = l[t]! > 0 ? l[t]! / pen : l[t]! * pen;
  const temp = opts.temperature ?? 0;
  if (!temp) {
    let best = 0;
    for (let i = 1; i < V; i++) if (l[i]! > l[best]!) best = i;
    return best;
  }
  for (let i = 0; i < V; i++) l[i] = l[i]! / temp;
  let idx = Array.from({ length: V }, (_, i) => i).sort((a, b) => l[b]! - l[a]!);
  if (opts.topK && opts.topK > 0) idx = idx.slice(0, opts.topK);
  const m = l[idx[0]!]!;
  let p = idx.map((i) => Math.exp(l[i]! - m));
  let z = p.reduce((a, b) => a + b, 0);
  p = p.map((x) => x / z);
  if (opts.topP !== undefined && opts.topP < 1) {
    let cum = 0, keep = 0;
    while (keep < p.length && (keep === 0 || cum < opts.topP)) cum += p[keep++]!;
    idx = idx.slice(0, keep);
    p = p.slice(0, keep);
    z = p.reduce((a, b) => a + b, 0);
    p = p.map((x) => x / z);
  }
  let r = rng(), acc = 0;
  for (let i = 0; i < p.length; i++) {
    acc += p[i]!;
    if (r < acc) return idx[i]!;
  }
  return idx[idx.length - 1]!;
}

function checkGenerateOptions(opts: GenerateOptions, maxNew: number): void {
  const bad = (name: string, v: unknown, want: string) => new RangeError(`generate: ${name} must be ${want}, got ${String(v)}`);
  if (!Number.isInteger(maxNew) || maxNew < 0) throw bad('maxNewTokens', maxNew, 'a non-negative integer');
  const t = opts.temperature;
  if (t !== undefined && !(Number.isFinite(t) && t >= 0)) throw bad('temperature', t, 'a finite number >= 0 (0: greedy)');
  const k = opts.topK;
  if (k !== undefined && !(Number.isInteger(k) && k >= 0)) throw bad('topK', k, 'a non-negative integer (0: off)');
  const p = opts.topP;
  if (p !== undefined && !(p > 0 && p <= 1)) throw bad('topP', p, 'in (0, 1]');
  const r = opts.repetitionPenalty;
  if (r !== undefined && !(Number.isFinite(r) && r > 0)) throw bad('repetitionPenalty', r, 'a finite number > 0');
  if (opts.seed !== undefined && !Number.isInteger(opts.seed)) throw bad('seed', opts.seed, 'an integer');
}

// set by models/index.ts (kept out of this module to avoid an import cycle)
let saveImpl: ((model: unknown, dir: string) => void) | null = null;
export function setSaveImpl(fn: (model: unknown, dir: string) => void): void {
  saveImpl = fn;
}
export function saveVia(model: unknown, dir: string): void {
  if (!saveImpl) throw new Error('save: models module not initialized');
  saveImpl(model, dir);
}

export abstract class PreTrainedModel extends Module {
  abstract readonly config: HFConfig;
  /** set by tk.loadModel when the directory has a tokenizer */
  tokenizer: Tokenizer | null = null;
  /** defaults from generation_config.json */
  generationConfig: Record<string, unknown> = {};
  /** how parameter names map to the keys of the checkpoint the weights were loaded from (save() writes those keys) */
  checkpointKeyMap: CheckpointKeyMap = { strip: '', add: '' };
  /** checkpoint keys that tk.loadModel found no use for (e.g. the heads of other tasks) */
  unusedCheckpointKeys: string[] = [];
  /** the prefix added to parameter names in the loaded checkpoint's keys ("" unless loaded from one with an extra prefix) */
  get checkpointPrefix(): string {
    return this.checkpointKeyMap.add;
  }

  abstract numLayers(): number;
  /** logits [B, T, V] (or [B, 1, V] with lastOnly) */
  abstract forward(inputIds: Tensor | number[][], opts?: ForwardOptions): Tensor;
  /** the checkpoint key of a parameter name (identity for models built by createModel) */
  toCheckpointKey(name: string): string {
    return applyKeyMap(name, this.checkpointKeyMap);
  }
  /** Names of parameters that transformers does not save because they are tied. */
  tiedKeys(): string[] {
    return [];
  }
  /** Writes config.json and model.safetensors (checkpoint key names kept), loadable by transformers. */
  save(dir: string): void {
    saveVia(this, dir);
  }

  get vocabSize(): number {
    return Number(this.config.vocab_size);
  }

  eosTokenIds(): number[] {
    const e = this.generationConfig.eos_token_id ?? this.config.eos_token_id;
    const ids = Array.isArray(e) ? e : e === undefined || e === null ? [] : [e];
    const out = ids.map(Number);
    if (this.tokenizer?.eosTokenId !== null && this.tokenizer?.eosTokenId !== undefined) out.push(this.tokenizer.eosTokenId);
    return [...new Set(out)];
  }

  private padId(): number {
    const p = this.generationConfig.pad_token_id ?? this.config.pad_token_id ?? this.tokenizer?.padTokenId;
    return p === undefined || p === null ? 0 : Number(p);
  }

  private prompts(input: Tensor | number[][] | string[] | string, tok: Tokenizer | null): number[][] {
    if (typeof input === 'string') input = [input];
    if (input instanceof Tensor) {
      const [B, T] = input.shape as [number, number];
      const a = input.toArray();
      return Array.from({ length: B }, (_, b) => Array.from(a.subarray(b * T, (b + 1) * T)));
    }
    if (input.length && typeof input[0] === 'string') {
      if (!tok) throw new Error('generate: string prompts need a tokenizer (load the model directory with its tokenizer, or pass { tokenizer })');
      return (input as string[]).map((s) => tok.encode(s, { addSpecialTokens: true }));
    }
    return input as number[][];
  }

  /** Generates for each prompt; an async iterator of the same steps is `stream`. */
  generate(input: Tensor | number[][] | string[] | string, opts: GenerateOptions = {}): GenerationOutput[] {
    const it = this.steps(input, opts);
    let r = it.next();
    while (!r.done) r = it.next();
    return r.value;
  }

  /** Yields every new token as it is produced. */
  async *stream(input: Tensor | number[][] | string[] | string, opts: GenerateOptions = {}): AsyncGenerator<StreamEvent, GenerationOutput[]> {
    const it = this.steps(input, opts);
    let r: IteratorResult<StreamEvent[], GenerationOutput[]> | null = null;
    try {
      r = it.next();
      while (!r.done) {
        for (const e of r.value) yield e;
        await new Promise<void>((res) => setImmediate(res));
        r = it.next();
      }
      return r.value;
    } finally {
      // the consumer stopped early (break, return, throw): end the steps so that the KV cache is freed now
      if (!r?.done) it.return([]);
    }
  }

  private *steps(input: Tensor | number[][] | string[] | string, opts: GenerateOptions): Generator<StreamEvent[], GenerationOutput[]> {
    const tok = opts.tokenizer ?? this.tokenizer;
    const prompts = this.prompts(input, tok);
    if (!prompts.length || prompts.some((p) => p.length === 0)) throw new RangeError('generate: every prompt needs at least one token');
    const B = prompts.length;
    const maxNew = opts.maxNewTokens ?? Number(this.generationConfig.max_new_tokens ?? 20);
    const stopIds = new Set<number>([...this.eosTokenIds(), ...(opts.stop ?? []).filter((s): s is number => typeof s === 'number')]);
    const stopStrings = (opts.stop ?? []).filter((s): s is string => typeof s === 'string');
    if (stopStrings.length && !tok) throw new Error('generate: stop strings need a tokenizer');
    checkGenerateOptions(opts, maxNew);
    const rng = makeRng(opts.seed ?? nextSeed());
    const useCache = opts.useCache ?? true;
    const V = this.vocabSize;
    // left padding
    const L = Math.max(...prompts.map((p) => p.length));
    const pad = this.padId();
    let rows = prompts.map((p) => [...new Array(L - p.length).fill(pad), ...p]);
    let mask = prompts.map((p) => [...new Array(L - p.length).fill(0), ...new Array(p.length).fill(1)]);
    const outs: GenerationOutput[] = prompts.map(() => ({ tokens: [], finishReason: 'length' as const }));
    const done = new Array<boolean>(B).fill(false);
    const cache = useCache ? new KVCache(this.numLayers(), B) : null;
    let feedIds = rows, feedMask = mask;
    try {
      for (let step = 0; step < maxNew && done.some((d) => !d); step++) {
        const logits = noGrad(() =>
          tidy(() => {
            const y = this.forward(feedIds, { attentionMask: feedMask, cache: cache ?? undefined, lastOnly: true });
            return y.toArray() as Float32Array;
          }),
        );
        const events: StreamEvent[] = [];
        const next: number[] = [];
        const doneBefore = [...done];
        for (let b = 0; b < B; b++) {
          if (done[b]) {
            next.push(pad);
            continue;
          }
          const row = logits.subarray(b * V, (b + 1) * V);
          const t = sampleToken(row, opts, [...prompts[b]!, ...outs[b]!.tokens], rng);
          next.push(t);
          outs[b]!.tokens.push(t);
          const ev: StreamEvent = { index: b, token: t };
          if (tok) ev.text = tok.decode([t], { skipSpecialTokens: true });
          events.push(ev);
          if (stopIds.has(t)) {
            done[b] = true;
            outs[b]!.finishReason = 'stop';
          } else if (stopStrings.length) {
            const text = tok!.decode(outs[b]!.tokens, { skipSpecialTokens: true });
            if (stopStrings.some((s) => text.includes(s))) {
              done[b] = true;
              outs[b]!.finishReason = 'stop';
            }
          }
        }
        yield events;
        rows = rows.map((r, b) => [...r, next[b]!]);
        mask = mask.map((m, b) => [...m, doneBefore[b] ? 0 : 1]);
        if (cache) {
          feedIds = next.map((t) => [t]);
          feedMask = mask.map((m) => [m[m.length - 1]!]);
        } else {
          feedIds = rows;
          feedMask = mask;
        }
      }
    } finally {
      cache?.dispose();
    }
    if (tok) {
      for (const o of outs) {
        let text = tok.decode(o.tokens, { skipSpecialTokens: true });
        for (const s of stopStrings) {
          const i = text.indexOf(s);
          if (i >= 0) text = text.slice(0, i);
        }
        o.text = text;
      }
    }
    return outs;
  }

  /**
   * Summed log-probability of each continuation given its context (strings
   * need a tokenizer; the context gets the tokenizer's BOS handling, the
   * continuation none). Returns one number per pair.
   */
  logLikelihood(contexts: Array<string | number[]>, continuations: Array<string | number[]>, opts: { tokenizer?: Tokenizer; batchSize?: number } = {}): number[] {
    if (contexts.length !== continuations.length) throw new RangeError('logLikelihood: contexts and continuations differ in length');
    const tok = opts.tokenizer ?? this.tokenizer;
    const enc = (x: string | number[], special: boolean) => {
      if (typeof x !== 'string') return x;
      if (!tok) throw new Error('logLikelihood: string inputs need a tokenizer');
      return tok.encode(x, { addSpecialTokens: special });
    };
    const pairs = contexts.map((c, i) => ({ ctx: enc(c, true), cont: enc(continuations[i]!, false) }));
    const bs = opts.batchSize ?? 8;
    const out: number[] = [];
    for (let i = 0; i < pairs.length; i += bs) {
      const batch = pairs.slice(i, i + bs);
      const seqs = batch.map((p) => [...p.ctx, ...p.cont]);
      if (batch.some((p) => p.ctx.length === 0)) throw new RangeError('logLikelihood: every context needs at least one token');
      const T = Math.max(...seqs.map((s) => s.length));
      const ids = seqs.map((s) => [...s, ...new Array(T - s.length).fill(0)]);
      const mask = seqs.map((s) => [...new Array(s.length).fill(1), ...new Array(T - s.length).fill(0)]);
      const lp = noGrad(() =>
        tidy(() => {
          const logits = this.forward(ids, { attentionMask: mask });
          const V = logits.shape[2]!;
          return ops.logSoftmax(ops.reshape(logits, [batch.length * T, V]), -1).toArray() as Float32Array;
        }),
      );
      const V = this.vocabSize;
      batch.forEach((p, b) => {
        let s = 0;
        for (let j = 0; j < p.cont.length; j++) {
          const pos = p.ctx.length + j - 1;  // logits at pos predict token pos + 1
          s += lp[(b * T + pos) * V + p.cont[j]!]!;
        }
        out.push(s);
      });
    }
    return out;
  }
}

