// Tensor: a shape, a dtype, a device and native storage, plus the autograd
// fields. Memory is freed by dispose(), by tidy() at the end of its scope, or
// (as a backstop) by the native finalizer when the object is collected.
import { runBackward, type Node, record } from './autograd.js';
import { native, type DType, type NativeTensor } from './native/binding.js';

export type { DType } from './native/binding.js';
export type Device = 'cpu' | 'cuda';

export interface TensorOptions {
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}

const DTYPES: readonly DType[] = ['f32', 'bf16', 'f16', 'i8', 'i32'];
const FLOAT_DTYPES: readonly DType[] = ['f32', 'bf16', 'f16'];

// ---------------------------------------------------------------- tidy scopes
const scopes: Array<Set<Tensor>> = [];

export class Tensor {
  /** @internal native storage; null once disposed */
  private _h: NativeTensor | null;
  readonly shape: readonly number[];
  readonly dtype: DType;
  /** @internal the device, read from the handle on first use */
  private _device: Device | undefined = undefined;
  requiresGrad = false;
  grad: Tensor | null = null;
  /** @internal the op that produced this tensor (null for leaves) */
  _node: Node | null = null;
  /** @internal why the node was dropped: backward() walked it, or dispose() freed it */
  _graphFreed: 'backward' | 'dispose' | null = null;

  /** @internal use tk.tensor / tk.zeros / ... */
  constructor(handle: NativeTensor, shape?: readonly number[]) {
    this._h = handle;
    this.shape = Object.freeze(shape ? [...shape] : handle.shape);
    this.dtype = handle.dtype;
    const scope = scopes[scopes.length - 1];
    if (scope) scope.add(this);
  }

  /** Where the bytes live: 'cpu', or 'cuda' (the device of the CUDA backend). */
  get device(): Device {
    if (this._device === undefined) this._device = this._h ? this._h.device : 'cpu';
    return this._device;
  }

  get numel(): number {
    let n = 1;
    for (const d of this.shape) n *= d;
    return n;
  }

  get ndim(): number {
    return this.shape.length;
  }

  get disposed(): boolean {
    // also true for an object that only inherits from Tensor.prototype
    return !this._h;
  }

  /** @internal the native handle; throws on a disposed tensor */
  _handle(): NativeTensor {
    if (!this._h) throw new TypeError('tensor has been disposed');
    return this._h;
  }

  /** @internal exempt from the enclosing tidy() scopes */
  _keep(): this {
    for (const s of scopes) s.delete(this);
    return this;
  }

  /**
   * Synchronous host copy: Float32Array for float dtypes, Int32Array / Int8Array otherwise.
   * For a CUDA tensor this waits for the queued kernels; a kernel fault surfaces here as an error.
   */
  toArray(): Float32Array | Int32Array | Int8Array {
    return native.toArray(this._handle());
  }

  /** The single value of a one-element tensor. */
  item(): number {
    if (this.numel !== 1) throw new RangeError(`item: tensor has ${this.numel} elements, expected 1`);
    return this.toArray()[0]!;
  }

  /** Backpropagates from this tensor; grad defaults to 1 for a one-element tensor. */
  backward(grad?: Tensor): void {
    if (this.disposed) throw new TypeError('backward: the tensor has been disposed');
    if (grad !== undefined) {
      if (!(grad instanceof Tensor)) throw new TypeError(`backward: grad must be a Tensor, got ${grad === null ? 'null' : typeof grad}`);
      if (grad.disposed) throw new TypeError('backward: grad is a disposed tensor');
    }
    runBackward(this, grad, wrap);
  }

  /** A tensor sharing this storage, cut from the graph. */
  detach(): Tensor {
    return new Tensor(native.reshape(this._handle(), [...this.shape]), this.shape);
  }

  /**
   * Copy to a device or convert to a dtype; the same device or dtype returns this tensor.
   * Both are differentiable: the gradient goes back to this tensor's device, cast to its dtype.
   */
  to(target: Device | DType): Tensor {
    if (target === 'cpu' || target === 'cuda') {
      if (target === this.device) return this;
      const moved = wrap(native.toDevice(this._handle(), target), this.shape);
      const from = this.device;
      if (FLOAT_DTYPES.includes(this.dtype)) record(moved, 'to', [this], (g) => [wrap(native.toDevice(g._handle(), from), g.shape)]);
      return moved;
    }
    if (!DTYPES.includes(target)) throw new TypeError(`to: unknown device or dtype '${String(target)}'`);
    if (target === this.dtype) return this;
    const out = wrap(native.cast(this._handle(), target));
    const from = this.dtype;
    if (FLOAT_DTYPES.includes(target) && FLOAT_DTYPES.includes(from))
      // the gradient of an f32 source is f32; a bf16 or f16 source gets its gradient as it comes (f32 on the CPU)
      record(out, 'to', [this], (g) => [wrap(from !== 'f32' || g.dtype === 'f32' ? native.clone(g._handle()) : native.cast(g._handle(), 'f32'))]);
    return out;
  }

  /** @internal moves this tensor's storage to a device in place (Module.to) */
  _moveTo(device: Device): void {
    if (device === this.device) return;
    const moved = native.toDevice(this._handle(), device);
    this._h!.dispose();
    this._h = moved;
    this._device = device;
    this.grad?._moveTo(device);
  }

  clone(): Tensor {
    const out = wrap(native.clone(this._handle()));
    return record(out, 'clone', [this], (g) => [wrap(native.clone(g._handle()))]);
  }

  /** Frees the native memory now (views keep shared storage alive until they go too). */
  dispose(): void {
    if (!this._h) return;
    this._h.dispose();
    this._h = null;
    if (this._node) this._graphFreed = 'dispose';
    this._node = null;
    for (const s of scopes) s.delete(this);
  }

  toString(): string {
    return `Tensor(shape=[${this.shape.join(', ')}], dtype=${this.dtype}, device=${this.device}${this.requiresGrad ? ', requiresGrad' : ''})`;
  }
}

/** @internal wrap a native handle in a Tensor */
export function wrap(h: NativeTensor, shape?: readonly number[]): Tensor {
  return new Tensor(h, shape);
}

export function cudaUnavailableMessage(): string {
  const c = native.backendInfo().cuda;
  return `CUDA is not available: ${c.reason ?? 'unknown reason'}`;
}

// ---------------------------------------------------------------- memory scopes
type Tensors = Tensor | Tensor[] | { [k: string]: Tensor } | void | number | null | undefined;

function collect(r: unknown, into: Set<Tensor>): void {
  if (r instanceof Tensor) into.add(r);
  else if (Array.isArray(r)) for (const x of r) collect(x, into);
  else if (r && typeof r === 'object' && Object.getPrototypeOf(r) === Object.prototype)
    for (const x of Object.values(r)) collect(x, into);
}

/**
 * Runs fn and disposes every tensor created inside it, except the tensors it
 * returns (directly, in an array or in a plain object, at any depth) and
 * gradients written to leaves by backward(). If fn throws, everything it made
 * is disposed. fn must be synchronous.
 */
export function tidy<R extends Tensors | unknown>(fn: () => R): R {
  if (typeof fn !== 'function') throw new TypeError('tidy: fn must be a function');
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: R;
  try {
    result = fn();
    if (result instanceof Promise) throw new TypeError('tidy: fn must be synchronous (it returned a Promise)');
  } catch (e) {
    // nothing made here survives a throw
    scopes.splice(scopes.lastIndexOf(scope), 1);
    for (const t of scope) t.dispose();
    throw e;
  }
  scopes.splice(scopes.lastIndexOf(scope), 1);
  const keep = new Set<Tensor>();
  collect(result, keep);
  for (const t of scope) if (!keep.has(t)) t.dispose();
  // kept tensors belong to the enclosing scope now
  const parent = scopes[scopes.length - 1];
  if (parent) for (const t of keep) if (scope.has(t)) parent.add(t);
  return result;
}

/** Exempts a tensor from the enclosing tidy() scopes. */
export function keep<T extends Tensor>(t: T): T {
  return t._keep();
}

// ---------------------------------------------------------------- creation
function checkShape(op: string, shape: readonly number[]): number[] {
  if (!Array.isArray(shape)) throw new TypeError(`${op}: shape must be an array of sizes`);
  for (const d of shape)
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 0)
      throw new RangeError(`${op}: shape must contain non-negative integers, got [${shape.join(', ')}]`);
  return [...shape];
}

function checkDevice(op: string, device: Device | undefined): Device {
  if (device === undefined || device === 'cpu') return 'cpu';
  if (device === 'cuda') {
    if (!native.backendInfo().cuda.available) throw new Error(`${op}: ${cudaUnavailableMessage()}`);
    return 'cuda';
  }
  throw new TypeError(`${op}: unknown device '${String(device)}'`);
}

/** A CPU-made tensor moved to `device` (the CPU one is freed). */
function onDevice(t: Tensor, device: Device): Tensor {
  if (device === 'cpu') return t;
  const moved = wrap(native.toDevice(t._handle(), device), t.shape);
  t.dispose();
  return moved;
}

function finish(t: Tensor, opts?: TensorOptions): Tensor {
  if (opts?.requiresGrad) {
    if (!FLOAT_DTYPES.includes(t.dtype)) throw new TypeError(`only float tensors can require grad, not ${t.dtype}`);
    t.requiresGrad = true;
  }
  return t;
}

/** A tensor from data (an array or typed array, or one number for a 0-d tensor) and a shape. */
export function tensor(data: ArrayLike<number> | number, shape?: readonly number[], opts: TensorOptions = {}): Tensor {
  const device = checkDevice('tensor', opts.device);
  const values: ArrayLike<number> = typeof data === 'number' ? [data] : data;
  const s = shape === undefined ? (typeof data === 'number' ? [] : [values.length]) : checkShape('tensor', shape);
  const dtype = opts.dtype ?? (data instanceof Int32Array ? 'i32' : data instanceof Int8Array ? 'i8' : 'f32');
  return finish(onDevice(wrap(native.fromArray(values, s, dtype)), device), opts);
}

function filled(op: string, shape: readonly number[], value: number, opts: TensorOptions): Tensor {
  const device = checkDevice(op, opts.device);
  const h = native.empty(opts.dtype ?? 'f32', checkShape(op, shape), device);
  native.fill(h, value);
  return finish(wrap(h), opts);
}

export function zeros(shape: readonly number[], opts: TensorOptions = {}): Tensor {
  return filled('zeros', shape, 0, opts);
}

export function ones(shape: readonly number[], opts: TensorOptions = {}): Tensor {
  return filled('ones', shape, 1, opts);
}

export function full(shape: readonly number[], value: number, opts: TensorOptions = {}): Tensor {
  return filled('full', shape, value, opts);
}

// Global seed sequence for random ops called without a seed.
let seedCounter = 0x5eed;
export function manualSeed(seed: number): void {
  if (!Number.isInteger(seed) || seed < 0) throw new RangeError('manualSeed: seed must be a non-negative integer');
  seedCounter = seed;
}
/** @internal the next seed of the global sequence */
export function nextSeed(): number {
  seedCounter = (seedCounter * 1103515245 + 12345) % 2147483648;
  return seedCounter;
}

export interface RandomOptions extends TensorOptions {
  seed?: number;
}

function random(op: 'rand' | 'randn', shape: readonly number[], opts: RandomOptions): Tensor {
  const device = checkDevice(op, opts.device);
  const seed = opts.seed ?? nextSeed();
  const h = op === 'rand' ? native.rand(checkShape(op, shape), seed, 0, 1) : native.randn(checkShape(op, shape), seed, 0, 1);
  let t = wrap(h);
  if (opts.dtype && opts.dtype !== 'f32') {
    const c = wrap(native.cast(h, opts.dtype));
    t.dispose();
    t = c;
  }
  // made on the CPU and copied: the same seed gives the same values on every device
  return finish(onDevice(t, device), opts);
}

/** Uniform in [0, 1). The same seed gives the same values on every ISA and thread count. */
export function rand(shape: readonly number[], opts: RandomOptions = {}): Tensor {
  return random('rand', shape, opts);
}

/** Standard normal. The same seed gives the same values on every ISA and thread count. */
export function randn(shape: readonly number[], opts: RandomOptions = {}): Tensor {
  return random('randn', shape, opts);
}
