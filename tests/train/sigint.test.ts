// SIGINT: the CLI finishes the step in flight, saves a checkpoint at the step
// it reached, says 'interrupted' and exits 0; --resume then carries on from there.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import { baseConfig, cleanup, finished, makeTask, readMetrics, runCli, spawnCli, tempRoot, waitForStderr, writeYaml } from './util.js';

let root: string;
let task: { train: string; valid: string };
beforeAll(() => {
  root = tempRoot('sigint');
  task = makeTask(join(root, 'task'), 12, 3, 4);
});
afterAll(() => cleanup(root));

describe('SIGINT', () => {
  for (const method of ['full', 'lora'] as const) {
    it(`${method}: saves a checkpoint at the step reached and exits 0`, async () => {
      const dir = join(root, method);
      // far more steps than the test waits for: only the signal ends this run
      const yaml = writeYaml(join(root, `${method}.yaml`), baseConfig(task, dir, { method, steps: 5000 }));
      const child = spawnCli(['train', '--config', yaml, '--log-every', '1']);
      const done = finished(child);
      await waitForStderr(child, /step 3\/5000 /);
      child.kill('SIGINT');
      const r = await done;
      expect(r.signal).toBeNull();
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/interrupted at step \d+\/5000/);
      expect(r.stderr).toMatch(/interrupted: checkpoint saved at step \d+/);
      const reached = Number(/interrupted at step (\d+)\//.exec(r.stdout)![1]);
      expect(reached).toBeGreaterThanOrEqual(3);
      expect(reached).toBeLessThan(5000);
      // the checkpoint is at that step and complete
      const latest = tk.latestCheckpoint(dir);
      expect(latest?.step).toBe(reached);
      const state = JSON.parse(readFileSync(join(latest!.dir, 'trainer_state.json'), 'utf8')) as { step: number };
      expect(state.step).toBe(reached);
      if (method === 'full') tk.loadModel(join(latest!.dir, 'model'), { tokenizer: false });
      else tk.loadSafetensors(join(latest!.dir, 'adapter', 'adapter_model.safetensors'));
      // every step up to it is in the metrics log
      expect(readMetrics(dir).filter((m) => 'loss' in m).map((m) => m.step)).toEqual(Array.from({ length: reached }, (_, i) => i + 1));

      // and the run continues from there
      const r2 = await runCli(['train', '--config', yaml, '--resume', '--steps', String(reached + 2), '--quiet']);
      expect(r2.code, r2.stderr).toBe(0);
      expect(r2.stdout).toMatch(new RegExp(`done at step ${reached + 2}/${reached + 2}`));
    });
  }
});
