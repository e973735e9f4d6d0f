// Matmul against the FMA peak: a square product and the two products of a
// transformer MLP block at training size (tokens 2048, d 256, hidden 768),
// each with the four transpose combinations the forward and backward use.
//
//   a: [M, K] ([K, M] with transA), b: [K, N] ([N, K] with transB) -> [M, N]
//   work = 2 * M * N * K FLOPs; target 80% of the FMA peak
import { measure, samplePositions } from './lib.js';

export const title = 'FLOP/s vs FMA peak';

const SHAPES = [
  [1024, 1024, 1024],
  [2048, 256, 768],  // x · W_up   ([tokens, d] · [d, hidden])
  [2048, 768, 256],  // h · W_down ([tokens, hidden] · [hidden, d])
];
const TRANSPOSES = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
];

// C entries against a float64 dot product of the stored inputs; the error is
// measured relative to sum |a_ik * b_kj| so that cancellation cannot hide it.
function checkProduct(c, a, b, M, N, K, ta, tb) {
  const A = a.toArray(), B = b.toArray(), C = c.toArray();
  for (const p of samplePositions(M * N, 48)) {
    const i = Math.floor(p / N), j = p % N;
    let s = 0, abs = 0;
    for (let k = 0; k < K; k++) {
      const x = ta ? A[k * M + i] : A[i * K + k];
      const y = tb ? B[j * K + k] : B[k * N + j];
      s += x * y;
      abs += Math.abs(x * y);
    }
    const err = Math.abs(C[p] - s) / Math.max(abs, 1e-30);
    if (!(err <= 1e-5)) return `C[${i}, ${j}] = ${C[p]}, want ${s} (error ${err.toExponential(2)} of sum |a*b|)`;
  }
  return null;
}

export function run(ctx) {
  const { tk } = ctx;
  const cases = [];
  const inputs = [];
  for (const [M, K, N] of SHAPES) {
    for (const [ta, tb] of TRANSPOSES) {
      const a = tk.randn(ta ? [K, M] : [M, K], { seed: M + 7 * K });
      const b = tk.randn(tb ? [N, K] : [K, N], { seed: N + 11 * K });
      inputs.push(a, b);
      const opts = { transA: ta, transB: tb };
      const tag = `${ta ? 'T' : 'N'}${tb ? 'T' : 'N'}`;
      cases.push({
        op: `matmul ${tag}`,
        shape: `[${a.shape}]·[${b.shape}] ${M}x${K}x${N}`,
        kind: 'flop',
        work: 2 * M * N * K,
        target: 0.8,
        fn: () => tk.ops.matmul(a, b, opts).dispose(),
        check: () => {
          const c = tk.ops.matmul(a, b, opts);
          try {
            return checkProduct(c, a, b, M, N, K, ta, tb);
          } finally {
            c.dispose();
          }
        },
      });
    }
  }
  try {
    return measure('matmul', cases, ctx);
  } finally {
    for (const t of inputs) t.dispose();
  }
}
