// tk.ops.linear: the product with its bias, residual, output GELU, input GELU and input
// layer norm fused, against the float64 composition (matmul, add, gelu, layerNorm) on
// every ISA: both weight layouts, leading batch dimensions, few rows (the GEMV path),
// K past one cache block, and the gradients of every input by central differences.
import { describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import * as ref from '../reference.js';
import type { Arr } from '../reference.js';
import { checkGrad, ctxOf, expectTensor, ISAS, onIsa, Rng, T, TOL } from '../helpers.js';

interface Variant {
  name: string;
  bias?: boolean;
  residual?: boolean;
  activation?: boolean;
  inputActivation?: boolean;
  inputNorm?: 'bias' | 'nobias';
}

const VARIANTS: Variant[] = [
  { name: 'plain' },
  { name: 'bias', bias: true },
  { name: 'bias + residual', bias: true, residual: true },
  { name: 'bias, gelu', bias: true, activation: true },
  { name: 'gelu input, bias, residual', bias: true, inputActivation: true, residual: true },
  { name: 'layer-normed input, bias', bias: true, inputNorm: 'bias' },
  { name: 'layer-normed input (no norm bias), gelu', inputNorm: 'nobias', activation: true },
  { name: 'layer-normed input, residual', inputNorm: 'bias', residual: true },
];

/** inputs: x, w, then bias, residual, norm weight, norm bias where the variant has them */
function makeInputs(rng: Rng, v: Variant, lead: number[], inF: number, outF: number, fifo: boolean): Arr[] {
  const xs: Arr[] = [rng.arr([...lead, inF]), rng.arr(fifo ? [inF, outF] : [outF, inF], 1 / Math.sqrt(inF))];
  if (v.bias) xs.push(rng.arr([outF]));
  if (v.residual) xs.push(rng.arr([...lead, outF]));
  if (v.inputNorm) {
    xs.push({ shape: [inF], data: rng.rand(inF, 0.5, 1.5) });
    if (v.inputNorm === 'bias') xs.push(rng.arr([inF], 0.5));
  }
  return xs;
}

function reference(v: Variant, xs: Arr[], fifo: boolean): Arr {
  let i = 2;
  const b = v.bias ? xs[i++]! : null;
  const r = v.residual ? xs[i++]! : null;
  const lw = v.inputNorm ? xs[i++]! : null;
  const lb = v.inputNorm === 'bias' ? xs[i++]! : null;
  const x = xs[0]!, w = xs[1]!;
  const inF = x.shape[x.shape.length - 1]!;
  let xin = x;
  if (lw) xin = ref.layerNorm(x, lw, lb, 1e-5);
  if (v.inputActivation) xin = ref.map(xin, ref.gelu);
  const rows = xin.data.length / inF;
  let y = ref.matmul({ shape: [rows, inF], data: xin.data }, w, false, !fifo);
  y = { shape: [...x.shape.slice(0, -1), y.shape[1]!], data: y.data };
  if (b) y = ref.binary('add', y, b);
  if (r) y = ref.binary('add', r, y);
  if (v.activation) y = ref.map(y, ref.gelu);
  return y;
}

function ours(v: Variant, ts: tk.Tensor[], fifo: boolean): tk.Tensor {
  let i = 2;
  const bias = v.bias ? ts[i++]! : null;
  const residual = v.residual ? ts[i++]! : null;
  const lw = v.inputNorm ? ts[i++]! : null;
  const lb = v.inputNorm === 'bias' ? ts[i++]! : null;
  return tk.ops.linear(ts[0]!, ts[1]!, bias, {
    fanInFanOut: fifo,
    residual,
    activation: v.activation ? 'gelu' : null,
    inputActivation: v.inputActivation ? 'gelu' : null,
    inputNorm: lw ? { weight: lw, bias: lb } : null,
  });
}

describe.each(ISAS)('linear on %s', (isa) => {
  onIsa(isa);

  // [leading dims, in, out]: few rows (the GEMV path), edge tiles, K past one block (256), batch
  // dims, and rows enough for both threaded splits of the product (rows, or columns when the
  // rows do not divide into whole register panels per thread)
  const SIZES: Array<[number[], number, number]> = [
    [[3], 7, 5],
    [[2, 13], 33, 40],
    [[67], 300, 33],
    [[2, 3, 5], 16, 64],
    [[256], 64, 512],
    [[4, 130], 96, 260],
  ];

  describe.each(VARIANTS)('$name', (v) => {
    it.each([false, true])('forward matches the float64 composition (fanInFanOut %s)', (fifo) => {
      for (const [lead, inF, outF] of SIZES) {
        const rng = new Rng();
        const xs = makeInputs(rng, v, lead, inF, outF, fifo);
        const ctx = ctxOf('linear', rng, isa, `${v.name} lead=[${lead}] in=${inF} out=${outF} fifo=${fifo}`);
        tk.tidy(() => expectTensor(ours(v, xs.map((a) => T(a)), fifo), reference(v, xs, fifo), TOL.matmul, ctx));
      }
    });

    it.each([false, true])('gradients of every input match finite differences (fanInFanOut %s)', (fifo) => {
      for (const [lead, inF, outF] of [[[5], 7, 6], [[2, 3], 13, 5]] as Array<[number[], number, number]>) {
        const rng = new Rng();
        checkGrad({
          ctx: ctxOf('linear', rng, isa, `${v.name} lead=[${lead}] in=${inF} out=${outF} fifo=${fifo}`),
          rng,
          inputs: makeInputs(rng, v, lead, inF, outF, fifo),
          ours: (ts) => ours(v, ts, fifo),
          ref: (xs) => reference(v, xs, fifo),
          fwdTol: TOL.matmul,
        });
      }
    });
  });

  it('a frozen weight gets no gradient, the others do', () => {
    const rng = new Rng();
    const v: Variant = { name: 'frozen', bias: true, inputNorm: 'bias' };
    const xs = makeInputs(rng, v, [4], 9, 6, true);
    checkGrad({
      ctx: ctxOf('linear', rng, isa, 'frozen weight'),
      rng,
      inputs: xs,
      wrt: [0, 2, 3, 4],
      ours: (ts) => ours(v, ts, true),
      ref: (ys) => reference(v, ys, true),
      fwdTol: TOL.matmul,
    });
  });

  it('rejects bad shapes and combinations', () => {
    tk.tidy(() => {
      expect(() => tk.ops.linear(tk.ones([2, 3]), tk.ones([4, 5]))).toThrow(/linear/);
      expect(() => tk.ops.linear(tk.ones([2, 3]), tk.ones([4, 3]), tk.ones([5]))).toThrow(/bias/);
      expect(() => tk.ops.linear(tk.ones([2, 3]), tk.ones([4, 3]), null, { residual: tk.ones([2, 5]) })).toThrow(/residual/);
      expect(() => tk.ops.linear(tk.ones([2, 3]), tk.ones([4, 3]), null, { residual: tk.ones([2, 4]), activation: 'gelu' })).toThrow(/residual/);
      expect(() => tk.ops.linear(tk.ones([2, 3]), tk.ones([4, 3]), null, { inputNorm: { weight: tk.ones([4]) } })).toThrow(/lnW/);
    });
  });
});
