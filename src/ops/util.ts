// Helpers shared by the op modules.
import { record } from '../autograd.js';
import { native, type NativeTensor } from '../native/binding.js';
import { Tensor, wrap } from '../tensor.js';

export { record, native, wrap, Tensor };
export type { NativeTensor };

export function h(t: Tensor): NativeTensor {
  return t._handle();
}

export function checkTensor(op: string, name: string, t: unknown): Tensor {
  if (!(t instanceof Tensor)) throw new TypeError(`${op}: argument '${name}' must be a Tensor`);
  if (t.disposed) throw new TypeError(`${op}: argument '${name}' is a disposed tensor`);
  return t;
}

/** A number becomes a 0-d tensor on the device and of the float dtype of `like` (f32 without one). */
export function asTensor(op: string, name: string, v: Tensor | number, like?: Tensor | number): Tensor {
  if (typeof v === 'number') return wrap(scalarHandle(v, like instanceof Tensor ? like : undefined), []);
  return checkTensor(op, name, v);
}

/** A 0-d native tensor holding v, on like's device and of its float dtype (f32 on the CPU without one). */
export function scalarHandle(v: number, like?: Tensor, forceDtype?: 'f32'): NativeTensor {
  const device = like && !like.disposed ? like.device : 'cpu';
  const dtype = !forceDtype && like && like.dtype === 'bf16' && device === 'cuda' ? 'bf16' : 'f32';
  if (device === 'cpu') return native.fromArray([v], [], dtype);
  const t = native.empty(dtype, [], device);
  native.fill(t, v);
  return t;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * Sums a broadcast gradient back to `shape`. With owned = true, g is an
 * intermediate that this call may dispose; the incoming gradient is passed
 * with owned = false and is never disposed here.
 */
export function sumTo(g: Tensor, shape: readonly number[], owned = true): Tensor {
  if (sameShape(g.shape, shape)) return g;
  const r = wrap(native.sum_to(h(g), [...shape]), shape);
  if (owned) g.dispose();
  return r;
}

export function normAxis(op: string, axis: number, rank: number): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank)
    throw new RangeError(`${op}: axis ${axis} is out of range for a tensor of rank ${rank}`);
  return axis < 0 ? axis + rank : axis;
}
