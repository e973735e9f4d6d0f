// Fused low-rank (LoRA) linear layer.
import { checkTensor, h, native, record, Tensor, wrap } from './util.js';

export interface LoraLinearOptions {
  scale: number;
  bias?: Tensor;
  /** w is stored [in, out] (GPT-2's Conv1D, PEFT's fan_in_fan_out) */
  fanInFanOut?: boolean;
}

/**
 * y = x·wᵀ + scale·(x·aᵀ)·bᵀ + bias
 * x: [..., in], w: [out, in] ([in, out] with fanInFanOut), a: [r, in], b: [out, r], bias: [out].
 * The low-rank term runs as a second K segment of the base GEMM (one pass
 * writes y). Differentiable in x, a, b, and in w and bias when they require
 * grad; a frozen w's gradient is never computed or allocated.
 */
export function loraLinear(x: Tensor, w: Tensor, a: Tensor, b: Tensor, opts: LoraLinearOptions): Tensor {
  checkTensor('loraLinear', 'x', x);
  checkTensor('loraLinear', 'w', w);
  checkTensor('loraLinear', 'a', a);
  checkTensor('loraLinear', 'b', b);
  if (!opts || typeof opts.scale !== 'number') throw new TypeError('loraLinear: opts.scale is required');
  const bias = opts.bias;
  if (bias !== undefined) checkTensor('loraLinear', 'bias', bias);
  const fifo = opts.fanInFanOut ?? false;
  const [y, xa] = native.lora_forward(h(x), h(w), h(a), h(b), opts.scale, bias ? h(bias) : null, fifo);
  const inputs = bias ? [x, w, a, b, bias] : [x, w, a, b];
  const out = record(wrap(y), 'loraLinear', inputs, (g, needs) => {
    const [gx, gw, ga, gb, gbias] = native.lora_backward(
      h(x), h(w), h(a), h(b), opts.scale, xa, h(g),
      needs[0]!, needs[1]!, needs[2]!, needs[3]!, !!bias && needs[4]!, fifo,
    );
    xa.dispose();
    const r = [gx, gw, ga, gb].map((t, i) => (t ? wrap(t, inputs[i]!.shape) : null));
    if (bias) r.push(gbias ? wrap(gbias, bias.shape) : null);
    return r;
  });
  if (!out._node) xa.dispose();
  return out;
}
