// Batched matrix product with broadcasting leading dimensions.
import { autocastState } from '../cuda.js';
import { checkTensor, h, native, record, sumTo, Tensor, wrap } from './util.js';

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
}

/**
 * a: [..., M, K] ([..., K, M] with transA), b: [..., K, N] ([..., N, K] with transB)
 * -> [...batch, M, N], batch dims broadcast.
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  checkTensor('matmul', 'a', a);
  checkTensor('matmul', 'b', b);
  const ta = opts.transA ?? false, tb = opts.transB ?? false;
  // autocast: bf16 copies of f32 CUDA operands, f32 accumulation and results (forward and backward)
  const mixed = autocastState() === 'bf16' && a.device === 'cuda' && a.dtype === 'f32' && b.dtype === 'f32';
  const a16 = mixed ? native.cast(h(a), 'bf16') : null, b16 = mixed ? native.cast(h(b), 'bf16') : null;
  const y = wrap(native.matmul_forward(a16 ?? h(a), b16 ?? h(b), ta, tb, mixed));
  // the bf16 copies are not kept (queued kernels still read them safely): the backward casts again
  a16?.dispose();
  b16?.dispose();
  const mm = (x: Tensor, z: Tensor, tx: boolean, tz: boolean): Tensor => {
    if (!mixed) return wrap(native.matmul_forward(h(x), h(z), tx, tz));
    // x or z is the incoming f32 gradient, the other an f32 operand: both go to bf16
    const x16 = native.cast(h(x), 'bf16'), z16 = native.cast(h(z), 'bf16');
    const r = wrap(native.matmul_forward(x16, z16, tx, tz, true));
    x16.dispose();
    z16.dispose();
    return r;
  };
  return record(y, 'matmul', [a, b], (g, needs) => {
    let ga: Tensor | null = null, gb: Tensor | null = null;
    if (needs[0]) {
      // op(a) = g · op(b)^T ; stored a = op(a) or op(a)^T
      ga = ta ? mm(b, g, tb, true) : mm(g, b, false, !tb);
      ga = sumTo(ga, a.shape);
    }
    if (needs[1] && b.ndim === 2 && a.ndim > 2 && !ta) {
      // b shared across a's batch (a weight): fold the batch into the product's K
      // (one GEMM over all rows, no per-batch partial products to sum)
      const K = a.shape[a.ndim - 1]!, N = g.shape[g.ndim - 1]!;
      const rows = a.shape.slice(0, -1).reduce((p, d) => p * d, 1);
      const a2 = wrap(native.reshape(h(a), [rows, K])), g2 = wrap(native.reshape(h(g), [rows, N]));
      gb = tb ? mm(g2, a2, true, false) : mm(a2, g2, true, false);
      a2.dispose();
      g2.dispose();
    } else if (needs[1]) {
      // op(b) = op(a)^T · g
      gb = tb ? mm(g, a, true, ta) : mm(a, g, !ta, false);
      gb = sumTo(gb, b.shape);
    }
    return [ga, gb];
  });
}
