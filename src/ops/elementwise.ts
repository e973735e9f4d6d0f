// Elementwise ops: unary math and activations, and broadcasting binary ops.
import type { UnaryName } from '../native/binding.js';
import { asTensor, checkTensor, h, native, record, sumTo, Tensor, wrap } from './util.js';

function unary(op: UnaryName, x: Tensor, p = 0): Tensor {
  checkTensor(op, 'x', x);
  const y = wrap(native.unary_forward(op, h(x), p), x.shape);
  return record(y, op, [x], (g) => [wrap(native.unary_backward(op, h(x), h(y), h(g), p), x.shape)]);
}

export const neg = (x: Tensor): Tensor => unary('neg', x);
export const exp = (x: Tensor): Tensor => unary('exp', x);
export const log = (x: Tensor): Tensor => unary('log', x);
export const sqrt = (x: Tensor): Tensor => unary('sqrt', x);
/** x * s for a number s */
export function scale(x: Tensor, s: number): Tensor {
  if (typeof s !== 'number' || !Number.isFinite(s)) throw new TypeError('scale: s must be a finite number');
  return unary('scale', x, s);
}
/** x ** p for a number p */
export function pow(x: Tensor, p: number): Tensor {
  if (typeof p !== 'number' || !Number.isFinite(p)) throw new TypeError('pow: exponent must be a finite number');
  return unary('pow', x, p);
}
/** GELU with the tanh approximation (as GPT-2) */
export const gelu = (x: Tensor): Tensor => unary('gelu', x);
export const silu = (x: Tensor): Tensor => unary('silu', x);
export const relu = (x: Tensor): Tensor => unary('relu', x);
export const tanh = (x: Tensor): Tensor => unary('tanh', x);
/** exact GELU, x * Phi(x) (BERT's "gelu"; erf to |error| < 1.5e-7) */
export const geluErf = (x: Tensor): Tensor => unary('geluErf', x);

function binary(op: 'add' | 'sub' | 'mul' | 'div', av: Tensor | number, bv: Tensor | number): Tensor {
  const a = asTensor(op, 'a', av, bv);
  const b = asTensor(op, 'b', bv, av);
  const y = wrap(native.binary_forward(op, h(a), h(b)));
  return record(y, op, [a, b], (g, needs) => {
    const bin = (o: 'mul' | 'div', x: Tensor, z: Tensor) => wrap(native.binary_forward(o, h(x), h(z)));
    switch (op) {
      case 'add':
        return [needs[0] ? sumTo(g, a.shape, false) : null, needs[1] ? sumTo(g, b.shape, false) : null];
      case 'sub':
        return [needs[0] ? sumTo(g, a.shape, false) : null, needs[1] ? sumTo(wrap(native.unary_forward('neg', h(g), 0)), b.shape) : null];
      case 'mul':
        return [needs[0] ? sumTo(bin('mul', g, b), a.shape) : null, needs[1] ? sumTo(bin('mul', g, a), b.shape) : null];
      case 'div': {
        // d(a/b)/db = -y/b
        let gb: Tensor | null = null;
        if (needs[1]) {
          const gy = bin('mul', g, y);
          const q = bin('div', gy, b);
          gy.dispose();
          gb = sumTo(wrap(native.unary_forward('neg', h(q), 0)), b.shape);
          q.dispose();
        }
        return [needs[0] ? sumTo(bin('div', g, b), a.shape) : null, gb];
      }
    }
  });
}

export const add = (a: Tensor | number, b: Tensor | number): Tensor => binary('add', a, b);
export const sub = (a: Tensor | number, b: Tensor | number): Tensor => binary('sub', a, b);
export const mul = (a: Tensor | number, b: Tensor | number): Tensor => binary('mul', a, b);
export const div = (a: Tensor | number, b: Tensor | number): Tensor => binary('div', a, b);
