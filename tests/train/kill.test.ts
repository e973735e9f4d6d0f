// kill -9 at random moments of a run that checkpoints every step: whatever
// instant the process dies at, every directory named checkpoint-N is complete
// and loadable (trainer state, model or adapter, optimizer state), temporary
// directories are never taken for checkpoints, and --resume finishes the run
// with the same final weights as an uninterrupted one.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import { baseConfig, cleanup, expectSameBits, finished, makeTask, runCli, seeded, spawnCli, tempRoot, tensorsOf, waitForStderr, writeYaml } from './util.js';

let root: string;
let task: { train: string; valid: string };
const STEPS = 24;
const refs: Record<string, Record<string, Float32Array>> = {};

const cfgValues = (method: 'full' | 'lora', outDir: string) => baseConfig(task, outDir, { method, steps: STEPS, seed: 11 });
const finalFile = (method: string, dir: string) => (method === 'full' ? join(dir, 'final', 'model.safetensors') : join(dir, 'adapter', 'adapter_model.safetensors'));

beforeAll(async () => {
  root = tempRoot('kill');
  task = makeTask(join(root, 'task'), 14, 3, 9);
  for (const method of ['full', 'lora'] as const) {
    const dir = join(root, `ref-${method}`);
    await tk.train(tk.resolveConfig(cfgValues(method, dir)), { quiet: true });
    refs[method] = tensorsOf(tk.loadSafetensors(finalFile(method, dir)));
  }
});
afterAll(() => cleanup(root));

/** Everything a resumed run needs from a checkpoint directory loads. */
function expectLoadable(dir: string, step: number, method: 'full' | 'lora'): void {
  const state = JSON.parse(readFileSync(join(dir, 'trainer_state.json'), 'utf8')) as { step: number; optimizer: { kind: string; step: number } };
  expect(state.step).toBe(step);
  expect(state.optimizer.step).toBe(step);
  const opt = tk.loadSafetensors(join(dir, 'optimizer.safetensors'));
  const names = Object.keys(opt);
  expect(names.length).toBeGreaterThan(0);
  expect(names.every((n) => n.endsWith('.exp_avg') || n.endsWith('.exp_avg_sq'))).toBe(true);
  if (method === 'full') {
    const m = tk.loadModel(join(dir, 'model'), { tokenizer: false });
    expect(m.config.model_type).toBe('gpt2');
  } else {
    const base = tk.createModel({ ...(cfgValues('lora', '') as { model: Record<string, unknown> }).model, vocab_size: tk.byteTokenizer().vocabSize });
    const lora = tk.loadAdapter(base, join(dir, 'adapter'));
    expect(lora.adapterNames).toEqual(['default']);
  }
}

describe('kill -9', () => {
  // seeded moments: after the n-th progress line plus a few milliseconds (so the kill lands in
  // steps, evaluations and checkpoint writes alike); trial 0 dies before its first step
  const rng = seeded(20240611);
  const trials = Array.from({ length: 5 }, (_, i) => ({
    i,
    method: (i % 2 ? 'lora' : 'full') as 'full' | 'lora',
    afterStep: i === 0 ? 0 : 1 + Math.floor(rng() * 10),
    delayMs: Math.floor(rng() * 40),
  }));
  let tmpSeen = 0;

  for (const t of trials) {
    it(`trial ${t.i} (${t.method}): SIGKILL ${t.afterStep ? `after step ${t.afterStep} + ${t.delayMs} ms` : 'during start-up'}; the newest checkpoint loads, --resume completes`, async () => {
      const dir = join(root, `trial-${t.i}`);
      const yaml = writeYaml(join(root, `trial-${t.i}.yaml`), cfgValues(t.method, dir));
      const child = spawnCli(['train', '--config', yaml, '--save-every', '1', '--log-every', '1']);
      const done = finished(child);
      if (t.afterStep) await waitForStderr(child, new RegExp(`step ${t.afterStep}/${STEPS} `));
      await new Promise((r) => setTimeout(r, t.afterStep ? t.delayMs : 150));
      child.kill('SIGKILL');
      const r = await done;
      expect(r.signal, r.stderr).toBe('SIGKILL');

      const entries = existsSync(dir) ? readdirSync(dir) : [];
      expect(entries.includes('final') || entries.includes('adapter'), 'the run must not have finished before the kill').toBe(false);
      const unexpected = entries.filter((n) => !/^checkpoint-\d+$/.test(n) && !n.startsWith('.tmp-checkpoint-') && n !== 'metrics.jsonl');
      expect(unexpected).toEqual([]);
      tmpSeen += entries.filter((n) => n.startsWith('.tmp-')).length ? 1 : 0;
      // every directory that carries a checkpoint name is complete
      const named = entries.filter((n) => /^checkpoint-\d+$/.test(n)).map((n) => Number(n.slice('checkpoint-'.length))).sort((a, b) => a - b);
      for (const s of named) expectLoadable(join(dir, `checkpoint-${s}`), s, t.method);
      const latest = tk.latestCheckpoint(dir);
      if (named.length) {
        expect(latest?.dir).toBe(join(dir, `checkpoint-${named[named.length - 1]}`));
        expect(latest!.step).toBeGreaterThanOrEqual(t.afterStep - 1);  // at most the step in flight is lost
      } else expect(latest).toBeNull();

      const resumed = await runCli(['train', '--config', yaml, '--resume', '--save-every', '1']);
      expect(resumed.code, resumed.stderr).toBe(0);
      expect(resumed.stdout).toMatch(new RegExp(`done at step ${STEPS}/${STEPS}`));
      expect(readdirSync(dir).filter((n) => n.startsWith('.tmp-'))).toEqual([]);
      expectSameBits(refs[t.method]!, tensorsOf(tk.loadSafetensors(finalFile(t.method, dir))), `trial ${t.i}: final weights after kill -9 and --resume`);
      // the metrics log has each step once, in order
      const steps = readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { step: number; loss?: number })
        .filter((m) => m.loss !== undefined)
        .map((m) => m.step);
      expect(steps).toEqual(Array.from({ length: STEPS }, (_, k) => k + 1));
    });
  }

  afterAll(() => {
    console.log(`kill -9: ${tmpSeen} of ${trials.length} trials died with a checkpoint half-written (left a .tmp- directory)`);
  });
});
