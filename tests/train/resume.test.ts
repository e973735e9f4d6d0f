// Resuming gives the same final weights as an uninterrupted run, bit for bit
// on the CPU: dropout on, gradient accumulation, warmup + cosine schedule,
// evaluations in between, and a dataset small enough that the run crosses
// several epoch boundaries (one interruption lands exactly on one). For full
// fine-tuning and for LoRA, through the API (stopAfterStep) and the CLI
// (--stop-after-step, then --resume), and from a checkpoint that is not the newest.
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import { baseConfig, cleanup, expectSameBits, makeTask, paramsOf, readMetrics, runCli, tempRoot, tensorsOf, writeYaml } from './util.js';

let root: string;
let task: { train: string; valid: string };
beforeAll(() => {
  root = tempRoot('resume');
  // 10 examples, micro-batches of 4 -> 3 per epoch (4, 4, 2); 2 per step -> an epoch every 1.5 steps
  task = makeTask(join(root, 'task'), 10, 3, 5);
});
afterAll(() => cleanup(root));

const STEPS = 7;
const common = { steps: STEPS, evalEvery: 2, saveEvery: 0 };

/** the step records of metrics.jsonl without the timing-dependent field */
function stepRecords(outDir: string) {
  return readMetrics(outDir)
    .filter((m) => 'loss' in m)
    .map(({ tokens_per_s: _t, ...rest }) => rest);
}

for (const method of ['full', 'lora'] as const) {
  describe(`resume (${method})`, () => {
    let refParams: Record<string, Float32Array>;
    let refDir: string;
    const cfgFor = (outDir: string, extra: Record<string, unknown> = {}) => tk.resolveConfig(baseConfig(task, outDir, { method, ...common, ...extra }));

    beforeAll(async () => {
      refDir = join(root, `${method}-A`);
      const a = await tk.train(cfgFor(refDir), { quiet: true });
      expect(a.step).toBe(STEPS);
      expect(a.interrupted).toBe(false);
      refParams = paramsOf(a.model);
      // the run really crossed epochs
      const last = readMetrics(refDir).filter((m) => 'loss' in m).pop()!;
      expect(last.epoch as number).toBeGreaterThan(3);
    });

    // k = 3: six micro-batches, exactly two epochs (the interruption sits on an epoch boundary); k = 2: mid-epoch
    for (const k of [2, 3]) {
      it(`API: interrupted after step ${k}, resumed -> the same weights bit for bit`, async () => {
        const dir = join(root, `${method}-B${k}`);
        const b1 = await tk.train(cfgFor(dir), { quiet: true, stopAfterStep: k });
        expect(b1.interrupted).toBe(true);
        expect(b1.step).toBe(k);
        expect(tk.latestCheckpoint(dir)?.step).toBe(k);
        // nothing final yet
        expect(existsSync(join(dir, method === 'full' ? 'final' : 'adapter'))).toBe(false);
        tk.manualSeed(987654);  // as a fresh process would: the generator's state must come from the checkpoint, not linger
        const b2 = await tk.train(cfgFor(dir), { quiet: true, resume: true });
        expect(b2.step).toBe(STEPS);
        expect(b2.interrupted).toBe(false);
        expectSameBits(refParams, paramsOf(b2.model), `${method} resumed at ${k}`);
        // the metrics log reads like the uninterrupted run's: same steps, losses, learning rates, epochs
        expect(stepRecords(dir)).toEqual(stepRecords(refDir));
        expect(readMetrics(dir).filter((m) => 'eval_loss' in m)).toEqual(readMetrics(refDir).filter((m) => 'eval_loss' in m));
      });
    }

    it('API: resuming from a checkpoint that is not the newest (the newest deleted)', async () => {
      const dir = join(root, `${method}-C`);
      const b1 = await tk.train(cfgFor(dir, { saveEvery: 1 }), { quiet: true, stopAfterStep: 5 });
      expect(b1.step).toBe(5);
      const cps = tk.listCheckpoints(dir).map((c) => c.step);
      expect(cps).toEqual([4, 5]);  // the newest two are kept
      rmSync(join(dir, 'checkpoint-5'), { recursive: true });
      tk.manualSeed(4242);
      const b2 = await tk.train(cfgFor(dir, { saveEvery: 1 }), { quiet: true, resume: true });
      expect(b2.step).toBe(STEPS);
      expectSameBits(refParams, paramsOf(b2.model), `${method} resumed from checkpoint-4`);
      expect(stepRecords(dir)).toEqual(stepRecords(refDir));
    });

    it('CLI: --stop-after-step then --resume -> the same final files bit for bit', async () => {
      const dir = join(root, `${method}-D`);
      const yaml = writeYaml(join(root, `${method}-run.yaml`), baseConfig(task, dir, { method, ...common }));
      const r1 = await runCli(['train', '--config', yaml, '--stop-after-step', '4']);
      expect(r1.code, r1.stderr).toBe(0);
      expect(r1.stdout).toMatch(/interrupted at step 4\/7/);
      const r2 = await runCli(['train', '--config', yaml, '--resume']);
      expect(r2.code, r2.stderr).toBe(0);
      expect(r2.stdout).toMatch(/done at step 7\/7/);
      expect(r2.stderr).toMatch(/resuming from .*checkpoint-4/);
      if (method === 'full') {
        const ref = tensorsOf(tk.loadSafetensors(join(refDir, 'final', 'model.safetensors')));
        const got = tensorsOf(tk.loadSafetensors(join(dir, 'final', 'model.safetensors')));
        expectSameBits(ref, got, 'final/model.safetensors');
      } else {
        const ref = tensorsOf(tk.loadSafetensors(join(refDir, 'adapter', 'adapter_model.safetensors')));
        const got = tensorsOf(tk.loadSafetensors(join(dir, 'adapter', 'adapter_model.safetensors')));
        expectSameBits(ref, got, 'adapter/adapter_model.safetensors');
      }
      expect(stepRecords(dir)).toEqual(stepRecords(refDir));
    });
  });
}

describe('resume: guards', () => {
  it('a fresh run refuses a run directory that holds checkpoints; --resume with none starts from step 0', async () => {
    const dir = join(root, 'guard');
    const cfg = tk.resolveConfig(baseConfig(task, dir, { steps: 2 }));
    const r = await tk.train(cfg, { quiet: true, resume: true });  // nothing to resume: a normal run
    expect(r.step).toBe(2);
    await expect(tk.train(cfg, { quiet: true })).rejects.toThrow(/already holds checkpoints.*--resume.*--overwrite/);
    const cli = await runCli(['train', '--config', writeYaml(join(root, 'guard.yaml'), baseConfig(task, dir, { steps: 2 })), '--quiet']);
    expect(cli.code).not.toBe(0);
    expect(cli.stderr).toMatch(/already holds checkpoints/);
    // a checkpoint of a full run cannot be resumed as LoRA
    await expect(tk.train(tk.resolveConfig(baseConfig(task, dir, { steps: 4, method: 'lora' })), { quiet: true, resume: true })).rejects.toThrow(
      /'full' run.*'lora'/,
    );
    expect(readdirSync(dir).filter((n) => n.startsWith('.tmp'))).toEqual([]);
    // overwrite: the old checkpoints go, the new run's stay
    await tk.train(tk.resolveConfig(baseConfig(task, dir, { steps: 1 })), { quiet: true, overwrite: true });
    expect(tk.listCheckpoints(dir).map((c) => c.step)).toEqual([1]);
    expect(readMetrics(dir).filter((m) => 'loss' in m).map((m) => m.step)).toEqual([1]);
  });
});
