// metrics.jsonl (every step, every evaluation) and progress output: plain
// lines every logEvery steps when stderr is not a TTY, a live bar with step,
// loss, learning rate, tokens/s and ETA when it is.
import { PassThrough } from 'node:stream';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import { baseConfig, cleanup, makeTask, readMetrics, runCli, tempRoot, writeYaml } from './util.js';

let root: string;
let task: { train: string; valid: string };
beforeAll(() => {
  root = tempRoot('metrics');
  task = makeTask(join(root, 'task'), 10, 3, 8);
});
afterAll(() => cleanup(root));

describe('metrics.jsonl', () => {
  it('one line per step {step, loss, lr, tokens_per_s, epoch, grad_norm}; evaluations {step, eval_loss, eval_ppl}', async () => {
    const dir = join(root, 'run');
    const cfg = tk.resolveConfig(baseConfig(task, dir, { steps: 5, evalEvery: 2, lr: 0.02, warmupSteps: 2, schedule: 'linear' }));
    const r = await tk.train(cfg, { quiet: true });
    const lines = readMetrics(dir);
    const steps = lines.filter((m) => 'loss' in m);
    const evals = lines.filter((m) => 'eval_loss' in m);
    expect(steps.map((m) => m.step)).toEqual([1, 2, 3, 4, 5]);
    for (const m of steps) {
      for (const k of ['step', 'loss', 'lr', 'tokens_per_s', 'epoch', 'grad_norm']) {
        expect(typeof m[k], `${k} in ${JSON.stringify(m)}`).toBe('number');
        expect(Number.isFinite(m[k] as number), `${k} in ${JSON.stringify(m)}`).toBe(true);
      }
      expect(m.tokens_per_s as number).toBeGreaterThan(0);
    }
    // the learning rates are the schedule's: warmup 0.01, 0.02, then linear decay over the remaining 3 steps
    const lrs = steps.map((m) => m.lr as number);
    const want = [0, 1, 2, 3, 4].map((s) => 0.02 * tk.lrMultiplier(s, { kind: 'linear', warmupSteps: 2, totalSteps: 5 }));
    expect(lrs).toEqual(want);
    // epoch is fractional progress through the data: 10 examples in micro-batches of 4, 4, 2; two per step.
    // Step 3 ends exactly at the end of the second epoch (the short last batch counts 2, not 4)
    const epochs = steps.map((m) => m.epoch as number);
    [0.8, 1.4, 2.0, 2.8, 3.4].forEach((e, i) => expect(epochs[i], `epoch at step ${i + 1}`).toBeCloseTo(e, 12));
    // evaluations at steps 2 and 4 (evalEvery) and at the end
    expect(evals.map((m) => m.step)).toEqual([2, 4, 5]);
    for (const e of evals) {
      expect(Number.isFinite(e.eval_loss as number)).toBe(true);
      expect(e.eval_ppl as number).toBeCloseTo(Math.exp(e.eval_loss as number), 6);
      expect(e.eval_tokens as number).toBeGreaterThan(0);
    }
    expect(r.evals.map((e) => e.eval_loss)).toEqual(evals.map((e) => e.eval_loss));
    expect(r.lastLoss).toBe(steps[4]!.loss);
  });

  it('evaluateLm equals the logged evaluation of the final model', async () => {
    const dir = join(root, 'eval-check');
    const r = await tk.train(tk.resolveConfig(baseConfig(task, dir, { steps: 2 })), { quiet: true });
    const tok = tk.byteTokenizer();
    const valid = tk.loadJsonlSync(task.valid, tok, { kind: 'lm', seqLen: 128 });
    const e = tk.evaluateLm(r.model as tk.PreTrainedModel, valid, 4, tok.padTokenId ?? 0);
    expect(e.loss).toBeCloseTo(r.evals[r.evals.length - 1]!.eval_loss, 12);
  });
});

describe('progress', () => {
  it('non-TTY (the CLI with piped stderr): a plain line every --log-every steps and at the last', async () => {
    const dir = join(root, 'cli');
    const yaml = writeYaml(join(root, 'cli.yaml'), baseConfig(task, dir, { steps: 5 }));
    const r = await runCli(['train', '--config', yaml, '--log-every', '2']);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('step '));
    expect(lines.map((l) => Number(/^step (\d+)\//.exec(l)![1]))).toEqual([2, 4, 5]);
    for (const l of lines) expect(l).toMatch(/^step \d+\/5 loss \d+\.\d{4} lr \d\.\d{2}e[-+]\d+ \d+ tok\/s eta \S+$/);
    expect(r.stderr).not.toMatch(/\x1b\[/);  // no terminal control codes in a log file
    expect(r.stderr).toMatch(/eval step 5: loss \d/);
    expect(r.stdout).toMatch(/done at step 5\/5: loss \d+\.\d+, eval loss \d/);
  });

  it('--quiet prints no progress', async () => {
    const dir = join(root, 'quiet');
    const yaml = writeYaml(join(root, 'quiet.yaml'), baseConfig(task, dir, { steps: 2 }));
    const r = await runCli(['train', '--config', yaml, '--log-every', '1', '--quiet']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
  });

  it('TTY: a bar with step, loss, lr, tok/s and ETA', () => {
    const tty = Object.assign(new PassThrough(), { isTTY: true, columns: 160 });
    let text = '';
    tty.on('data', (d: Buffer) => (text += d.toString()));
    const p = new tk.Progress(10, 5, tty);
    for (let s = 1; s <= 4; s++) p.update({ step: s, loss: 2.5 - s * 0.1, lr: 1e-3, tokens_per_s: 12345, epoch: s / 10 });
    p.stop();
    // eslint-disable-next-line no-control-regex
    const plain = text.replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1b[78]/g, '');
    expect(plain).toMatch(/step 4\/10/);
    expect(plain).toMatch(/loss 2\.1000/);
    expect(plain).toMatch(/lr 1\.00e-3/);
    expect(plain).toMatch(/12345 tok\/s/);
    expect(plain).toMatch(/ETA \S+/);
    expect(plain).not.toMatch(/^step 4\/10 loss/m);  // not the plain line format
  });

  it('non-TTY stream: plain lines only at multiples of logEvery and the last step', () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (d: Buffer) => (text += d.toString()));
    const p = new tk.Progress(7, 3, out);
    for (let s = 1; s <= 7; s++) p.update({ step: s, loss: 1, lr: 0.5, tokens_per_s: 10, epoch: 0 });
    p.message('hello');
    p.stop();
    expect(text.split('\n').filter(Boolean)).toEqual([
      expect.stringMatching(/^step 3\/7 loss 1\.0000 lr 5\.00e-1 10 tok\/s eta /),
      expect.stringMatching(/^step 6\/7 /),
      expect.stringMatching(/^step 7\/7 .* eta 0s$/),
      'hello',
    ]);
  });
});
