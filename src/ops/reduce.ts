// Reductions over one axis, several axes or all elements: sum, mean, max.
import { checkTensor, h, native, normAxis, record, Tensor, wrap } from './util.js';
import { reshape } from './shape.js';

export type Axis = number | readonly number[] | undefined;
export interface ReduceOptions {
  axis?: Axis;
  keepDims?: boolean;
}

function reduceOne(op: 'sum' | 'mean' | 'max', x: Tensor, axis: number): Tensor {
  const s = x.shape.filter((_, i) => i !== axis);
  if (op === 'max') {
    const [y, idx] = native.reduce_forward('max', h(x), axis).map((t) => wrap(t, s)) as [Tensor, Tensor];
    const out = record(y, 'max', [x], (g) => [wrap(native.max_backward(h(g), h(idx), [...x.shape], axis), x.shape)]);
    if (!out._node) idx.dispose();
    return out;
  }
  const y = wrap(native.reduce_forward(op, h(x), axis), s);
  return record(y, op, [x], (g) => {
    const kept = x.shape.map((d, i) => (i === axis ? 1 : d));
    const g1 = native.reshape(h(g), kept);
    let gx = native.expand(g1, [...x.shape]);
    g1.dispose();
    if (op === 'mean') {
      const n = x.shape[axis]!;
      const scaled = native.unary_forward('scale', gx, 1 / n);
      gx.dispose();
      gx = scaled;
    }
    return [wrap(gx, x.shape)];
  });
}

function reduce(op: 'sum' | 'mean' | 'max', x: Tensor, axisOrOpts?: Axis | ReduceOptions, keepDimsArg?: boolean): Tensor {
  checkTensor(op, 'x', x);
  let axis: Axis;
  let keepDims = keepDimsArg ?? false;
  if (axisOrOpts !== null && typeof axisOrOpts === 'object' && !Array.isArray(axisOrOpts)) {
    const o = axisOrOpts as ReduceOptions;
    axis = o.axis;
    keepDims = o.keepDims ?? false;
  } else {
    axis = axisOrOpts as Axis;
  }
  const rank = x.ndim;
  let axes: number[];
  if (axis === undefined) axes = x.shape.map((_, i) => i);
  else if (typeof axis === 'number') axes = [normAxis(op, axis, rank)];
  else axes = [...new Set((axis as number[]).map((a) => normAxis(op, a, rank)))];
  const keptShape = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  let y: Tensor;
  if (axes.length === 0) {
    y = reshape(x, [...x.shape]);
  } else if (axes.length === rank && rank > 0) {
    // everything: flatten and reduce once
    const flat = reshape(x, [x.numel]);
    y = reduceOne(op, flat, 0);
  } else if (rank === 0) {
    y = reshape(x, []);
  } else {
    y = x;
    for (const a of [...axes].sort((p, q) => q - p)) y = reduceOne(op, y, a);
  }
  if (keepDims) y = reshape(y, keptShape);
  return y;
}

/** Sum over axis (a number, a list, or all when omitted). */
export const sum = (x: Tensor, axis?: Axis | ReduceOptions, keepDims?: boolean): Tensor => reduce('sum', x, axis, keepDims);
export const mean = (x: Tensor, axis?: Axis | ReduceOptions, keepDims?: boolean): Tensor => reduce('mean', x, axis, keepDims);
/** Maximum values (NaN propagates); the gradient flows to the first maximal element. */
export const max = (x: Tensor, axis?: Axis | ReduceOptions, keepDims?: boolean): Tensor => reduce('max', x, axis, keepDims);
