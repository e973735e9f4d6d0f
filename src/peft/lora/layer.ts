// The LoRA layer: wraps a Linear (GPT-2 Conv1D included) and adds, per adapter,
//   y = base(x) + scale · dropout(x) · Aᵀ · Bᵀ        A: [r, in], B: [out, r]
// Its module tree is PEFT's lora.Linear: base_layer (the original Linear),
// lora_A.<adapter> and lora_B.<adapter> (each a bias-free linear with a
// `weight`), so parameter names read "...c_attn.lora_A.default.weight" and
// "...c_attn.base_layer.weight" as in PEFT.
//
// Forward: one active adapter without dropout in force runs the fused op
// (tk.ops.loraLinear: the low-rank term is a second K segment of the base
// GEMM); with dropout while training (PEFT drops only the LoRA branch's input)
// or several active adapters, the base and each low-rank term run unfused.
// Merged adapters live in the base weight (W += scale · B·A, transposed for
// Conv1D) and the forward is the plain Linear.
import { noGrad } from '../../autograd.js';
import { Linear } from '../../nn/layers.js';
import { Module } from '../../nn/module.js';
import * as ops from '../../ops/index.js';
import { keep, rand, randn, Tensor, zeros } from '../../tensor.js';
import { loraScale } from './config.js';

/** A named set of child modules (PyTorch's nn.ModuleDict): lora_A.default, lora_A.other, ... */
export class ModuleDict extends Module {
  get(name: string): Module | undefined {
    const m = this.children[name];
    return m && !Array.isArray(m) ? m : undefined;
  }
  set(name: string, m: Module): void {
    this.children[name] = m;
  }
  delete(name: string): void {
    delete this.children[name];
  }
  keys(): string[] {
    return Object.keys(this.children);
  }
}

/** One LoRA factor: a bias-free linear layer's weight (PEFT's lora_A[name] / lora_B[name] nn.Linear). */
export class LoraFactor extends Module {
  constructor(weight: Tensor) {
    super();
    this.registerParameter('weight', weight);
  }
  get weight(): Tensor {
    return this.params.weight!;
  }
}

export interface LoraAdapterInit {
  r: number;
  alpha: number;
  dropout: number;
  useRslora: boolean;
  /** true: A Kaiming-uniform, B zeros; 'gaussian': A ~ N(0, 1/r²), B zeros; false: both Kaiming-uniform */
  init: boolean | string;
  /** given factors (loaded from a file) instead of the initialization: a [r, in], b [out, r]; taken over by the layer */
  weights?: { a: Tensor; b: Tensor };
}

/**
 * nn.init.kaiming_uniform_(w, a=sqrt(5)) as nn.Linear initializes its weight:
 * gain = sqrt(2 / (1 + a²)) = sqrt(1/3), bound = gain · sqrt(3 / fan_in) = 1 / sqrt(fan_in).
 */
function kaimingUniform(shape: [number, number]): Tensor {
  const bound = 1 / Math.sqrt(shape[1]);
  const u = rand(shape);
  const c = ops.add(u, -0.5);
  const t = ops.scale(c, 2 * bound);
  u.dispose();
  c.dispose();
  return t;
}

function trainableLeaf(t: Tensor): Tensor {
  keep(t);
  t.requiresGrad = true;
  return t;
}

export class LoraLinear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly fanInFanOut: boolean;
  /** per adapter: rank, alpha, scale and dropout probability */
  readonly r: Record<string, number> = {};
  readonly loraAlpha: Record<string, number> = {};
  readonly scaling: Record<string, number> = {};
  readonly loraDropout: Record<string, number> = {};
  /** the adapters the forward adds (those this layer has) */
  activeAdapters: string[] = [];
  /** adapters currently added into the base weight, in merge order */
  mergedAdapters: string[] = [];
  /** forward as the base layer alone (PEFT's disable_adapter) */
  disableAdapters = false;

  constructor(base: Linear) {
    super();
    this.inFeatures = base.inFeatures;
    this.outFeatures = base.outFeatures;
    this.fanInFanOut = base.fanInFanOut;
    this.training = base.training;
    this.registerModule('base_layer', base);
    this.registerModule('lora_A', new ModuleDict());
    this.registerModule('lora_B', new ModuleDict());
  }

  get baseLayer(): Linear {
    return this.children.base_layer as Linear;
  }
  /** the base layer's weight, so that code reading layer.weight keeps working */
  get weight(): Tensor {
    return this.baseLayer.weight;
  }
  get bias(): Tensor | null {
    return this.baseLayer.bias;
  }
  private get dictA(): ModuleDict {
    return this.children.lora_A as ModuleDict;
  }
  private get dictB(): ModuleDict {
    return this.children.lora_B as ModuleDict;
  }
  /** adapter names this layer has */
  get adapters(): string[] {
    return this.dictA.keys();
  }
  hasAdapter(name: string): boolean {
    return this.dictA.get(name) !== undefined;
  }
  get merged(): boolean {
    return this.mergedAdapters.length > 0;
  }
  /** A of an adapter, [r, in] */
  loraA(name: string): Tensor {
    const m = this.dictA.get(name);
    if (!m) throw new Error(`LoRA layer has no adapter '${name}' (has: ${this.adapters.join(', ') || 'none'})`);
    return (m as LoraFactor).weight;
  }
  /** B of an adapter, [out, r] */
  loraB(name: string): Tensor {
    const m = this.dictB.get(name);
    if (!m) throw new Error(`LoRA layer has no adapter '${name}' (has: ${this.adapters.join(', ') || 'none'})`);
    return (m as LoraFactor).weight;
  }

  /** Adds (or replaces) an adapter: PEFT's LoraLayer.update_layer. */
  updateLayer(name: string, o: LoraAdapterInit): void {
    const { r } = o;
    if (!Number.isInteger(r) || r <= 0) throw new RangeError(`LoRA rank must be a positive integer, got ${r}`);
    let a: Tensor, b: Tensor;
    if (o.weights) {
      ({ a, b } = o.weights);
      const ok = (t: Tensor, s: number[]) => t.shape.length === 2 && t.shape[0] === s[0] && t.shape[1] === s[1];
      if (!ok(a, [r, this.inFeatures]) || !ok(b, [this.outFeatures, r]))
        throw new RangeError(`LoRA factors of shapes [${a.shape}] and [${b.shape}] do not fit a layer ${this.inFeatures} -> ${this.outFeatures} at rank ${r}`);
    } else {
      ({ a, b } = noGrad(() => {
        if (o.init === 'gaussian') {
          const n = randn([r, this.inFeatures]);
          const a = ops.scale(n, 1 / r);
          n.dispose();
          return { a, b: zeros([this.outFeatures, r]) };
        }
        if (o.init === true) return { a: kaimingUniform([r, this.inFeatures]), b: zeros([this.outFeatures, r]) };
        if (o.init === false) return { a: kaimingUniform([r, this.inFeatures]), b: kaimingUniform([this.outFeatures, r]) };
        throw new Error(`LoRA initialization ${JSON.stringify(o.init)} is not implemented (true, false, 'gaussian')`);
      }));
    }
    // the factors live where the base weight lives
    const device = this.baseLayer.weight.device;
    if (a.device !== device) a._moveTo(device);
    if (b.device !== device) b._moveTo(device);
    if (this.hasAdapter(name)) this.deleteAdapter(name);
    this.dictA.set(name, new LoraFactor(trainableLeaf(a)));
    this.dictB.set(name, new LoraFactor(trainableLeaf(b)));
    this.r[name] = r;
    this.loraAlpha[name] = o.alpha;
    this.scaling[name] = loraScale(o.alpha, r, o.useRslora);
    this.loraDropout[name] = o.dropout;
  }

  /** Puts new factors in place of an adapter's (same shapes; requiresGrad carried over; the old ones disposed). */
  replaceFactors(name: string, a: Tensor, b: Tensor): void {
    const oldA = this.loraA(name), oldB = this.loraB(name);
    const same = (x: Tensor, y: Tensor) => x.shape.length === y.shape.length && x.shape.every((d, i) => d === y.shape[i]);
    if (!same(a, oldA) || !same(b, oldB)) throw new RangeError(`LoRA factors of shapes [${a.shape}] and [${b.shape}] do not replace [${oldA.shape}] and [${oldB.shape}]`);
    keep(a).requiresGrad = oldA.requiresGrad;
    keep(b).requiresGrad = oldB.requiresGrad;
    (this.dictA.get(name) as LoraFactor).setParam('weight', a);
    (this.dictB.get(name) as LoraFactor).setParam('weight', b);
    oldA.dispose();
    oldB.dispose();
  }

  /** Removes an adapter (unmerging first if it is merged). */
  deleteAdapter(name: string): void {
    if (!this.hasAdapter(name)) return;
    if (this.mergedAdapters.includes(name)) this.unmerge();
    this.loraA(name).dispose();
    this.loraB(name).dispose();
    this.dictA.delete(name);
    this.dictB.delete(name);
    delete this.r[name];
    delete this.loraAlpha[name];
    delete this.scaling[name];
    delete this.loraDropout[name];
    this.activeAdapters = this.activeAdapters.filter((n) => n !== name);
  }

  /**
   * scale · B·A in the base weight's layout: [out, in], or [in, out] = scale · (B·A)ᵀ
   * for fanInFanOut (PEFT's get_delta_weight). A new tensor without a graph.
   */
  getDeltaWeight(name: string): Tensor {
    const a = this.loraA(name), b = this.loraB(name);
    return noGrad(() => {
      // (B·A)ᵀ = Aᵀ·Bᵀ: a [r, in] transposed times b [out, r] transposed -> [in, out]
      const ba = this.fanInFanOut ? ops.matmul(a, b, { transA: true, transB: true }) : ops.matmul(b, a);
      const d = ops.scale(ba, this.scaling[name]!);
      ba.dispose();
      return d;
    });
  }

  /** Replaces the base weight by weight + sign · delta (a new tensor; the old one is disposed). */
  private addToBase(name: string, sign: 1 | -1): void {
    const base = this.baseLayer;
    const w = base.weight;
    const d = this.getDeltaWeight(name);
    const nw = noGrad(() => (sign > 0 ? ops.add(w, d) : ops.sub(w, d)));
    d.dispose();
    keep(nw);
    nw.requiresGrad = w.requiresGrad;
    base.setParam('weight', nw);
    w.dispose();
  }

  /** Adds the given adapters (default: the active ones) into the base weight. */
  merge(names: string[] = this.activeAdapters): void {
    for (const n of names) {
      if (!this.hasAdapter(n) || this.mergedAdapters.includes(n)) continue;
      this.addToBase(n, 1);
      this.mergedAdapters.push(n);
    }
  }

  /** Subtracts every merged adapter from the base weight again (last merged first). */
  unmerge(): void {
    while (this.mergedAdapters.length) this.addToBase(this.mergedAdapters.pop()!, -1);
  }

  /** The low-rank term scale · dropout(x)·Aᵀ·Bᵀ of one adapter, unfused. x: [..., in] -> [..., out] */
  loraTerm(x: Tensor, name: string): Tensor {
    const p = this.loraDropout[name] ?? 0;
    const xd = this.training && p > 0 ? ops.dropout(x, p) : x;
    const xa = ops.matmul(xd, this.loraA(name), { transB: true });  // [..., r]
    const xab = ops.matmul(xa, this.loraB(name), { transB: true });  // [..., out]
    return ops.scale(xab, this.scaling[name]!);
  }

  /** x: [..., in] -> [..., out] */
  forward(x: Tensor): Tensor {
    const base = this.baseLayer;
    if (this.disableAdapters) {
      if (this.merged) this.unmerge();
      return base.forward(x);
    }
    if (this.merged) return base.forward(x);
    const active = this.activeAdapters.filter((n) => this.hasAdapter(n));
    if (!active.length) return base.forward(x);
    if (active.length === 1 && !(this.training && (this.loraDropout[active[0]!] ?? 0) > 0)) {
      const n = active[0]!;
      return ops.loraLinear(x, base.weight, this.loraA(n), this.loraB(n), {
        scale: this.scaling[n]!,
        bias: base.bias ?? undefined,
        fanInFanOut: this.fanInFanOut,
      });
    }
    let y = base.forward(x);
    for (const n of active) y = ops.add(y, this.loraTerm(x, n));
    return y;
  }
}

/** The layers LoRA can wrap. */
export function isLoraTargetable(m: Module): m is Linear | LoraLinear {
  return m instanceof Linear || m instanceof LoraLinear;
}
