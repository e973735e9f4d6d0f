// Shared pieces of the trainer tests: tiny models (byte tokenizer, inline
// GPT-2 configs), the sentiment task from scripts/make-corpus.mjs, run
// directories under os.tmpdir(), bit-exact parameter comparison and a CLI
// runner (node dist/cli/index.js as a child process).
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import * as tk from 'tunekit';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = join(REPO, 'dist/cli/index.js');

/** GPT-2, 2 layers of width 32; dropout on so that resuming has to restore the dropout stream. */
export const TINY_GPT2 = {
  model_type: 'gpt2',
  n_embd: 32,
  n_layer: 2,
  n_head: 2,
  n_positions: 160,
  resid_pdrop: 0.1,
  embd_pdrop: 0.1,
  attn_pdrop: 0.1,
} as const;

/** A fresh directory under os.tmpdir(); remove with cleanup(). */
export function tempRoot(tag: string): string {
  return mkdtempSync(join(tmpdir(), `tk-train-${tag}-`));
}

export function cleanup(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** The prompt/completion sentiment task: <dir>/train.jsonl, <dir>/valid.jsonl. */
export function makeTask(dir: string, train: number, valid: number, seed = 2): { train: string; valid: string } {
  mkdirSync(dir, { recursive: true });
  execFileSync(process.execPath, [join(REPO, 'scripts/make-corpus.mjs'), 'task', dir, String(train), String(valid), String(seed)], { stdio: 'ignore' });
  return { train: join(dir, 'train.jsonl'), valid: join(dir, 'valid.jsonl') };
}

/** A run configuration (file values, before resolveConfig) for the tiny model. */
export function baseConfig(task: { train: string; valid: string }, outDir: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model: { ...TINY_GPT2 },
    tokenizer: 'byte',
    data: task.train,
    validationData: task.valid,
    method: 'full',
    batchSize: 4,
    gradAccum: 2,
    seqLen: 128,
    steps: 6,
    lr: 0.01,
    warmupSteps: 2,
    schedule: 'cosine',
    lora: { r: 4, alpha: 8 },
    outDir,
    seed: 7,
    ...extra,
  };
}

export function writeYaml(path: string, cfg: Record<string, unknown>): string {
  // JSON is YAML; a few plain YAML lines on top make it a real YAML file
  const { model, lora, ...rest } = cfg as { model: string | Record<string, unknown>; lora?: Record<string, unknown> };
  const lines = ['# tunekit run'];
  for (const [k, v] of Object.entries(rest)) lines.push(`${k}: ${JSON.stringify(v)}`);
  if (typeof model === 'string') lines.push(`model: ${JSON.stringify(model)}`);
  else {
    lines.push('model:');
    for (const [k, v] of Object.entries(model)) lines.push(`  ${k}: ${JSON.stringify(v)}`);
  }
  if (lora) {
    lines.push('lora:');
    for (const [k, v] of Object.entries(lora)) lines.push(`  ${k}: ${JSON.stringify(v)}`);
  }
  writeFileSync(path, lines.join('\n') + '\n');
  return path;
}

// ---------------------------------------------------------------- comparisons
export function bitsOf(x: Float32Array): Uint8Array {
  return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
}

export function sameBits(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && Buffer.from(bitsOf(a)).equals(Buffer.from(bitsOf(b)));
}

export function paramsOf(model: tk.Module): Record<string, Float32Array> {
  return Object.fromEntries(model.namedParameters().map(([n, t]) => [n, t.toArray() as Float32Array]));
}

export function tensorsOf(ts: Record<string, tk.Tensor>): Record<string, Float32Array> {
  return Object.fromEntries(Object.entries(ts).map(([n, t]) => [n, t.toArray() as Float32Array]));
}

/** Every tensor equal bit for bit (same names). */
export function expectSameBits(a: Record<string, Float32Array>, b: Record<string, Float32Array>, what: string): void {
  expect(Object.keys(b).sort(), `${what}: tensor names`).toEqual(Object.keys(a).sort());
  const differ = Object.keys(a).filter((k) => !sameBits(a[k]!, b[k]!));
  expect(differ, `${what}: tensors that differ`).toEqual([]);
}

export function relErr(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-30));
}

export function readMetrics(outDir: string): Array<Record<string, unknown>> {
  const p = join(outDir, 'metrics.jsonl');
  if (!existsSync(p)) return [];
  return readFileSync(p, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

// ---------------------------------------------------------------- the CLI
export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function spawnCli(args: string[]): ChildProcessWithoutNullStreams {
  return spawn(process.execPath, [CLI, ...args], { cwd: REPO, stdio: 'pipe', env: { ...process.env, NO_COLOR: '1' } });
}

/** Collects a child's output; resolves when it exits. */
export function finished(child: ChildProcessWithoutNullStreams): Promise<CliResult> {
  let stdout = '', stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

export function runCli(args: string[]): Promise<CliResult> {
  return finished(spawnCli(args));
}

/** Resolves with the stderr text seen so far once `re` matches it (rejects if the child exits first). */
export function waitForStderr(child: ChildProcessWithoutNullStreams, re: RegExp, timeoutMs = 30_000): Promise<string> {
  let seen = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re} in stderr:\n${seen}`)), timeoutMs);
    const onData = (d: Buffer | string) => {
      seen += d.toString();
      if (re.test(seen)) {
        clearTimeout(timer);
        child.stderr.off('data', onData);
        resolve(seen);
      }
    };
    child.stderr.on('data', onData);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (!re.test(seen)) reject(new Error(`child exited (${code ?? signal}) before ${re} appeared in stderr:\n${seen}`));
    });
  });
}

/** Seeded uniform numbers (mulberry32) for reproducible kill delays. */
export function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
