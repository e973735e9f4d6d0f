// INT8 weight quantization and the INT8 linear layer (LLM.int8()-style outliers).
import { matmul } from './matmul.js';
import { reshape } from './shape.js';
import { sum } from './reduce.js';
import { checkTensor, h, native, record, Tensor, wrap } from './util.js';

export interface QuantizeInt8Options {
  /** the axis that gets one scale per index: 0 = per row / output channel (default), 1 = per column */
  axis?: number;
}

/**
 * Symmetric absmax quantization of a 2-d f32 tensor, one scale per row (axis 0) or
 * per column (axis 1): scale = f32(amax / 127) with amax = max |w| over the group, and
 * q = the exact quotient w · 127 / amax rounded half to even (so |q| <= 127, and the
 * group's largest |w| maps to ±127). An all-zero group gets scale 0 and q 0; a group
 * of subnormal values quantizes like any other. Throws on NaN or infinity.
 */
export function quantizeInt8(w: Tensor, opts: QuantizeInt8Options = {}): { q: Tensor; scale: Tensor } {
  checkTensor('quantizeInt8', 'w', w);
  const [q, s] = native.quantize_int8(h(w), opts.axis ?? 0);
  return { q: wrap(q, w.shape), scale: wrap(s) };
}

/** q [R, C] i8 with per-row scale [R] back to f32. */
export function dequantizeInt8(q: Tensor, scale: Tensor): Tensor {
  checkTensor('dequantizeInt8', 'q', q);
  checkTensor('dequantizeInt8', 'scale', scale);
  return wrap(native.dequantize_int8(h(q), h(scale)), q.shape);
}

export interface Int8LinearOptions {
  bias?: Tensor;
  /** LLM.int8(): input columns with any |x| above this run in f32 (0 = off, the default) */
  threshold?: number;
}

/**
 * y ≈ x·(q·scale)ᵀ + bias, x: [..., in] f32, q: [out, in] i8, scale: [out].
 * x is quantized per row by absmax on the fly (x · 127 / amax rounded half to
 * even), int8 products accumulate in int32 (AVX-512 VNNI where the CPU has it)
 * and are dequantized in the epilogue. With threshold > 0, the input columns
 * where any |x| exceeds it stay out of the int8 product and multiply the
 * dequantized weight columns in f32 (LLM.int8()). A row of x holding NaN or
 * infinity gives a NaN row. Differentiable in x (through the dequantized weight)
 * and bias, so adapters can train on an int8 base.
 */
export function int8Linear(x: Tensor, q: Tensor, scale: Tensor, opts: Int8LinearOptions = {}): Tensor {
  checkTensor('int8Linear', 'x', x);
  checkTensor('int8Linear', 'q', q);
  checkTensor('int8Linear', 'scale', scale);
  const bias = opts.bias;
  if (bias !== undefined) checkTensor('int8Linear', 'bias', bias);
  const threshold = opts.threshold ?? 0;
  const y = wrap(native.int8_linear_forward(h(x), h(q), h(scale), bias ? h(bias) : null, threshold));
  const inputs = bias ? [x, bias] : [x];
  return record(y, 'int8Linear', inputs, (g, needs) => {
    let gx: Tensor | null = null;
    if (needs[0]) {
      const w32 = dequantizeInt8(q, scale);
      const w = w32.dtype === g.dtype ? w32 : w32.to(g.dtype);  // bf16 on CUDA: the gradient's dtype
      gx = matmul(g, w);  // [..., out] · [out, in]
      w.dispose();
      if (w !== w32) w32.dispose();
    }
    let gb: Tensor | null = null;
    if (bias && needs[1]) {
      const flat = reshape(g, [-1, g.shape[g.ndim - 1]!]);
      gb = sum(flat, 0);
    }
    return bias ? [gx, gb] : [gx];
  });
}
