// Basic layers over tk.ops. Weight layouts follow Hugging Face: Linear.weight
// is [out, in]; GPT-2's Conv1D keeps [in, out] (fanInFanOut).
import * as ops from '../ops/index.js';
import type { Tensor } from '../tensor.js';
import { normalParam, onesParam, zerosParam } from './init.js';
import { Module } from './module.js';

export interface LinearOptions {
  bias?: boolean;
  /** weight stored [in, out] (GPT-2 Conv1D) instead of [out, in] */
  fanInFanOut?: boolean;
  seed?: number;
  std?: number;
}

/** y = x · Wᵀ + b ; x: [..., in] -> [..., out] */
export class Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly fanInFanOut: boolean;

  constructor(inFeatures: number, outFeatures: number, opts: LinearOptions = {}) {
    super();
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    this.fanInFanOut = opts.fanInFanOut ?? false;
    const std = opts.std ?? 0.02;
    const shape = this.fanInFanOut ? [inFeatures, outFeatures] : [outFeatures, inFeatures];
    this.registerParameter('weight', normalParam(shape, std, opts.seed));
    this.registerParameter('bias', opts.bias === false ? null : zerosParam([outFeatures]));
  }

  get weight(): Tensor {
    return this.params.weight!;
  }
  get bias(): Tensor | null {
    return this.params.bias ?? null;
  }

  forward(x: Tensor): Tensor {
    return ops.linear(x, this.weight, this.bias, { fanInFanOut: this.fanInFanOut });
  }

  /** residual + forward(x), the addition fused on the CPU */
  forwardResidual(x: Tensor, residual: Tensor): Tensor {
    return ops.linear(x, this.weight, this.bias, { fanInFanOut: this.fanInFanOut, residual });
  }

  /** forward(norm(x)) for a LayerNorm `norm`, fused on the CPU: the normalized x is never stored */
  forwardNormed(x: Tensor, norm: LayerNorm): Tensor {
    const p = norm.params;
    return ops.linear(x, this.weight, this.bias, { fanInFanOut: this.fanInFanOut, inputNorm: { weight: p.weight!, bias: p.bias ?? null, eps: norm.eps } });
  }

  /** [residual +] forward(gelu(x)) (tanh GELU), fused on the CPU: gelu(x) is never stored */
  forwardGeluInput(x: Tensor, residual?: Tensor): Tensor {
    return ops.linear(x, this.weight, this.bias, { fanInFanOut: this.fanInFanOut, residual, inputActivation: 'gelu' });
  }

  /** forward followed by GELU (tanh approximation), fused on the CPU */
  forwardGelu(x: Tensor): Tensor {
    return ops.linear(x, this.weight, this.bias, { fanInFanOut: this.fanInFanOut, activation: 'gelu' });
  }
}

export class Embedding extends Module {
  constructor(num: number, dim: number, opts: { seed?: number; std?: number } = {}) {
    super();
    this.registerParameter('weight', normalParam([num, dim], opts.std ?? 0.02, opts.seed));
  }
  get weight(): Tensor {
    return this.params.weight!;
  }
  forward(ids: Tensor): Tensor {
    return ops.embedding(this.weight, ids);
  }
}

export class LayerNorm extends Module {
  constructor(readonly dim: number, readonly eps = 1e-5) {
    super();
    this.registerParameter('weight', onesParam([dim]));
    this.registerParameter('bias', zerosParam([dim]));
  }
  forward(x: Tensor): Tensor {
    return ops.layerNorm(x, this.params.weight!, this.params.bias ?? null, { eps: this.eps });
  }
}

export class RMSNorm extends Module {
  constructor(readonly dim: number, readonly eps = 1e-6) {
    super();
    this.registerParameter('weight', onesParam([dim]));
  }
  forward(x: Tensor): Tensor {
    return ops.rmsNorm(x, this.params.weight!, { eps: this.eps });
  }
}
