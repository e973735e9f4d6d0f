// Every op on CUDA against its CPU kernel, forward and backward, in f32 and
// bf16 (bf16 storage, f32 compute). The CPU result on the same inputs (for
// bf16: the inputs rounded to bf16) is the reference; errors are relative
// norm errors. Skips where no real CUDA device is available (CI, and the host
// test backend of tests/gpu/plumbing.test.ts).
import { describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import type { Tensor } from 'tunekit';

const info = tk.backend().cuda;
const realGpu = info.available && info.devices[0]?.name !== 'tunekit host test backend';
// TUNEKIT_GPU_TEST_DEVICE=cpu runs the f32 cases CPU against CPU: a dry run of
// this file's own logic on a machine without a GPU (every error is then 0)
const DEV: 'cpu' | 'cuda' = process.env.TUNEKIT_GPU_TEST_DEVICE === 'cpu' ? 'cpu' : 'cuda';
const enabled = realGpu || DEV === 'cpu';

// f32: CUDA reductions and transcendentals differ from the CPU's in rounding
// order and ulps only; bf16: the output (and gradient) rounding of bf16 (2^-9).
const TOL = { f32: 1e-5, f32mm: 2e-5, bf16: 2e-2 } as const;

function relErr(got: Float32Array | Int32Array | Int8Array, ref: Float32Array | Int32Array | Int8Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Number(got[i]) - Number(ref[i]);
    num += d * d;
    den += Number(ref[i]) * Number(ref[i]);
  }
  return Math.sqrt(num / (den || 1));
}

let seed = 1 + Math.floor(Math.random() * 1e6);
const uniform = (shape: number[], lo = -1, hi = 1): Tensor => {
  const u = tk.rand(shape, { seed: seed++ });
  return tk.noGrad(() => tk.ops.add(tk.ops.scale(u, hi - lo), lo));
};
const normal = (shape: number[]): Tensor => tk.randn(shape, { seed: seed++ });
const ints = (shape: number[], hi: number): Tensor => {
  const n = shape.reduce((a, b) => a * b, 1);
  return tk.tensor(Int32Array.from({ length: n }, (_, i) => (i * 7919 + seed++) % hi), shape, { dtype: 'i32' });
};

type Case = {
  name: string;
  make: () => Tensor[];
  run: (xs: Tensor[]) => Tensor;
  /** indices of inputs that get gradients (float leaves) */
  grad?: number[];
  dtypes?: Array<'f32' | 'bf16'>;
  tol?: number;
};

/** Runs a case on the CPU (reference) and on CUDA in one dtype; returns [forward error, gradient errors]. */
function check(c: Case, dtype: 'f32' | 'bf16'): { fwd: number; grads: number[] } {
  const base = c.make();
  const isFloat = (t: Tensor) => t.dtype === 'f32';
  // the reference sees exactly the values the device sees
  const ref = base.map((t) => (dtype === 'bf16' && isFloat(t) ? tk.noGrad(() => t.to('bf16').to('f32')) : t));
  const leafs = (xs: Tensor[], dev: 'cpu' | 'cuda', dt: 'f32' | 'bf16') =>
    xs.map((t, i) => {
      let y = dev === 'cuda' ? t.to('cuda') : t;
      if (dt === 'bf16' && isFloat(t)) y = y.to('bf16');
      y = y === t ? t.detach() : y.detach();
      if (c.grad?.includes(i)) y.requiresGrad = true;
      return y;
    });
  const cpuIn = leafs(ref, 'cpu', 'f32');
  const devIn = leafs(ref, DEV, dtype);
  const yc = c.run(cpuIn), yd = c.run(devIn);
  expect(yd.device, `${c.name}: result device`).toBe(DEV);
  const fwd = relErr(yd.toArray(), yc.toArray());
  const grads: number[] = [];
  if (c.grad?.length) {
    const w = uniform([...yc.shape], 0.5, 1.5);
    const wd = dtype === 'bf16' ? w.to(DEV).to('bf16') : w.to(DEV);
    const wc = dtype === 'bf16' ? w.to('bf16').to('f32') : w;
    const lc = tk.ops.sum(tk.ops.mul(yc, wc));
    const ld = tk.ops.sum(tk.ops.mul(yd.dtype === wd.dtype ? yd : yd.to(wd.dtype), wd));
    lc.backward();
    ld.backward();
    for (const i of c.grad) grads.push(relErr(devIn[i]!.grad!.toArray(), cpuIn[i]!.grad!.toArray()));
  }
  return { fwd, grads };
}

const unaryNames = ['neg', 'exp', 'sqrt', 'log', 'gelu', 'geluErf', 'silu', 'relu', 'tanh'] as const;
const cases: Case[] = [
  ...unaryNames.map((n): Case => ({
    name: n,
    make: () => [n === 'log' || n === 'sqrt' ? uniform([37, 129], 0.2, 3) : uniform([37, 129], -3, 3)],
    run: ([x]) => (tk.ops as any)[n](x),
    grad: [0],
  })),
  { name: 'scale', make: () => [normal([1001])], run: ([x]) => tk.ops.scale(x!, -1.7), grad: [0] },
  { name: 'pow 3', make: () => [uniform([5, 77], 0.3, 2)], run: ([x]) => tk.ops.pow(x!, 3), grad: [0] },
  { name: 'pow 0.7', make: () => [uniform([5, 77], 0.3, 2)], run: ([x]) => tk.ops.pow(x!, 0.7), grad: [0] },
  ...(['add', 'sub', 'mul', 'div'] as const).map((n): Case => ({
    name: `${n} broadcast`,
    make: () => [normal([3, 33, 17]), n === 'div' ? uniform([33, 1], 0.5, 2) : normal([33, 1])],
    run: ([a, b]) => tk.ops[n](a!, b!),
    grad: [0, 1],
  })),
  { name: 'add same shape', make: () => [normal([4097]), normal([4097])], run: ([a, b]) => tk.ops.add(a!, b!), grad: [0, 1] },
  { name: 'where', make: () => [ints([6, 9], 2), normal([6, 9]), normal([1, 9])], run: ([c, a, b]) => tk.ops.where(c!, a!, b!), grad: [1, 2] },
  { name: 'maskedFill', make: () => [normal([4, 5, 6]), ints([5, 1], 2)], run: ([x, m]) => tk.ops.maskedFill(x!, m!, -3), grad: [0] },
  { name: 'sum axis -1', make: () => [normal([13, 1031])], run: ([x]) => tk.ops.sum(x!, -1), grad: [0] },
  { name: 'sum axis 0', make: () => [normal([517, 33])], run: ([x]) => tk.ops.sum(x!, 0), grad: [0] },
  { name: 'mean middle axis', make: () => [normal([3, 65, 7])], run: ([x]) => tk.ops.mean(x!, 1), grad: [0] },
  { name: 'sum all', make: () => [normal([70001])], run: ([x]) => tk.ops.sum(x!), grad: [0] },
  { name: 'max axis -1', make: () => [normal([19, 333])], run: ([x]) => tk.ops.max(x!, -1), grad: [0] },
  { name: 'max axis 0', make: () => [normal([61, 9])], run: ([x]) => tk.ops.max(x!, 0), grad: [0] },
  { name: 'softmax', make: () => [normal([11, 1000])], run: ([x]) => tk.ops.softmax(x!, -1), grad: [0] },
  { name: 'softmax axis 0', make: () => [normal([37, 5])], run: ([x]) => tk.ops.softmax(x!, 0), grad: [0] },
  { name: 'logSoftmax', make: () => [normal([7, 50257])], run: ([x]) => tk.ops.logSoftmax(x!, -1), grad: [0] },
  {
    name: 'crossEntropy',
    make: () => [normal([29, 1009]), tk.tensor(Int32Array.from({ length: 29 }, (_, i) => (i % 5 === 3 ? -100 : (i * 37) % 1009)), [29], { dtype: 'i32' })],
    run: ([l, t]) => tk.ops.crossEntropy(l!, t!),
    grad: [0],
  },
  { name: 'layerNorm', make: () => [normal([21, 771]), normal([771]), normal([771])], run: ([x, w, b]) => tk.ops.layerNorm(x!, w!, b!), grad: [0, 1, 2] },
  { name: 'rmsNorm', make: () => [normal([21, 771]), normal([771])], run: ([x, w]) => tk.ops.rmsNorm(x!, w!), grad: [0, 1] },
  { name: 'embedding', make: () => [normal([101, 37]), ints([3, 41], 101)], run: ([t, i]) => tk.ops.embedding(t!, i!), grad: [0] },
  { name: 'dropout (the CPU mask)', make: () => [normal([5, 999])], run: ([x]) => tk.ops.dropout(x!, 0.3, { seed: 1234 }), grad: [0] },
  {
    name: 'rope',
    make: () => [normal([2, 3, 17, 64]), tk.tensor(Int32Array.from({ length: 17 }, (_, i) => i + 5), [17], { dtype: 'i32' })],
    run: ([x, p]) => tk.ops.rope(x!, p!),
    grad: [0],
  },
  ...[[false, false], [true, false], [false, true], [true, true]].map(([ta, tb]): Case => ({
    name: `matmul ta=${ta} tb=${tb}`,
    make: () => [normal(ta ? [67, 77] : [77, 67]), normal(tb ? [131, 67] : [67, 131])],
    run: ([a, b]) => tk.ops.matmul(a!, b!, { transA: ta!, transB: tb! }),
    grad: [0, 1],
    tol: TOL.f32mm,
  })),
  { name: 'matmul batched broadcast', make: () => [normal([3, 2, 33, 45]), normal([2, 45, 29])], run: ([a, b]) => tk.ops.matmul(a!, b!), grad: [0, 1], tol: TOL.f32mm },
  { name: 'permute', make: () => [normal([3, 4, 5, 6])], run: ([x]) => tk.ops.permute(x!, [2, 0, 3, 1]), grad: [0] },
  { name: 'slice', make: () => [normal([3, 40, 5])], run: ([x]) => tk.ops.slice(x!, 1, 7, 31), grad: [0] },
  { name: 'concat', make: () => [normal([3, 4, 5]), normal([3, 2, 5])], run: ([a, b]) => tk.ops.concat([a!, b!], 1), grad: [0, 1] },
  { name: 'transpose', make: () => [normal([33, 65])], run: ([x]) => tk.ops.transpose(x!), grad: [0] },
  {
    name: 'attention causal gqa S>T kvLengths',
    make: () => [normal([2, 6, 19, 40]), normal([2, 2, 53, 40]), normal([2, 2, 53, 40]), tk.tensor(new Int32Array([53, 30]), [2], { dtype: 'i32' })],
    run: ([q, k, v, l]) => tk.ops.attention(q!, k!, v!, { causal: true, kvLengths: l! }),
    grad: [0, 1, 2],
  },
  { name: 'attention D=128', make: () => [normal([1, 4, 130, 128]), normal([1, 4, 130, 128]), normal([1, 4, 130, 128])], run: ([q, k, v]) => tk.ops.attention(q!, k!, v!), grad: [0, 1, 2] },
  {
    name: 'loraLinear',
    make: () => [normal([77, 67]), normal([131, 67]), normal([8, 67]), normal([131, 8]), normal([131])],
    run: ([x, w, a, b, bias]) => tk.ops.loraLinear(x!, w!, a!, b!, { scale: 2, bias: bias! }),
    grad: [0, 2, 3, 4],
    tol: TOL.f32mm,
  },
  {
    name: 'int8Linear',
    make: () => [normal([77, 320]), normal([130, 320]), normal([130])],
    run: ([x, w, bias]) => {
      const { q, scale } = tk.ops.quantizeInt8(w!);
      return tk.ops.int8Linear(x!, q, scale, { bias: bias! });
    },
    grad: [0],
    dtypes: ['f32'],
    tol: 2e-2,  // the activation's per-row int8 rounding may land differently at ties
  },
];

describe.skipIf(!enabled)('every op on CUDA against the CPU', () => {
  for (const c of cases)
    for (const dt of (c.dtypes ?? (['f32', 'bf16'] as const)).filter((d) => DEV === 'cuda' || d === 'f32'))
      it(`${c.name} (${dt})`, () => {
        const tol = dt === 'bf16' ? TOL.bf16 : (c.tol ?? TOL.f32);
        const r = check(c, dt);
        expect(r.fwd, `${c.name} ${dt} forward (seed ${seed})`).toBeLessThanOrEqual(tol);
        r.grads.forEach((e, i) => expect(e, `${c.name} ${dt} gradient of input ${c.grad![i]}`).toBeLessThanOrEqual(tol * 2));
      });

  it.skipIf(!realGpu)('gae equals the CPU exactly', () => {
    const r = uniform([37, 123]), v = uniform([37, 123]);
    const d = tk.tensor(Float32Array.from({ length: 37 * 123 }, (_, i) => (i % 17 === 5 ? 1 : 0)), [37, 123]);
    const last = uniform([37]);
    const cpu = tk.ops.gae(r, v, d, { gamma: 0.99, lambda: 0.95, lastValues: last });
    const gpu = tk.ops.gae(r.to('cuda'), v.to('cuda'), d.to('cuda'), { gamma: 0.99, lambda: 0.95, lastValues: last.to('cuda') });
    expect(Array.from(gpu.advantages.toArray())).toEqual(Array.from(cpu.advantages.toArray()));
    expect(Array.from(gpu.returns.toArray())).toEqual(Array.from(cpu.returns.toArray()));
  });

  it.skipIf(!realGpu)('casts between f32, bf16, i32 and i8 as the CPU does', () => {
    const x = tk.tensor([1.5, -2.7, 3e9, -1e10, NaN, 0.1, 126.6, -128.9], [8]);
    for (const dt of ['bf16', 'i32', 'i8'] as const)
      expect(Array.from(x.to('cuda').to(dt).toArray()), dt).toEqual(Array.from(x.to(dt).toArray()));
  });

  it.skipIf(!realGpu)('optimizer steps match the CPU (AdamW, SGD with momentum)', () => {
    for (const kind of ['adamw', 'sgd'] as const) {
      const p0 = normal([1000]), g0 = normal([1000]);
      const mk = (dev: 'cpu' | 'cuda') => {
        const p = p0.to(dev).detach();
        p.requiresGrad = true;
        p.grad = g0.to(dev);
        const opt = kind === 'adamw' ? new tk.AdamW([p], { lr: 1e-2, weightDecay: 0.1 }) : new tk.SGD([p], { lr: 1e-2, momentum: 0.9 });
        for (let i = 0; i < 3; i++) opt.step();
        return p;
      };
      expect(relErr(mk('cuda').toArray(), mk('cpu').toArray()), kind).toBeLessThanOrEqual(1e-6);
    }
  });

  it.skipIf(!realGpu)('autocast runs matmuls in bf16 with f32 results and gradients', () => {
    const a = normal([129, 257]), b = normal([257, 65]);
    const ad = a.to('cuda').detach(), bd = b.to('cuda').detach();
    ad.requiresGrad = true;
    const y = tk.autocast('bf16', () => tk.ops.matmul(ad, bd));
    expect(y.dtype).toBe('f32');
    expect(relErr(y.toArray(), tk.ops.matmul(a, b).toArray())).toBeLessThanOrEqual(1e-2);
    tk.ops.sum(y).backward();
    expect(ad.grad!.dtype).toBe('f32');
  });

  it.skipIf(!realGpu)('memory statistics, reuse and a clear out-of-memory error', () => {
    tk.cuda.emptyCache();
    const s0 = tk.cuda.memoryStats();
    const t = tk.zeros([1 << 20], { device: 'cuda' });
    const s1 = tk.cuda.memoryStats();
    expect(s1.allocatedBytes - s0.allocatedBytes).toBe(4 << 20);
    t.dispose();
    const u = tk.zeros([1 << 20], { device: 'cuda' });
    expect(tk.cuda.memoryStats().deviceAllocCount).toBe(s1.deviceAllocCount);
    u.dispose();
    const total = s1.totalBytes;
    expect(() => tk.zeros([Math.ceil(total / 2) + 1024, 2], { device: 'cuda' })).toThrow(/CUDA out of memory: tried to allocate \d+ bytes \(\d+ free of \d+\)/);
    tk.zeros([16], { device: 'cuda' }).toArray();  // still usable after the failure
  });
});
