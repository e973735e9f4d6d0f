// Shape and data-movement ops: reshape, transpose, permute, concat, slice,
// where, maskedFill. They work on every dtype except where and maskedFill (f32).
import { asTensor, checkTensor, h, native, normAxis, record, sameShape, scalarHandle, sumTo, Tensor, wrap } from './util.js';

/** A view with a new shape (one -1 entry is inferred). Shares storage. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  checkTensor('reshape', 'x', x);
  if (!Array.isArray(shape)) throw new TypeError('reshape: shape must be an array');
  const s = [...shape];
  const inferred = s.filter((d) => d === -1).length;
  if (inferred > 1) throw new RangeError('reshape: only one dimension can be -1');
  if (inferred === 1) {
    const known = s.reduce((p, d) => (d === -1 ? p : p * d), 1);
    if (known === 0 || x.numel % known !== 0)
      throw new RangeError(`reshape: cannot reshape [${x.shape}] to [${shape}]`);
    s[s.indexOf(-1)] = x.numel / known;
  }
  const y = wrap(native.reshape(h(x), s), s);
  return record(y, 'reshape', [x], (g) => [wrap(native.reshape(h(g), [...x.shape]), x.shape)]);
}

export function permute(x: Tensor, dims: readonly number[]): Tensor {
  checkTensor('permute', 'x', x);
  if (!Array.isArray(dims)) throw new TypeError('permute: dims must be an array of axes');
  const d = dims.map((a) => normAxis('permute', a, x.ndim));
  const y = wrap(native.permute_forward(h(x), d));
  const inverse = new Array<number>(d.length);
  d.forEach((a, i) => (inverse[a] = i));
  return record(y, 'permute', [x], (g) => [wrap(native.permute_forward(h(g), inverse), x.shape)]);
}

/** Swaps two axes (the last two by default). */
export function transpose(x: Tensor, dim0 = -2, dim1 = -1): Tensor {
  checkTensor('transpose', 'x', x);
  const a = normAxis('transpose', dim0, x.ndim), b = normAxis('transpose', dim1, x.ndim);
  const dims = x.shape.map((_, i) => i);
  dims[a] = b;
  dims[b] = a;
  return permute(x, dims);
}

export function concat(xs: readonly Tensor[], axis = 0): Tensor {
  if (!Array.isArray(xs) || xs.length === 0) throw new TypeError('concat: expects a non-empty array of tensors');
  xs.forEach((t, i) => checkTensor('concat', `tensors[${i}]`, t));
  const ax = normAxis('concat', axis, xs[0]!.ndim);
  const y = wrap(native.concat_forward(xs.map(h), ax));
  return record(y, 'concat', [...xs], (g, needs) => {
    let start = 0;
    return xs.map((t, i) => {
      const len = t.shape[ax] ?? 0;
      const r = needs[i] ? wrap(native.slice_forward(h(g), ax, start, start + len), t.shape) : null;
      start += len;
      return r;
    });
  });
}

/** x[..., start:end, ...] along `axis`; negative start/end count from the end, end defaults to the length. */
export function slice(x: Tensor, axis: number, start: number, end?: number): Tensor {
  checkTensor('slice', 'x', x);
  const ax = normAxis('slice', axis, x.ndim);
  const len = x.shape[ax]!;
  const norm = (v: number, name: string) => {
    if (!Number.isInteger(v)) throw new RangeError(`slice: ${name} must be an integer`);
    const r = v < 0 ? v + len : v;
    return Math.min(Math.max(r, 0), len);
  };
  const s = norm(start, 'start');
  const e = Math.max(s, end === undefined ? len : norm(end, 'end'));
  const y = wrap(native.slice_forward(h(x), ax, s, e));
  return record(y, 'slice', [x], (g) => [wrap(native.slice_backward(h(g), [...x.shape], ax, s), x.shape)]);
}

/** cond ? a : b elementwise, broadcasting all three; cond is f32, i32 or i8 (nonzero = true). */
export function where(cond: Tensor, a: Tensor | number, b: Tensor | number): Tensor {
  checkTensor('where', 'cond', cond);
  const ta = asTensor('where', 'a', a, b ?? cond), tb = asTensor('where', 'b', b, a ?? cond);
  const y = wrap(native.where_forward(h(cond), h(ta), h(tb)));
  return record(y, 'where', [ta, tb], (g, needs) => {
    const zero = scalarHandle(0, g);
    const ga = needs[0] ? sumTo(wrap(native.where_forward(h(cond), h(g), zero)), ta.shape) : null;
    const gb = needs[1] ? sumTo(wrap(native.where_forward(h(cond), zero, h(g))), tb.shape) : null;
    zero.dispose();
    return [ga, gb];
  });
}

/** x with `value` wherever mask (broadcast to x) is nonzero. */
export function maskedFill(x: Tensor, mask: Tensor, value: number): Tensor {
  checkTensor('maskedFill', 'x', x);
  checkTensor('maskedFill', 'mask', mask);
  if (typeof value !== 'number') throw new TypeError('maskedFill: value must be a number');
  const y = wrap(native.masked_fill_forward(h(x), h(mask), value), x.shape);
  return record(y, 'maskedFill', [x], (g) => [wrap(native.masked_fill_forward(h(g), h(mask), 0), x.shape)]);
}

export { sameShape };
