// Module: a named tree of parameters (PyTorch-style). Parameter names are the
// dotted paths used by Hugging Face checkpoints ("transformer.h.0.attn.c_attn.weight").
import { Tensor } from '../tensor.js';

export abstract class Module {
  training = true;

  /** Own parameters (and buffers) by local name; null marks an absent optional one. */
  /** @internal */
  params: Record<string, Tensor | null> = {};
  /** Child modules by local name (arrays are numbered: "h.0", "h.1", ...). */
  /** @internal */
  children: Record<string, Module | Module[]> = {};

  protected registerParameter(name: string, t: Tensor | null): Tensor | null {
    this.params[name] = t;
    return t;
  }

  protected registerModule<M extends Module | Module[]>(name: string, m: M): M {
    this.children[name] = m;
    return m;
  }

  /** Replaces a child (used by adapters that wrap layers). */
  setChild(name: string, m: Module): void {
    const dot = name.indexOf('.');
    if (dot >= 0) {
      const head = name.slice(0, dot), rest = name.slice(dot + 1);
      const c = this.children[head];
      if (Array.isArray(c)) {
        const d2 = rest.indexOf('.');
        const idx = Number(d2 < 0 ? rest : rest.slice(0, d2));
        if (d2 < 0) c[idx] = m;
        else c[idx]!.setChild(rest.slice(d2 + 1), m);
      } else if (c) c.setChild(rest, m);
      else throw new Error(`setChild: no child '${head}'`);
      return;
    }
    if (!(name in this.children)) throw new Error(`setChild: no child '${name}'`);
    this.children[name] = m;
  }

  *namedModules(prefix = ''): Generator<[string, Module]> {
    yield [prefix, this];
    for (const [k, c] of Object.entries(this.children)) {
      const base = prefix ? `${prefix}.${k}` : k;
      if (Array.isArray(c)) {
        for (let i = 0; i < c.length; i++) yield* c[i]!.namedModules(`${base}.${i}`);
      } else {
        yield* c.namedModules(base);
      }
    }
  }

  /** Every parameter with its dotted name; a tensor shared by two names (tied weights) is listed once. */
  namedParameters(prefix = ''): Array<[string, Tensor]> {
    const out: Array<[string, Tensor]> = [];
    const seen = new Set<Tensor>();
    for (const [mp, m] of this.namedModules(prefix)) {
      for (const [k, t] of Object.entries(m.params)) {
        if (!t || seen.has(t)) continue;
        seen.add(t);
        out.push([mp ? `${mp}.${k}` : k, t]);
      }
    }
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  /** The parameter slot (module and local name) for a dotted name, or null. */
  findParameter(name: string): { module: Module; key: string } | null {
    const dot = name.lastIndexOf('.');
    const path = dot < 0 ? '' : name.slice(0, dot), key = dot < 0 ? name : name.slice(dot + 1);
    for (const [mp, m] of this.namedModules()) if (mp === path && key in m.params) return { module: m, key };
    return null;
  }

  getParam(key: string): Tensor | null {
    return this.params[key] ?? null;
  }

  setParam(key: string, t: Tensor | null): void {
    if (!(key in this.params)) throw new Error(`setParam: no parameter '${key}'`);
    this.params[key] = t;
  }

  /**
   * Moves every parameter and buffer to a device, in place (the tensor objects
   * stay the same, so optimizers built before keep working; their state is
   * made on the parameter's device at the first step). Returns this.
   */
  to(device: 'cpu' | 'cuda'): this {
    if (device !== 'cpu' && device !== 'cuda') throw new TypeError(`to: unknown device '${String(device)}'`);
    const seen = new Set<Tensor>();
    for (const [, m] of this.namedModules())
      for (const t of Object.values(m.params))
        if (t && !seen.has(t)) {
          seen.add(t);
          t._moveTo(device);
        }
    return this;
  }

  /** The device of the first parameter ('cpu' for a module without parameters). */
  get device(): 'cpu' | 'cuda' {
    const first = this.parameters()[0];
    return first ? first.device : 'cpu';
  }

  train(on = true): this {
    for (const [, m] of this.namedModules()) m.training = on;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Frees every parameter's native memory. */
  dispose(): void {
    for (const t of this.parameters()) t.dispose();
  }
}
