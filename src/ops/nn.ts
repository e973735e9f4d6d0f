// Neural-network ops: softmax, logSoftmax, crossEntropy, layerNorm, rmsNorm,
// embedding, dropout, rope.
import { nextSeed } from '../tensor.js';
import { checkTensor, h, native, normAxis, record, scalarHandle, Tensor, wrap } from './util.js';

function softmaxImpl(x: Tensor, axis: number, log: boolean): Tensor {
  const op = log ? 'logSoftmax' : 'softmax';
  checkTensor(op, 'x', x);
  const ax = normAxis(op, axis, x.ndim);
  const y = wrap(native.softmax_forward(h(x), ax, log), x.shape);
  return record(y, op, [x], (g) => [wrap(native.softmax_backward(h(y), h(g), ax, log), x.shape)]);
}

export const softmax = (x: Tensor, axis = -1): Tensor => softmaxImpl(x, axis, false);
export const logSoftmax = (x: Tensor, axis = -1): Tensor => softmaxImpl(x, axis, true);

export interface CrossEntropyOptions {
  ignoreIndex?: number;
  reduction?: 'mean' | 'sum' | 'none';
}

/**
 * logits [N, V] f32, targets [N] i32. Rows whose target is ignoreIndex
 * (default -100) contribute nothing; 'mean' divides by the rows that count.
 */
export function crossEntropy(logits: Tensor, targets: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  checkTensor('crossEntropy', 'logits', logits);
  checkTensor('crossEntropy', 'targets', targets);
  const ignore = opts.ignoreIndex ?? -100;
  const reduction = opts.reduction ?? 'mean';
  if (!['mean', 'sum', 'none'].includes(reduction)) throw new TypeError(`crossEntropy: unknown reduction '${reduction}'`);
  const [lossRows, lse] = native.cross_entropy_forward(h(logits), h(targets), ignore);
  const N = logits.shape[0]!;
  let count = N;
  if (reduction === 'mean') {
    count = 0;
    const t = native.toArray(h(targets));
    for (let i = 0; i < N; i++) if (t[i] !== ignore) count++;
  }
  let y: Tensor;
  if (reduction === 'none') {
    y = wrap(lossRows, [N]);
  } else {
    const s = N === 0 ? scalarHandle(0, logits, 'f32') : native.reduce_forward('sum', lossRows, 0);
    lossRows.dispose();
    if (reduction === 'mean') {
      // no row counts (all ignored, or N = 0): NaN, as PyTorch (0 / 0). scale() only
      // takes finite factors, so that case is built directly.
      const m = count > 0 ? native.unary_forward('scale', s, 1 / count) : scalarHandle(NaN, logits, 'f32');
      s.dispose();
      y = wrap(m, []);
    } else {
      y = wrap(s, []);
    }
  }
  const out = record(y, 'crossEntropy', [logits], (g) => {
    let gRow: ReturnType<typeof native.empty>;
    if (reduction === 'none') gRow = native.clone(h(g));
    else {
      const g1 = native.reshape(h(g), [1]);
      const e = native.expand(g1, [N]);
      g1.dispose();
      // with count 0 every row is ignored and gets a zero gradient whatever gRow holds
      gRow = reduction === 'mean' ? native.unary_forward('scale', e, count > 0 ? 1 / count : 0) : e;
      if (gRow !== e) e.dispose();
    }
    const gx = native.cross_entropy_backward(h(logits), lse, h(targets), gRow, ignore);
    gRow.dispose();
    lse.dispose();
    return [wrap(gx, logits.shape)];
  });
  if (!out._node) lse.dispose();
  return out;
}

export interface NormOptions {
  eps?: number;
}

/** LayerNorm over the last axis; bias may be null. */
export function layerNorm(x: Tensor, weight: Tensor, bias: Tensor | null, opts: NormOptions = {}): Tensor {
  checkTensor('layerNorm', 'x', x);
  checkTensor('layerNorm', 'weight', weight);
  if (bias !== null && bias !== undefined) checkTensor('layerNorm', 'bias', bias);
  const eps = opts.eps ?? 1e-5;
  const [y, mean, rstd] = native.layer_norm_forward(h(x), h(weight), bias ? h(bias) : null, eps);
  const inputs = bias ? [x, weight, bias] : [x, weight];
  const out = record(wrap(y, x.shape), 'layerNorm', inputs, (g, needs) => {
    const [gx, gw, gb] = native.layer_norm_backward(h(x), h(weight), mean, rstd, h(g), needs[1]!, !!bias && needs[2]!);
    mean.dispose();
    rstd.dispose();
    const r: Array<Tensor | null> = [needs[0] ? wrap(gx, x.shape) : (gx.dispose(), null), gw ? wrap(gw, weight.shape) : null];
    if (bias) r.push(gb ? wrap(gb, bias.shape) : null);
    return r;
  });
  if (!out._node) {
    mean.dispose();
    rstd.dispose();
  }
  return out;
}

/** RMSNorm over the last axis (Llama): x / sqrt(mean(x^2) + eps) * weight. */
export function rmsNorm(x: Tensor, weight: Tensor, opts: NormOptions = {}): Tensor {
  checkTensor('rmsNorm', 'x', x);
  checkTensor('rmsNorm', 'weight', weight);
  const eps = opts.eps ?? 1e-6;
  const [y, rstd] = native.rms_norm_forward(h(x), h(weight), eps);
  const out = record(wrap(y, x.shape), 'rmsNorm', [x, weight], (g, needs) => {
    const [gx, gw] = native.rms_norm_backward(h(x), h(weight), rstd, h(g), needs[1]!);
    rstd.dispose();
    return [needs[0] ? wrap(gx, x.shape) : (gx.dispose(), null), gw ? wrap(gw, weight.shape) : null];
  });
  if (!out._node) rstd.dispose();
  return out;
}

/** table [V, C] f32, ids i32 [...] -> [..., C] */
export function embedding(table: Tensor, ids: Tensor): Tensor {
  checkTensor('embedding', 'table', table);
  checkTensor('embedding', 'ids', ids);
  const y = wrap(native.embedding_forward(h(table), h(ids)));
  return record(y, 'embedding', [table], (g) => [wrap(native.embedding_backward(h(g), h(ids), table.shape[0]!), table.shape)]);
}

/**
 * tableA[idsA] + tableB[idsB] (a token plus a position embedding) as one node: the same
 * values as two embedding lookups and an add, without keeping the two lookups alive until
 * the backward. @internal (models)
 */
export function embeddingSum(tableA: Tensor, idsA: Tensor, tableB: Tensor, idsB: Tensor): Tensor {
  checkTensor('embeddingSum', 'tableA', tableA);
  checkTensor('embeddingSum', 'idsA', idsA);
  checkTensor('embeddingSum', 'tableB', tableB);
  checkTensor('embeddingSum', 'idsB', idsB);
  const ea = native.embedding_forward(h(tableA), h(idsA));
  let y: Tensor;
  try {
    const eb = native.embedding_forward(h(tableB), h(idsB));
    try {
      y = wrap(native.binary_forward('add', ea, eb));
    } finally {
      eb.dispose();
    }
  } finally {
    ea.dispose();
  }
  return record(y, 'embeddingSum', [tableA, tableB], (g, needs) => [
    needs[0] ? wrap(native.embedding_backward(h(g), h(idsA), tableA.shape[0]!), tableA.shape) : null,
    needs[1] ? wrap(native.embedding_backward(h(g), h(idsB), tableB.shape[0]!), tableB.shape) : null,
  ]);
}

export interface DropoutOptions {
  /** mask seed; drawn from the global sequence (tk.manualSeed) when omitted */
  seed?: number;
}

/** Zeroes each element with probability p and scales the rest by 1 / (1 - p). */
export function dropout(x: Tensor, p: number, opts: DropoutOptions = {}): Tensor {
  checkTensor('dropout', 'x', x);
  const seed = opts.seed ?? nextSeed();
  const y = wrap(native.dropout_forward(h(x), p, seed), x.shape);
  return record(y, 'dropout', [x], (g) => [wrap(native.dropout_forward(h(g), p, seed), x.shape)]);
}

export interface RopeOptions {
  theta?: number;
}

/**
 * Rotary position embedding, rotate-half convention (Hugging Face Llama):
 * x [B, H, T, D], positions i32 [T]; pairs (d, d + D/2) rotate by
 * positions[t] * theta^(-2d/D).
 */
export function rope(x: Tensor, positions: Tensor, opts: RopeOptions = {}): Tensor {
  checkTensor('rope', 'x', x);
  checkTensor('rope', 'positions', positions);
  const theta = opts.theta ?? 10000;
  const y = wrap(native.rope_forward(h(x), h(positions), theta, false), x.shape);
  return record(y, 'rope', [x], (g) => [wrap(native.rope_forward(h(g), h(positions), theta, true), x.shape)]);
}
