// Reverse-mode autograd. Every differentiable op records one Node on its
// output: the inputs, and a backward function that maps the output gradient
// to one gradient per input (null where an input needs none). Gradients are
// float32 tensors. The rule for each op lives next to its forward in src/ops/.
import { native, type NativeTensor } from './native/binding.js';
import type { Tensor } from './tensor.js';

export interface Node {
  op: string;
  inputs: Tensor[];
  /** gy has the output's shape; returns one gradient per input (same shape as that input). */
  backward: (gy: Tensor, needs: boolean[]) => Array<Tensor | null>;
}

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs fn with gradient recording off (like torch.no_grad). */
export function noGrad<R>(fn: () => R): R {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

// Intermediates of a model's forward that nothing outside the model holds (the
// layer norms' outputs, the attention's projections, ...): backward() frees each one
// as soon as the walk is past it (its consumers and its own node are done), so that a
// training step's memory does not peak with every activation and every gradient at once.
const transients = new WeakSet<Tensor>();

/** @internal marks an intermediate that no caller can reach (see above); returns it */
export function markTransient(t: Tensor): Tensor {
  transients.add(t);
  return t;
}

/** Attaches a node to `out` when recording is on and any input requires grad. */
export function record(out: Tensor, op: string, inputs: Tensor[], backward: Node['backward']): Tensor {
  if (gradEnabled && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    out._node = { op, inputs, backward };
  }
  return out;
}

function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  // iterative DFS (deep graphs would overflow the JS stack)
  const stack: Array<[Tensor, number]> = [[root, 0]];
  seen.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    const [t, i] = top;
    const inputs = t._node?.inputs ?? [];
    if (i < inputs.length) {
      top[1] = i + 1;
      const child = inputs[i]!;
      if (child.requiresGrad && !seen.has(child)) {
        seen.add(child);
        stack.push([child, 0]);
      }
    } else {
      order.push(t);
      stack.pop();
    }
  }
  return order.reverse();
}

/** Whether a gradient can be accumulated into `acc` in place (CPU f32 of one shape). */
function inPlace(acc: Tensor, g: Tensor): boolean {
  if (acc.device !== 'cpu' || g.device !== 'cpu' || acc.dtype !== 'f32' || g.dtype !== 'f32') return false;
  if (acc.shape.length !== g.shape.length) return false;
  for (let i = 0; i < acc.shape.length; i++) if (acc.shape[i] !== g.shape[i]) return false;
  return true;
}

/**
 * Backpropagates from `root`. Leaf tensors with requiresGrad accumulate into
 * `.grad`. The graph is freed as it is walked (no retain_graph). Every
 * gradient tensor in flight is owned here and disposed once consumed.
 */
export function runBackward(root: Tensor, grad: Tensor | undefined, wrap: (h: NativeTensor) => Tensor): void {
  if (!root.requiresGrad) throw new Error('backward: tensor does not require grad (no input of its graph has requiresGrad)');
  if (grad) {
    if (grad.shape.length !== root.shape.length || grad.shape.some((d, i) => d !== root.shape[i]))
      throw new RangeError(`backward: grad shape [${grad.shape}] does not match tensor shape [${root.shape}]`);
  } else if (root.numel !== 1) {
    throw new RangeError(`backward: grad must be given for a non-scalar tensor of shape [${root.shape}]`);
  }
  const order = topoOrder(root);
  // a node dropped earlier would make its inputs look like leaves: refuse
  // before anything is accumulated
  for (const t of order)
    if (t._graphFreed)
      throw new Error(
        t._graphFreed === 'backward'
          ? 'backward: the graph was already freed by an earlier backward() through it; compute the forward pass again'
          : 'backward: an intermediate tensor of the graph was disposed (by dispose() or tidy()) before backward(); call backward() inside the same tidy()',
      );
  let seed: Tensor;
  if (grad) {
    // our own copy, of the root's float dtype and on its device
    const dt = root.device === 'cuda' && root.dtype === 'bf16' ? 'bf16' : 'f32';
    const onDev = grad.device === root.device ? grad : grad.to(root.device);
    seed = wrap(native.cast(onDev._handle(), dt));
    if (onDev !== grad) onDev.dispose();
  } else {
    const h = native.empty(root.device === 'cuda' && root.dtype === 'bf16' ? 'bf16' : 'f32', [...root.shape], root.device);
    native.fill(h, 1);
    seed = wrap(h);
  }
  const grads = new Map<Tensor, Tensor>();
  grads.set(root, seed);
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    for (const t of order) {
      const g = grads.get(t);
      if (!g) continue;
      grads.delete(t);
      const node = t._node;
      if (!node) {
        // a leaf: accumulate into .grad (a grad the caller disposed counts as none)
        if (t.disposed) {
          g.dispose();
          continue;
        }
        if (t.grad && !t.grad.disposed) {
          const sum = wrap(native.binary_forward('add', t.grad._handle(), g._handle()));
          t.grad.dispose();
          g.dispose();
          t.grad = sum;
        } else {
          t.grad = g;
        }
        t.grad._keep();
        continue;
      }
      const gin = node.backward(g, node.inputs.map((x) => x.requiresGrad));
      const handedOut = new Set<Tensor>();
      const unused: Tensor[] = [];
      node.inputs.forEach((x, i) => {
        let gi = gin[i];
        if (!gi) return;
        if (!x.requiresGrad) {
          unused.push(gi);
          return;
        }
        if (handedOut.has(gi)) gi = wrap(native.clone(gi._handle()));
        handedOut.add(gi);
        const acc = grads.get(x);
        if (acc && inPlace(acc, gi)) {
          // acc is this walk's own tensor (every backward returns new tensors, its
          // gradient argument, or views of that argument, which is then dropped)
          native.add_inplace(acc._handle(), gi._handle());
          gi.dispose();
        } else if (acc) {
          grads.set(x, wrap(native.binary_forward('add', acc._handle(), gi._handle())));
          acc.dispose();
          gi.dispose();
        } else {
          grads.set(x, gi);
        }
      });
      for (const u of unused) if (!handedOut.has(u)) u.dispose();
      if (!handedOut.has(g)) g.dispose();
      t._node = null;  // free the graph as we go
      t._graphFreed = 'backward';
      // every consumer of t came before it in the walk: an intermediate nobody else holds goes now
      if (transients.has(t)) t.dispose();
    }
  } finally {
    gradEnabled = prev;
    for (const g of grads.values()) g.dispose();
  }
}
