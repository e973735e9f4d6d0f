// Early stopping: with earlyStoppingPatience P the run stops after P
// evaluations without a new best validation loss, before its last step.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import { baseConfig, cleanup, expectSameBits, makeTask, paramsOf, readMetrics, runCli, tempRoot, writeYaml } from './util.js';

let root: string;
let task: { train: string; valid: string };
beforeAll(() => {
  root = tempRoot('early');
  task = makeTask(join(root, 'task'), 8, 2, 15);
});
afterAll(() => cleanup(root));

describe('early stopping', () => {
  it('lr 0: the validation loss never improves after the first evaluation -> stops after 1 + patience evaluations', async () => {
    const dir = join(root, 'flat');
    const cfg = tk.resolveConfig(baseConfig(task, dir, { lr: 0, warmupSteps: 0, steps: 20, evalEvery: 2, earlyStoppingPatience: 2 }));
    const r = await tk.train(cfg, { quiet: true });
    expect(r.stoppedEarly).toBe(true);
    expect(r.interrupted).toBe(false);
    expect(r.step).toBe(6);  // evaluations at 2 (best), 4 (no better), 6 (no better: patience 2 used up)
    expect(r.step).toBeLessThan(r.totalSteps);
    expect(r.evals.map((e) => e.step)).toEqual([2, 4, 6]);
    expect(new Set(r.evals.map((e) => e.eval_loss)).size).toBe(1);
    // the metrics log ends there; final outputs and a checkpoint are written
    expect(Math.max(...readMetrics(dir).map((m) => m.step as number))).toBe(6);
    expect(tk.latestCheckpoint(dir)?.step).toBe(6);
    expectSameBits(paramsOf(r.model), paramsOf(tk.loadModel(join(dir, 'final'), { tokenizer: false })), 'final/');
  });

  it('an improving run with the same patience goes to the last step', async () => {
    const cfg = tk.resolveConfig(baseConfig(task, join(root, 'improving'), { lr: 0.01, warmupSteps: 0, schedule: 'constant', steps: 6, evalEvery: 2, earlyStoppingPatience: 2 }));
    const r = await tk.train(cfg, { quiet: true });
    expect(r.stoppedEarly).toBe(false);
    expect(r.step).toBe(6);
    const losses = r.evals.map((e) => e.eval_loss);
    for (let i = 1; i < losses.length; i++) expect(losses[i]!).toBeLessThan(losses[i - 1]!);
  });

  it('an unstable run (lr far too high) stops early, counting evaluations across a resume', async () => {
    const values = baseConfig(task, join(root, 'diverge'), { lr: 1, warmupSteps: 0, schedule: 'constant', optimizer: 'sgd', maxGradNorm: 0, steps: 40, evalEvery: 1, earlyStoppingPatience: 3, saveEvery: 1 });
    const yaml = writeYaml(join(root, 'diverge.yaml'), values);
    const ref = await tk.train(tk.resolveConfig({ ...values, outDir: join(root, 'diverge-ref') }), { quiet: true, handleSigint: false });
    expect(ref.stoppedEarly).toBe(true);
    expect(ref.step).toBeLessThan(40);
    // the same run through the CLI, interrupted once near the middle and resumed: it stops at the same step
    const k = Math.max(1, ref.step - 2);
    const a = await runCli(['train', '--config', yaml, '--stop-after-step', String(k), '--quiet']);
    expect(a.code, a.stderr).toBe(0);
    const b = await runCli(['train', '--config', yaml, '--resume', '--quiet']);
    expect(b.code, b.stderr).toBe(0);
    expect(b.stdout).toMatch(new RegExp(`stopped early at step ${ref.step}/40`));
  });
});
