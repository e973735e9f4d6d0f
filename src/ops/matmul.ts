// Batched matrix product with broadcasting leading dimensions.
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
  const y = wrap(native.matmul_forward(h(a), h(b), ta, tb));
  return record(y, 'matmul', [a, b], (g, needs) => {
    const mm = (x: Tensor, z: Tensor, tx: boolean, tz: boolean) => wrap(native.matmul_forward(h(x), h(z), tx, tz));
    let ga: Tensor | null = null, gb: Tensor | null = null;
    if (needs[0]) {
      // op(a) = g · op(b)^T ; stored a = op(a) or op(a)^T
      ga = ta ? mm(b, g, tb, true) : mm(g, b, false, !tb);
      ga = sumTo(ga, a.shape);
    }
    if (needs[1]) {
      // op(b) = op(a)^T · g
      gb = tb ? mm(g, a, true, ta) : mm(a, g, !ta, false);
      gb = sumTo(gb, b.shape);
    }
    return [ga, gb];
  });
}
