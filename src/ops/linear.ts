// The linear layer as one op: the product, the bias and an optional GELU.
import { gelu, add } from './elementwise.js';
import { matmul } from './matmul.js';
import { layerNorm } from './nn.js';
import { checkTensor, h, native, record, Tensor, wrap } from './util.js';
import type { NativeTensor } from './util.js';

export interface LinearOptions {
  /** weight stored [in, out] (GPT-2's Conv1D) instead of [out, in] */
  fanInFanOut?: boolean;
  /** applied to the result: 'gelu' is the tanh approximation (as tk.ops.gelu) */
  activation?: 'gelu' | null;
  /** [..., out]: added to the result (a residual connection: residual + x·Wᵀ + bias); not with an activation */
  residual?: Tensor | null;
  /**
   * applied to x first: 'gelu' computes gelu(x)·Wᵀ + bias (the MLP's second layer from the
   * first layer's pre-activation; on the CPU gelu(x) is never stored)
   */
  inputActivation?: 'gelu' | null;
  /**
   * a layer norm of x first (over its last axis): layerNorm(x)·Wᵀ + bias, the same values
   * as tk.ops.layerNorm then linear; on the CPU the normalized input is never stored (the
   * product normalizes x as it reads it). Not with inputActivation.
   */
  inputNorm?: { weight: Tensor; bias?: Tensor | null; eps?: number } | null;
}

/**
 * y = act(x'·Wᵀ + bias), or residual + (x'·Wᵀ + bias), x' = inputActivation(x) or x;
 * x: [..., in], weight [out, in]
 * ([in, out] with fanInFanOut), bias [out] or null. The same values as matmul, add and
 * gelu composed; on the CPU one GEMM writes the result with the bias, the residual or
 * the GELU applied in its epilogue, over all rows of x at once, and the backward is one
 * native call (the bias gradient and GELU's derivative in one pass, then the two
 * products). Differentiable in x, weight, bias and residual; a frozen weight's gradient
 * is never computed.
 */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null, opts: LinearOptions = {}): Tensor {
  checkTensor('linear', 'x', x);
  checkTensor('linear', 'weight', weight);
  if (bias !== null && bias !== undefined) checkTensor('linear', 'bias', bias);
  const fifo = opts?.fanInFanOut ?? false;
  const act = opts?.activation ?? null;
  if (act !== null && act !== 'gelu') throw new TypeError(`linear: unknown activation '${String(act)}' (supported: 'gelu')`);
  const inAct = opts?.inputActivation ?? null;
  if (inAct !== null && inAct !== 'gelu') throw new TypeError(`linear: unknown inputActivation '${String(inAct)}' (supported: 'gelu')`);
  const norm = opts?.inputNorm ?? null;
  const lnW = norm ? checkTensor('linear', 'inputNorm.weight', norm.weight) : null;
  const lnB = norm?.bias ? checkTensor('linear', 'inputNorm.bias', norm.bias) : null;
  const eps = norm?.eps ?? 1e-5;
  if (norm && inAct) throw new TypeError('linear: inputNorm and inputActivation cannot be combined');
  const b = bias ?? null;
  const res = opts?.residual ?? null;
  if (res !== null) {
    checkTensor('linear', 'residual', res);
    if (act) throw new TypeError('linear: residual and activation cannot be combined');
  }
  if (x.device !== 'cpu') {
    // CUDA: the composition (autocast and bf16 as matmul)
    const xin = lnW ? layerNorm(x, lnW, lnB, { eps }) : inAct ? gelu(x) : x;
    let y = matmul(xin, weight, { transB: !fifo });
    if (b) y = add(y, b);
    if (res) y = add(res, y);
    return act ? gelu(y) : y;
  }
  const [y, pre, mean, rstd] = native.linear_forward(
    h(x), h(weight), b ? h(b) : null, res ? h(res) : null, !fifo, act === 'gelu', inAct === 'gelu',
    lnW ? h(lnW) : null, lnB ? h(lnB) : null, eps,
  );
  const saved = [pre, mean, rstd].filter((t): t is NativeTensor => t !== null);
  // inputs: x, weight, then bias, residual, inputNorm's weight and bias where given
  const inputs = [x, weight];
  const at = (t: Tensor | null) => (t ? inputs.push(t) - 1 : -1);
  const ib = at(b), ires = at(res), ilw = at(lnW), ilb = at(lnB);
  const out = record(wrap(y), 'linear', inputs, (g, needs) => {
    const need = (i: number) => i >= 0 && needs[i]!;
    const [gx, gw, gb, glw, glb] = native.linear_backward(
      h(x), h(weight), h(g), pre, !fifo, needs[0]!, needs[1]!, need(ib), inAct === 'gelu',
      lnW ? h(lnW) : null, lnB ? h(lnB) : null, mean, rstd, need(ilw), need(ilb),
    );
    for (const t of saved) t.dispose();
    const grads: Array<Tensor | null> = new Array(inputs.length).fill(null);
    grads[0] = gx ? wrap(gx, x.shape) : null;
    grads[1] = gw ? wrap(gw, weight.shape) : null;
    if (ib >= 0) grads[ib] = gb ? wrap(gb, b!.shape) : null;
    // the residual's gradient is the output's, handed on as it is
    if (ires >= 0) grads[ires] = needs[ires] ? g : null;
    if (ilw >= 0) grads[ilw] = glw ? wrap(glw, lnW!.shape) : null;
    if (ilb >= 0) grads[ilb] = glb ? wrap(glb, lnB!.shape) : null;
    return grads;
  });
  if (!out._node) for (const t of saved) t.dispose();
  return out;
}
