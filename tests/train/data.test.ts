// Data errors surface with file:line (API and CLI); skipBadLines /
// --skip-bad-lines counts the malformed lines, reports them and trains on the rest.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import { baseConfig, cleanup, makeTask, runCli, tempRoot, writeYaml } from './util.js';

let root: string;
let task: { train: string; valid: string };
let badTrain: string, badValid: string;
beforeAll(() => {
  root = tempRoot('data');
  task = makeTask(join(root, 'task'), 8, 3, 12);
  // line 3: not JSON; line 6: a record with no known format
  const lines = readFileSync(task.train, 'utf8').trim().split('\n');
  lines.splice(2, 0, '{"prompt": "Review: broken');
  lines.splice(5, 0, '{"question": "what?"}');
  badTrain = join(root, 'bad-train.jsonl');
  writeFileSync(badTrain, lines.join('\n') + '\n');
  const v = readFileSync(task.valid, 'utf8').trim().split('\n');
  v.splice(1, 0, '{"prompt": 3, "completion": " positive"}');
  badValid = join(root, 'bad-valid.jsonl');
  writeFileSync(badValid, v.join('\n') + '\n');
});
afterAll(() => cleanup(root));

describe('data errors', () => {
  it('a malformed training line stops the run with file:line', async () => {
    const cfg = tk.resolveConfig(baseConfig(task, join(root, 'a'), { data: badTrain, steps: 1 }));
    await expect(tk.train(cfg, { quiet: true })).rejects.toThrow(new RegExp(`${badTrain.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3: `));
  });

  it('a malformed validation line too', async () => {
    const cfg = tk.resolveConfig(baseConfig(task, join(root, 'b'), { validationData: badValid, steps: 1 }));
    await expect(tk.train(cfg, { quiet: true })).rejects.toThrow(/bad-valid\.jsonl:2: /);
  });

  it('a missing data file is named', async () => {
    const cfg = tk.resolveConfig(baseConfig(task, join(root, 'c'), { data: join(root, 'nope.jsonl'), steps: 1 }));
    await expect(tk.train(cfg, { quiet: true })).rejects.toThrow(/nope\.jsonl/);
  });

  it('the CLI exits non-zero with file:line on stderr', async () => {
    const yaml = writeYaml(join(root, 'bad.yaml'), baseConfig(task, join(root, 'd'), { data: badTrain, steps: 1 }));
    const r = await runCli(['train', '--config', yaml]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/bad-train\.jsonl:3: /);
  });

  it('skipBadLines: counted (training and validation files), and the run completes', async () => {
    const cfg = tk.resolveConfig(baseConfig(task, join(root, 'e'), { data: badTrain, validationData: badValid, steps: 2, skipBadLines: true }));
    const r = await tk.train(cfg, { quiet: true });
    expect(r.step).toBe(2);
    expect(r.skippedLines).toBe(3);
    expect(r.evals.at(-1)!.eval_tokens).toBeGreaterThan(0);
  });

  it('--skip-bad-lines (no value needed): reported on stderr and in the summary', async () => {
    const yaml = writeYaml(join(root, 'skip.yaml'), baseConfig(task, join(root, 'f'), { data: badTrain, steps: 2 }));
    const r = await runCli(['train', '--config', yaml, '--skip-bad-lines']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/skipped 2 malformed data line\(s\) \(first: .*bad-train\.jsonl:3: /);
    expect(r.stdout).toMatch(/done at step 2\/2.*2 bad data line\(s\) skipped/);
  });
});
