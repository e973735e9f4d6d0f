// Parameter initialization mode. Loading a checkpoint builds the module tree
// with uninitialized storage (no random fill), then copies weights in.
import { native } from '../native/binding.js';
import { randn, Tensor, wrap, zeros, ones } from '../tensor.js';
import * as ops from '../ops/index.js';

let mode: 'random' | 'empty' = 'random';

export function withEmptyInit<R>(fn: () => R): R {
  const prev = mode;
  mode = 'empty';
  try {
    return fn();
  } finally {
    mode = prev;
  }
}

/**
 * While a checkpoint loads, parameters are placeholders: the right shape on the
 * TypeScript side over zero bytes of storage (every one is replaced by the
 * loaded tensor, or loading fails), so the model is never allocated twice.
 */
function placeholder(shape: number[]): Tensor {
  return param(wrap(native.empty('f32', [0]), shape));
}

function param(t: Tensor): Tensor {
  t.requiresGrad = true;
  return t;
}

/** N(0, std²) (or uninitialized while loading) */
export function normalParam(shape: number[], std: number, seed?: number): Tensor {
  if (mode === 'empty') return placeholder(shape);
  const r = randn(shape, { seed });
  const t = ops.scale(r, std);
  r.dispose();
  return param(t);
}

export function zerosParam(shape: number[]): Tensor {
  if (mode === 'empty') return placeholder(shape);
  return zeros(shape, { requiresGrad: true });
}

export function onesParam(shape: number[]): Tensor {
  if (mode === 'empty') return placeholder(shape);
  return ones(shape, { requiresGrad: true });
}
