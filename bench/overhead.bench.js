// Call overhead of a tiny op, in µs per call (target ≤ 2 µs): the whole public
// path (tk.ops.add on [4] tensors: argument checks, autograd bookkeeping, the
// native call with its validation and output allocation, the Tensor wrapper,
// dispose) against the cheapest validated native call (noop) and the bare
// native add without the TypeScript layer. Each sample runs a batch of calls.
import { measure } from './lib.js';

export const title = 'µs per call';

const TARGET_US = 2;

export function run(ctx) {
  const { tk, native } = ctx;
  const a = tk.tensor([1, 2, 3, 4]);
  const b = tk.tensor([5, 6, 7, 8]);
  const ha = native.fromArray([1, 2, 3, 4], [4], 'f32');
  const hb = native.fromArray([5, 6, 7, 8], [4], 'f32');
  const check = (make) => () => {
    const y = make();
    const v = Array.from(y.toArray ? y.toArray() : native.toArray(y));
    y.dispose();
    return v.join(',') === '6,8,10,12' ? null : `got [${v}]`;
  };
  const B = 2000;
  const cases = [
    {
      op: 'tk.ops.add', shape: '[4] + [4]', kind: 'latency', target: TARGET_US, batch: B,
      fn: () => {
        for (let i = 0; i < B; i++) tk.ops.add(a, b).dispose();
      },
      check: check(() => tk.ops.add(a, b)),
      note: 'public API, output disposed every call',
    },
    {
      op: 'native binary_forward', shape: '[4] + [4]', kind: 'latency', target: TARGET_US, batch: B,
      fn: () => {
        for (let i = 0; i < B; i++) native.binary_forward('add', ha, hb).dispose();
      },
      check: check(() => native.binary_forward('add', ha, hb)),
      note: 'the binding alone: no Tensor wrapper, no autograd checks',
    },
    {
      op: 'native noop', shape: '[4]', kind: 'latency', target: TARGET_US, batch: 10 * B,
      fn: () => {
        for (let i = 0; i < 10 * B; i++) native.noop(ha);
      },
      note: 'the floor: one N-API call that validates a tensor argument',
    },
  ];
  try {
    return measure('overhead', cases, ctx);
  } finally {
    for (const t of [a, b, ha, hb]) t.dispose();
  }
}
