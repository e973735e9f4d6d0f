// Optimizers (AdamW, SGD with momentum), learning-rate schedules and gradient
// clipping. Each optimizer step is one fused native pass per parameter over
// parameter, gradient and state (torch.optim semantics).
import { native } from '../native/binding.js';
import { Tensor, wrap } from '../tensor.js';

export type NamedParams = Array<[string, Tensor]>;

function named(params: Tensor[] | NamedParams): NamedParams {
  return params.map((p, i) => (Array.isArray(p) ? p : [`param${i}`, p])) as NamedParams;
}

function zerosLike(t: Tensor): Tensor {
  const h = native.empty('f32', [...t.shape], t.device);
  native.fill(h, 0);
  return wrap(h, t.shape)._keep();
}

/** No weight decay on biases and norm weights: every parameter with fewer than 2 dimensions. */
export function defaultNoDecay(_name: string, t: Tensor): boolean {
  return t.ndim < 2;
}

export interface OptimizerState {
  kind: string;
  step: number;
  hyper: Record<string, number | boolean>;
  /** per-parameter state tensors by `${paramName}.${slot}` */
  tensors: Record<string, Tensor>;
}

export abstract class Optimizer {
  readonly params: NamedParams;
  lr: number;
  stepCount = 0;
  constructor(params: Tensor[] | NamedParams, lr: number) {
    this.params = named(params).filter(([, t]) => t.requiresGrad);
    if (!Number.isFinite(lr) || lr < 0) throw new RangeError(`optimizer: lr must be a non-negative number, got ${lr}`);
    this.lr = lr;
  }
  abstract step(): void;
  /** Drops every gradient (like zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const [, p] of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }
  abstract state(): OptimizerState;
  abstract loadState(s: OptimizerState): void;
}

export interface AdamWOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  /** parameters exempt from weight decay (default: biases and norm weights, i.e. ndim < 2) */
  noDecay?: (name: string, t: Tensor) => boolean;
}

export class AdamW extends Optimizer {
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  private readonly noDecay: (name: string, t: Tensor) => boolean;
  private m = new Map<Tensor, Tensor>();
  private v = new Map<Tensor, Tensor>();
  constructor(params: Tensor[] | NamedParams, opts: AdamWOptions = {}) {
    super(params, opts.lr ?? 1e-3);
    this.betas = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.01;
    this.noDecay = opts.noDecay ?? defaultNoDecay;
  }
  step(): void {
    this.stepCount++;
    for (const [name, p] of this.params) {
      if (!p.grad) continue;
      let m = this.m.get(p), v = this.v.get(p);
      if (!m || !v) {
        m = zerosLike(p);
        v = zerosLike(p);
        this.m.set(p, m);
        this.v.set(p, v);
      }
      // state follows its parameter (Module.to after earlier steps, or state loaded on the CPU)
      if (m.device !== p.device) {
        m._moveTo(p.device);
        v._moveTo(p.device);
      }
      const wd = this.noDecay(name, p) ? 0 : this.weightDecay;
      native.adamw_step(p._handle(), p.grad._handle(), m._handle(), v._handle(), this.lr, this.betas[0], this.betas[1], this.eps, wd, this.stepCount);
    }
  }
  state(): OptimizerState {
    const tensors: Record<string, Tensor> = {};
    for (const [name, p] of this.params) {
      const m = this.m.get(p), v = this.v.get(p);
      if (m && v) {
        tensors[`${name}.exp_avg`] = m;
        tensors[`${name}.exp_avg_sq`] = v;
      }
    }
    return { kind: 'adamw', step: this.stepCount, hyper: { lr: this.lr, beta1: this.betas[0], beta2: this.betas[1], eps: this.eps, weightDecay: this.weightDecay }, tensors };
  }
  loadState(s: OptimizerState): void {
    if (s.kind !== 'adamw') throw new Error(`AdamW.loadState: state is for '${s.kind}'`);
    this.stepCount = s.step;
    for (const [name, p] of this.params) {
      const m = s.tensors[`${name}.exp_avg`], v = s.tensors[`${name}.exp_avg_sq`];
      if (!m || !v) continue;
      if (m.numel !== p.numel || v.numel !== p.numel) throw new RangeError(`AdamW.loadState: state of '${name}' does not match its shape [${p.shape}]`);
      this.m.get(p)?.dispose();
      this.v.get(p)?.dispose();
      this.m.set(p, m._keep());
      this.v.set(p, v._keep());
    }
  }
}

export interface SGDOptions {
  lr?: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
  noDecay?: (name: string, t: Tensor) => boolean;
}

export class SGD extends Optimizer {
  readonly momentum: number;
  readonly dampening: number;
  readonly weightDecay: number;
  readonly nesterov: boolean;
  private readonly noDecay: (name: string, t: Tensor) => boolean;
  private buf = new Map<Tensor, Tensor>();
  constructor(params: Tensor[] | NamedParams, opts: SGDOptions = {}) {
    super(params, opts.lr ?? 1e-2);
    this.momentum = opts.momentum ?? 0;
    this.dampening = opts.dampening ?? 0;
    this.weightDecay = opts.weightDecay ?? 0;
    this.nesterov = opts.nesterov ?? false;
    this.noDecay = opts.noDecay ?? (() => false);
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0)) throw new RangeError('SGD: nesterov needs momentum > 0 and dampening 0');
  }
  step(): void {
    this.stepCount++;
    for (const [name, p] of this.params) {
      if (!p.grad) continue;
      let b = this.buf.get(p);
      const first = !b;
      if (!b) {
        b = zerosLike(p);
        this.buf.set(p, b);
      }
      if (b.device !== p.device) b._moveTo(p.device);
      const wd = this.noDecay(name, p) ? 0 : this.weightDecay;
      native.sgd_step(p._handle(), p.grad._handle(), b._handle(), this.lr, this.momentum, this.dampening, wd, this.nesterov, first);
    }
  }
  state(): OptimizerState {
    const tensors: Record<string, Tensor> = {};
    for (const [name, p] of this.params) {
      const b = this.buf.get(p);
      if (b) tensors[`${name}.momentum_buffer`] = b;
    }
    return { kind: 'sgd', step: this.stepCount, hyper: { lr: this.lr, momentum: this.momentum, dampening: this.dampening, weightDecay: this.weightDecay, nesterov: this.nesterov }, tensors };
  }
  loadState(s: OptimizerState): void {
    if (s.kind !== 'sgd') throw new Error(`SGD.loadState: state is for '${s.kind}'`);
    this.stepCount = s.step;
    for (const [name, p] of this.params) {
      const b = s.tensors[`${name}.momentum_buffer`];
      if (!b) continue;
      if (b.numel !== p.numel) throw new RangeError(`SGD.loadState: state of '${name}' does not match its shape [${p.shape}]`);
      this.buf.get(p)?.dispose();
      this.buf.set(p, b._keep());
    }
  }
}

// ---------------------------------------------------------------- schedules
export type ScheduleKind = 'constant' | 'linear' | 'cosine';

export interface ScheduleOptions {
  kind: ScheduleKind;
  warmupSteps?: number;
  totalSteps: number;
  /** floor of the decay as a fraction of the peak lr (default 0) */
  minRatio?: number;
}

/**
 * The lr multiplier at `step` (0-based), as transformers' schedules: linear
 * warmup from 0 over warmupSteps, then constant, linear decay to minRatio, or
 * half a cosine down to minRatio at totalSteps.
 */
export function lrMultiplier(step: number, o: ScheduleOptions): number {
  const warm = o.warmupSteps ?? 0;
  const min = o.minRatio ?? 0;
  if (step < warm) return (step + 1) / warm;
  if (o.kind === 'constant') return 1;
  const span = Math.max(1, o.totalSteps - warm);
  const progress = Math.min(1, (step - warm) / span);
  if (o.kind === 'linear') return min + (1 - min) * (1 - progress);
  if (o.kind === 'cosine') return min + (1 - min) * 0.5 * (1 + Math.cos(Math.PI * progress));
  throw new RangeError(`unknown schedule '${String(o.kind)}' (constant, linear or cosine)`);
}

// ---------------------------------------------------------------- clipping
/** The global L2 norm of the gradients. */
export function gradNorm(params: Tensor[]): number {
  let ss = 0;
  for (const p of params) if (p.grad) ss += native.sum_squares(p.grad._handle());
  return Math.sqrt(ss);
}

/** Scales every gradient so that the global norm is at most maxNorm (torch's clip_grad_norm_); returns the norm before clipping. */
export function clipGradNorm(params: Tensor[], maxNorm: number): number {
  const norm = gradNorm(params);
  const coef = maxNorm / (norm + 1e-6);
  if (coef < 1) for (const p of params) if (p.grad) native.scale_(p.grad._handle(), coef);
  return norm;
}
