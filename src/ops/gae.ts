// Generalized advantage estimation for PPO.
import { noGrad } from '../autograd.js';
import * as ew from './elementwise.js';
import { sum } from './reduce.js';
import { checkTensor, h, native, Tensor, wrap } from './util.js';

export interface GaeOptions {
  gamma: number;
  lambda: number;
  /** V_T per row, [B] (default 0) */
  lastValues?: Tensor;
  /** [B, T], 1 where a position counts for whitening (default: all) */
  mask?: Tensor;
  /** normalize advantages to mean 0, unit variance over the masked positions */
  whiten?: boolean;
}

/**
 * rewards, values, dones: [B, T] f32; dones[b, t] = 1 ends the episode after
 * step t. delta_t = r_t + gamma V_{t+1} (1 - done_t) - V_t (V_T = lastValues),
 * A_t = delta_t + gamma lambda (1 - done_t) A_{t+1}, returns = A + V, bit for
 * bit the textbook reversed loop in f32 (one rounding per operation, left to
 * right as written, gamma and lambda as f32, gamma·lambda rounded once; no FMA).
 * Whitening uses the unbiased variance over the mask (as TRL's masked_whiten);
 * returns are computed before whitening. Not differentiable.
 */
export function gae(rewards: Tensor, values: Tensor, dones: Tensor, opts: GaeOptions): { advantages: Tensor; returns: Tensor } {
  checkTensor('gae', 'rewards', rewards);
  checkTensor('gae', 'values', values);
  checkTensor('gae', 'dones', dones);
  if (!opts || typeof opts.gamma !== 'number' || typeof opts.lambda !== 'number')
    throw new TypeError('gae: opts.gamma and opts.lambda are required numbers');
  if (opts.lastValues !== undefined) checkTensor('gae', 'lastValues', opts.lastValues);
  const [a, r] = native.gae_forward(h(rewards), h(values), h(dones), opts.lastValues ? h(opts.lastValues) : null, opts.gamma, opts.lambda);
  let advantages = wrap(a, rewards.shape);
  const returns = wrap(r, rewards.shape);
  if (opts.whiten) {
    if (opts.mask !== undefined) checkTensor('gae', 'mask', opts.mask);
    advantages = noGrad(() => {
      const m = opts.mask;
      const n = m ? sum(m).item() : advantages.numel;
      if (n < 2) throw new RangeError(`gae: whitening needs at least 2 positions, the mask selects ${n}`);
      const masked = m ? ew.mul(advantages, m) : advantages;
      const mean = sum(masked).item() / n;
      const centered = ew.sub(advantages, mean);
      const c2 = ew.mul(centered, centered);
      const sq = m ? ew.mul(c2, m) : c2;
      const variance = sum(sq).item() / (n - 1);
      const out = ew.scale(centered, 1 / Math.sqrt(variance + 1e-8));
      for (const t of [masked, centered, c2, sq]) if (t !== advantages && t !== out) t.dispose();
      advantages.dispose();
      return out;
    });
  }
  return { advantages, returns };
}
