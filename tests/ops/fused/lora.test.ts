// tk.ops.loraLinear: y = x·wᵀ + scale·(x·aᵀ)·bᵀ + bias as one two-segment GEMM.
// Forward against the float64 reference, with and without bias, fanInFanOut
// (w stored [in, out]), rank 1, leading batch dims, sizes off every tile and
// vector width; backward for x, a, b (and w, bias when they require grad) by
// central differences of the float64 reference through a random projection;
// a frozen w (requiresGrad false) gets no gradient; every supported ISA.
import { describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import { matmul as refMatmul } from '../../reference.js';
import type { Arr } from '../../reference.js';
import { checkGrad, ctxOf, expectTensor, ISAS, onIsa, Rng, T, TOL } from '../../helpers.js';
import { loraLinear } from './reference.js';

interface Case {
  lead: number[];
  inF: number;
  outF: number;
  r: number;
  bias: boolean;
  fifo: boolean;
}

// forward: K = in + r past one GEMM K block (256) in some, edge tiles in M and N everywhere
const FWD: Case[] = [
  { lead: [37], inF: 67, outF: 45, r: 5, bias: false, fifo: false },
  { lead: [37], inF: 67, outF: 45, r: 5, bias: true, fifo: false },
  { lead: [2, 3], inF: 131, outF: 29, r: 1, bias: true, fifo: false },
  { lead: [2, 3], inF: 131, outF: 29, r: 3, bias: false, fifo: true },
  { lead: [129], inF: 301, outF: 97, r: 7, bias: true, fifo: true },
  { lead: [1], inF: 13, outF: 1, r: 1, bias: true, fifo: false },
  { lead: [67], inF: 257, outF: 259, r: 17, bias: false, fifo: false },
];

// backward by finite differences: small shapes
const GRAD: Case[] = [
  { lead: [7], inF: 13, outF: 11, r: 3, bias: true, fifo: false },
  { lead: [2, 3], inF: 9, outF: 5, r: 1, bias: false, fifo: false },
  { lead: [2, 3], inF: 9, outF: 7, r: 2, bias: true, fifo: true },
];

function inputs(rng: Rng, c: Case): Arr[] {
  const xs = [
    rng.arr([...c.lead, c.inF]),
    rng.arr(c.fifo ? [c.inF, c.outF] : [c.outF, c.inF], 0.3),
    rng.arr([c.r, c.inF], 0.3),
    rng.arr([c.outF, c.r], 0.3),
  ];
  if (c.bias) xs.push(rng.arr([c.outF]));
  return xs;
}

const label = (c: Case, scale: number) => `x=[${c.lead},${c.inF}] out=${c.outF} r=${c.r} bias=${c.bias} fanInFanOut=${c.fifo} scale=${scale}`;

describe.each(ISAS)('loraLinear on %s', (isa) => {
  onIsa(isa);

  it('forward matches the float64 reference', () => {
    for (const c of FWD) {
      const rng = new Rng();
      const scale = rng.uniform(0.25, 4);
      const xs = inputs(rng, c);
      const ctx = ctxOf('loraLinear', rng, isa, label(c, scale));
      tk.tidy(() => {
        const [x, w, a, b, bias] = xs.map((v) => T(v));
        const y = tk.ops.loraLinear(x!, w!, a!, b!, { scale, bias, fanInFanOut: c.fifo });
        expectTensor(y, loraLinear(xs[0]!, xs[1]!, xs[2]!, xs[3]!, { scale, bias: xs[4], fanInFanOut: c.fifo }), TOL.matmul, ctx);
      });
    }
  });

  it('scale 0 gives the base linear layer; b = 0 (a fresh adapter) too', () => {
    const rng = new Rng();
    const c = FWD[1]!;
    const xs = inputs(rng, c);
    const ctx = ctxOf('loraLinear base', rng, isa);
    tk.tidy(() => {
      const [x, w, a, b, bias] = xs.map((v) => T(v));
      const base = loraLinear(xs[0]!, xs[1]!, xs[2]!, xs[3]!, { scale: 0, bias: xs[4] });
      expectTensor(tk.ops.loraLinear(x!, w!, a!, b!, { scale: 0, bias }), base, TOL.matmul, `${ctx} scale 0`);
      expectTensor(tk.ops.loraLinear(x!, w!, a!, tk.zeros(b!.shape), { scale: 2, bias }), base, TOL.matmul, `${ctx} b = 0`);
    });
  });

  it('gradients of x, w, a, b and bias match finite differences', () => {
    for (const c of GRAD) {
      const rng = new Rng();
      const scale = rng.uniform(0.5, 2);
      const ins = inputs(rng, c);
      checkGrad({
        ctx: ctxOf('loraLinear', rng, isa, label(c, scale)),
        rng,
        inputs: ins,
        ours: ([x, w, a, b, bias]) => tk.ops.loraLinear(x!, w!, a!, b!, { scale, bias, fanInFanOut: c.fifo }),
        ref: ([x, w, a, b, bias]) => loraLinear(x!, w!, a!, b!, { scale, bias, fanInFanOut: c.fifo }),
        fwdTol: TOL.matmul,
      });
    }
  });

  it('a frozen w gets no gradient; x, a, b (and a trainable bias) still match finite differences', () => {
    for (const c of GRAD) {
      const rng = new Rng();
      const scale = rng.uniform(0.5, 2);
      const ins = inputs(rng, c);
      let frozen: tk.Tensor[] = [];
      checkGrad({
        ctx: ctxOf('loraLinear frozen w', rng, isa, label(c, scale)),
        rng,
        inputs: ins,
        wrt: c.bias ? [0, 2, 3, 4] : [0, 2, 3],
        ours: (ts) => {
          const [x, w, a, b, bias] = ts;
          frozen = [w!];
          return tk.ops.loraLinear(x!, w!, a!, b!, { scale, bias, fanInFanOut: c.fifo });
        },
        ref: ([x, w, a, b, bias]) => loraLinear(x!, w!, a!, b!, { scale, bias, fanInFanOut: c.fifo }),
        fwdTol: TOL.matmul,
      });
      for (const t of frozen) {
        expect(t.requiresGrad, ctxOf('loraLinear frozen', rng, isa)).toBe(false);
        expect(t.grad, ctxOf('loraLinear frozen', rng, isa, 'frozen input got a gradient')).toBeNull();
      }
    }
  });

  it('training only the adapter (x and w frozen): a and b get gradients, x and w none', () => {
    const rng = new Rng();
    const c = GRAD[0]!;
    const ins = inputs(rng, c);
    let frozen: tk.Tensor[] = [];
    checkGrad({
      ctx: ctxOf('loraLinear adapter only', rng, isa),
      rng,
      inputs: ins,
      wrt: [2, 3],
      ours: ([x, w, a, b, bias]) => {
        frozen = [x!, w!, bias!];
        return tk.ops.loraLinear(x!, w!, a!, b!, { scale: 2, bias });
      },
      ref: ([x, w, a, b, bias]) => loraLinear(x!, w!, a!, b!, { scale: 2, bias }),
      fwdTol: TOL.matmul,
    });
    for (const t of frozen) expect(t.grad, ctxOf('loraLinear adapter only', rng, isa, 'a frozen input got a gradient')).toBeNull();
  });
});

describe('loraLinear at training size', () => {
  it('forward and all gradients against float64 references on [3, 41, 259] x [131, 259] r=8 (sampled)', () => {
    // too large for finite differences: the backward is checked against the float64
    // closed forms gx = gy·w + s(gy·b)·a, gw = gyᵀ·x, ga = s(gy·b)ᵀ·x, gb = s gyᵀ·(x·aᵀ)
    const rng = new Rng();
    const lead = [3, 41], inF = 259, outF = 131, r = 8, scale = 1.5;
    const x = rng.arr([...lead, inF]), w = rng.arr([outF, inF], 0.1), a = rng.arr([r, inF], 0.1), b = rng.arr([outF, r], 0.1), bias = rng.arr([outF]);
    const ctx = ctxOf('loraLinear large', rng, tk.backend().cpu.isa);
    tk.tidy(() => {
      const ts = [x, w, a, b, bias].map((v) => T(v, true));
      const y = tk.ops.loraLinear(ts[0]!, ts[1]!, ts[2]!, ts[3]!, { scale, bias: ts[4] });
      expectTensor(y, loraLinear(x, w, a, b, { scale, bias }), TOL.matmul, `${ctx} forward`);
      const gy = rng.arr([...y.shape]);
      y.backward(T(gy));
      const N = 3 * 41;
      const X: Arr = { shape: [N, inF], data: x.data }, G: Arr = { shape: [N, outF], data: gy.data };
      const mm = (p: Arr, q: Arr, ta = false, tb = false) => refMatmul(p, q, ta, tb);
      const gb = mm(G, b);  // [N, r]
      const sgb: Arr = { shape: gb.shape, data: gb.data.map((v) => scale * v) };
      const want = {
        x: add(mm(G, w), mm(sgb, a)),
        w: mm(G, X, true),
        a: mm(sgb, X, true),
        b: scaleArr(mm(G, mm(X, a, false, true), true), scale),
        bias: colSum(G),
      };
      expectTensor(ts[0]!.grad!, { shape: [...lead, inF], data: want.x.data }, TOL.matmul, `${ctx} grad x`);
      expectTensor(ts[1]!.grad!, want.w, TOL.matmul, `${ctx} grad w`);
      expectTensor(ts[2]!.grad!, want.a, TOL.matmul, `${ctx} grad a`);
      expectTensor(ts[3]!.grad!, want.b, TOL.matmul, `${ctx} grad b`);
      expectTensor(ts[4]!.grad!, want.bias, TOL.reduction, `${ctx} grad bias`);
    });
  });
});

const add = (p: Arr, q: Arr): Arr => ({ shape: p.shape, data: p.data.map((v, i) => v + q.data[i]!) });
const scaleArr = (p: Arr, s: number): Arr => ({ shape: p.shape, data: p.data.map((v) => s * v) });
function colSum(p: Arr): Arr {
  const [N, C] = p.shape as [number, number];
  const out = new Float64Array(C);
  for (let i = 0; i < N; i++) for (let c = 0; c < C; c++) out[c] += p.data[i * C + c]!;
  return { shape: [C], data: out };
}

it('loraLinear validates its arguments', () => {
  tk.tidy(() => {
    const x = tk.randn([3, 6]), w = tk.randn([4, 6]), a = tk.randn([2, 6]), b = tk.randn([4, 2]);
    expect(() => tk.ops.loraLinear(x, w, a, b, {} as { scale: number })).toThrow(/scale/);
    expect(() => tk.ops.loraLinear(x, tk.randn([4, 5]), a, b, { scale: 1 })).toThrow(RangeError);
    expect(() => tk.ops.loraLinear(x, w, tk.randn([2, 5]), b, { scale: 1 })).toThrow(RangeError);
    expect(() => tk.ops.loraLinear(x, w, a, tk.randn([4, 3]), { scale: 1 })).toThrow(RangeError);
    expect(() => tk.ops.loraLinear(x, w, a, b, { scale: 1, bias: tk.randn([5]) })).toThrow(RangeError);
    expect(() => tk.ops.loraLinear(x, w, a, b, { scale: 1, fanInFanOut: true })).toThrow(RangeError);
  });
});
