// Fused (flash-style) scaled dot-product attention.
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
