// Fused (flash-style) scaled dot-product attention.
import { permute, reshape, slice } from './shape.js';
import { checkTensor, h, native, record, Tensor, wrap } from './util.js';

export interface AttentionOptions {
  causal?: boolean;
  /** default 1 / sqrt(D) */
  scale?: number;
  /** i32 [B]: keys j >= kvLengths[b] are masked (padding) */
  kvLengths?: Tensor;
}

/**
 * q: [B, H, T, D]; k, v: [B, Hkv, S, D], H a multiple of Hkv (grouped-query),
 * D <= 256, S >= T allowed (prefix keys, KV cache). With causal, query i attends
 * keys j <= i + (S - T); kvLengths[b] masks keys j >= kvLengths[b]. A query that
 * sees no key (kvLengths 0, or T > S under causal) gives zeros. Differentiable in
 * q, k and v; the [T, S] score matrix is never stored (the backward
 * recomputes it tile by tile from the saved log-sum-exp).
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  checkTensor('attention', 'q', q);
  checkTensor('attention', 'k', k);
  checkTensor('attention', 'v', v);
  if (opts.kvLengths !== undefined) checkTensor('attention', 'kvLengths', opts.kvLengths);
  const D = q.shape[3] ?? 0;
  const scale = opts.scale ?? 1 / Math.sqrt(D || 1);
  const causal = opts.causal ?? false;
  const kl = opts.kvLengths ? h(opts.kvLengths) : null;
  const [o, lse] = native.attention_forward(h(q), h(k), h(v), kl, scale, causal);
  const out = record(wrap(o, q.shape), 'attention', [q, k, v], (g) => {
    const [dq, dk, dv] = native.attention_backward(h(q), h(k), h(v), o, lse, h(g), kl, scale, causal);
    lse.dispose();
    return [wrap(dq, q.shape), wrap(dk, k.shape), wrap(dv, v.shape)];
  });
  if (!out._node) lse.dispose();
  return out;
}

export interface PackedAttentionOptions {
  causal?: boolean;
  /** default 1 / sqrt(D) */
  scale?: number;
}

/**
 * Self-attention straight from a fused projection, for the models: qkv [B, T, 3·C]
 * holds q, k and v side by side (each [B, T, heads, D], as GPT-2's c_attn writes
 * them); returns [B, T, C], the heads merged back. The same values as slicing,
 * permuting, tk.ops.attention and permuting back; on the CPU the fused kernel reads
 * q, k and v where they are and writes [B, T, C] directly, and the backward writes
 * one [B, T, 3·C] gradient (no head copies, no zero-padded slice gradients). @internal
 */
export function attentionPacked(qkv: Tensor, heads: number, opts: PackedAttentionOptions = {}): Tensor {
  checkTensor('attentionPacked', 'qkv', qkv);
  if (!Number.isInteger(heads) || heads < 1) throw new RangeError(`attentionPacked: heads must be a positive integer, got ${heads}`);
  if (qkv.ndim !== 3 || qkv.shape[2]! % (3 * heads) !== 0)
    throw new RangeError(`attentionPacked: qkv must be [B, T, 3·heads·D], got [${qkv.shape}] with ${heads} heads`);
  const [B, T, W] = qkv.shape as [number, number, number];
  const C = W / 3, D = C / heads;
  const scale = opts.scale ?? 1 / Math.sqrt(D || 1);
  const causal = opts.causal ?? false;
  if (qkv.device !== 'cpu') {
    const part = (i: number) => permute(reshape(slice(qkv, 2, i * C, (i + 1) * C), [B, T, heads, D]), [0, 2, 1, 3]);
    const a = attention(part(0), part(1), part(2), { causal, scale });
    return reshape(permute(a, [0, 2, 1, 3]), [B, T, C]);
  }
  const [o, lse] = native.attention_packed_forward(h(qkv), heads, scale, causal);
  const y = wrap(o, [B, T, C]);
  const out = record(y, 'attentionPacked', [qkv], (g) => {
    const gqkv = native.attention_packed_backward(h(qkv), h(y), lse, h(g), heads, scale, causal);
    lse.dispose();
    return [wrap(gqkv, qkv.shape)];
  });
  if (!out._node) lse.dispose();
  return out;
}
