// `tunekit generate` against model.generate on the same directory.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as tk from 'tunekit';

const cli = resolve(__dirname, '..', '..', 'dist', 'cli', 'index.js');
const dir = mkdtempSync(join(tmpdir(), 'tk-cli-gen-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function setup(): tk.PreTrainedModel {
  tk.manualSeed(7);
  const tok = tk.byteTokenizer();
  const model = tk.createModel({ model_type: 'gpt2', vocab_size: tok.vocabSize, n_positions: 64, n_embd: 32, n_layer: 2, n_head: 2 }) as tk.PreTrainedModel;
  model.save(dir);
  tok.saveSync(dir);
  return tk.loadModel(dir) as tk.PreTrainedModel;
}

describe('tunekit generate', () => {
  const model = setup();
  const run = (args: string[]) => execFileSync(process.execPath, [cli, 'generate', '--model', dir, ...args], { encoding: 'utf8' });

  it('prints the prompt and the greedy completion of model.generate (streamed and not)', () => {
    const want = model.generate(['Hello'], { maxNewTokens: 6 })[0]!.text!;
    expect(run(['--prompt', 'Hello', '--max-new-tokens', '6', '--no-stream'])).toBe(`Hello${want}\n`);
    expect(run(['--prompt', 'Hello', '--max-new-tokens', '6'])).toBe(`Hello${want}\n`);
  });

  it('sampling options are passed through and reproducible by seed', () => {
    const args = ['--prompt', 'ab', '--max-new-tokens', '8', '--temperature', '1.5', '--top-k', '20', '--seed', '3', '--no-stream'];
    const a = run(args), b = run(args);
    expect(a).toBe(b);
    const want = model.generate(['ab'], { maxNewTokens: 8, temperature: 1.5, topK: 20, seed: 3 })[0]!.text!;
    expect(a).toBe(`ab${want}\n`);
  });

  it('a bad flag value or a missing model directory is an error with a message', () => {
    expect(() => run(['--prompt', 'x', '--max-new-tokens', '-3'])).toThrow(/max-new-tokens/);
    expect(() => execFileSync(process.execPath, [cli, 'generate', '--model', join(dir, 'nope'), '--prompt', 'x'], { encoding: 'utf8', stdio: 'pipe' })).toThrow(/config.json/);
  });
});
