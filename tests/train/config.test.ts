// The run configuration: YAML and JSON files, every field also a flag (flags
// override the file), defaults, required fields, and errors that name the
// field — ConfigError in the API, a non-zero exit with the field on stderr in the CLI.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import { baseConfig, cleanup, makeTask, runCli, tempRoot, writeYaml } from './util.js';

let root: string;
let task: { train: string; valid: string };
beforeAll(() => {
  root = tempRoot('config');
  task = makeTask(join(root, 'task'), 6, 2, 10);
});
afterAll(() => cleanup(root));

const minimal = () => ({ model: { model_type: 'gpt2', n_embd: 16, n_layer: 1, n_head: 2 }, data: 'train.jsonl', outDir: 'out' });

function configError(fn: () => unknown): InstanceType<typeof tk.ConfigError> {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(tk.ConfigError);
    return e as InstanceType<typeof tk.ConfigError>;
  }
  throw new Error('expected a ConfigError');
}

describe('config files', () => {
  it('YAML and JSON files give the same configuration, defaults filled in', () => {
    const values = baseConfig(task, join(root, 'x'), { method: 'lora', lora: { r: 4, alpha: 8, targetModules: ['c_attn'] } });
    const y = writeYaml(join(root, 'a.yaml'), values);
    const j = join(root, 'a.json');
    writeFileSync(j, JSON.stringify(values, null, 2));
    expect(readFileSync(y, 'utf8')).toMatch(/^model:\n {2}model_type: "gpt2"$/m);
    const fromYaml = tk.resolveConfig(tk.readConfigFile(y), {}, y);
    const fromJson = tk.resolveConfig(tk.readConfigFile(j), {}, j);
    expect(fromYaml).toEqual(fromJson);
    expect(fromYaml.lora).toEqual({ r: 4, alpha: 8, dropout: 0, targetModules: ['c_attn'], useRslora: false });
    expect(fromYaml.batchSize).toBe(4);
    expect(fromYaml.optimizer).toBe('adamw');  // default
    expect(fromYaml.logEvery).toBe(10);  // default
  });

  it('defaults: epochs 1 when neither steps nor epochs is given', () => {
    const c = tk.resolveConfig(minimal());
    expect(c.epochs).toBe(1);
    expect(c.steps).toBeUndefined();
    expect(c.method).toBe('lora');
    expect(c.seed).toBe(42);
  });

  it('flags override the file (strings, as the CLI passes them)', () => {
    const c = tk.resolveConfig({ ...minimal(), batchSize: 8, lora: { r: 16 } }, { batchSize: '4', 'lora.r': '4', packing: 'true', 'lora.targetModules': 'c_attn,c_proj', lr: '1e-3' });
    expect(c.batchSize).toBe(4);
    expect(c.lora.r).toBe(4);
    expect(c.packing).toBe(true);
    expect(c.lora.targetModules).toEqual(['c_attn', 'c_proj']);
    expect(c.lr).toBe(1e-3);
  });

  it('run length: steps wins over epochs in a file; an --epochs flag overrides the file\'s steps', () => {
    expect(tk.resolveConfig({ ...minimal(), steps: 5, epochs: 2 }).steps).toBe(5);
    const c = tk.resolveConfig({ ...minimal(), steps: 5 }, { epochs: '2' });
    expect(c.steps).toBeUndefined();
    expect(c.epochs).toBe(2);
    expect(tk.resolveConfig({ ...minimal(), epochs: 3 }, { steps: '7' }).steps).toBe(7);
  });

  it('an inline model config as a flag (JSON)', () => {
    const c = tk.resolveConfig({ data: 'd', outDir: 'o' }, { model: '{"model_type":"gpt2","n_embd":16}' });
    expect(c.model).toEqual({ model_type: 'gpt2', n_embd: 16 });
  });
});

describe('config errors name the field', () => {
  it('unknown fields (top level and nested)', () => {
    expect(configError(() => tk.resolveConfig({ ...minimal(), batchsize: 4 })).field).toBe('batchsize');
    const e = configError(() => tk.resolveConfig({ ...minimal(), lora: { rank: 4 } }));
    expect(e.field).toBe('lora.rank');
    expect(e.message).toMatch(/lora\.rank.*unknown field/);
    expect(configError(() => tk.resolveConfig(minimal(), { nope: '1' })).field).toBe('nope');
  });

  it('bad values', () => {
    const cases: Array<[Record<string, unknown>, string, RegExp]> = [
      [{ batchSize: 0 }, 'batchSize', />= 1/],
      [{ batchSize: 'four' }, 'batchSize', /number/],
      [{ batchSize: 2.5 }, 'batchSize', /integer/],
      [{ lr: -1 }, 'lr', />= 0/],
      [{ method: 'qlora' }, 'method', /one of full, lora/],
      [{ schedule: 'step' }, 'schedule', /constant, linear, cosine/],
      [{ packing: 'yes' }, 'packing', /true or false/],
      [{ lora: { dropout: 2 } }, 'lora.dropout', /<= 1/],
      [{ lora: { targetModules: [] } }, 'lora.targetModules', /module names/],
      [{ model: 42 }, 'model', /model directory/],
      [{ data: '' }, 'data', /non-empty string/],
      [{ device: 'tpu' }, 'device', /cpu, cuda/],
    ];
    for (const [patch, field, re] of cases) {
      const v: Record<string, unknown> = { ...minimal(), ...patch };
      const e = configError(() => tk.resolveConfig(v, {}, 'run.yaml'));
      expect(e.field, JSON.stringify(patch)).toBe(field);
      expect(e.message, JSON.stringify(patch)).toContain(`run.yaml: field '${field}'`);
      expect(e.message, JSON.stringify(patch)).toMatch(re);
    }
  });

  it('bad flag values name the flag', () => {
    const e = configError(() => tk.resolveConfig(minimal(), { batchSize: 'x' }));
    expect(e.field).toBe('batchSize');
    expect(e.message).toMatch(/--batch-size: field 'batchSize': must be a number/);
    expect(configError(() => tk.resolveConfig(minimal(), { 'lora.r': '0' })).message).toMatch(/--lora-r/);
  });

  it('required fields', () => {
    for (const field of ['model', 'data', 'outDir']) {
      const v: Record<string, unknown> = minimal();
      delete v[field];
      const e = configError(() => tk.resolveConfig(v));
      expect(e.field).toBe(field);
      expect(e.message).toMatch(/is required/);
    }
  });

  it('unreadable and malformed files', () => {
    expect(configError(() => tk.readConfigFile(join(root, 'missing.yaml'))).message).toMatch(/missing\.yaml: cannot read/);
    const bad = join(root, 'bad.yaml');
    writeFileSync(bad, 'model: [unclosed\n');
    expect(configError(() => tk.readConfigFile(bad)).message).toMatch(/bad\.yaml: invalid YAML/);
    const list = join(root, 'list.yaml');
    writeFileSync(list, '- a\n- b\n');
    expect(configError(() => tk.readConfigFile(list)).message).toMatch(/list\.yaml: must be a mapping/);
  });
});

describe('CLI', () => {
  it('every config field is a train flag', async () => {
    const r = await runCli(['train', '--help']);
    expect(r.code).toBe(0);
    for (const field of Object.keys(tk.TRAIN_CONFIG_FIELDS)) expect(r.stdout, field).toContain(tk.flagName(field) + ' ');
    expect(r.stdout).toContain('--resume');
    expect(r.stdout).toContain('--config');
  });

  it('flags override the file: --batch-size 2 --lora-r 4 (and a boolean flag without a value)', async () => {
    const dir = join(root, 'override');
    const yaml = writeYaml(join(root, 'override.yaml'), baseConfig(task, dir, { method: 'lora', batchSize: 8, lora: { r: 16 }, steps: 1 }));
    const r = await runCli(['train', '--config', yaml, '--batch-size', '2', '--lora-r', '4', '--packing', '--quiet']);
    expect(r.code, r.stderr).toBe(0);
    const state = JSON.parse(readFileSync(join(dir, 'checkpoint-1', 'trainer_state.json'), 'utf8')) as { config: tk.TrainConfig };
    expect(state.config.batchSize).toBe(2);
    expect(state.config.lora.r).toBe(4);
    expect(state.config.packing).toBe(true);
    const adapterCfg = JSON.parse(readFileSync(join(dir, 'adapter', 'adapter_config.json'), 'utf8')) as { r: number };
    expect(adapterCfg.r).toBe(4);
  });

  it('a run from flags alone (no file)', async () => {
    const dir = join(root, 'flags-only');
    const r = await runCli([
      'train', '--model', '{"model_type":"gpt2","n_embd":16,"n_layer":1,"n_head":2,"n_positions":160}', '--tokenizer', 'byte',
      '--data', task.train, '--out-dir', dir, '--steps', '2', '--batch-size', '2', '--seq-len', '128', '--method', 'full', '--quiet',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/done at step 2\/2/);
  });

  it('errors exit non-zero and name the field', async () => {
    const dir = join(root, 'errs');
    const unknown = writeYaml(join(root, 'unknown.yaml'), { ...baseConfig(task, dir), learningRate: 0.1 });
    const cases: Array<[string[], RegExp]> = [
      [['train', '--config', unknown], /unknown\.yaml: field 'learningRate': unknown field/],
      [['train', '--config', writeYaml(join(root, 'ok.yaml'), baseConfig(task, dir)), '--batch-size', '0'], /--batch-size: field 'batchSize': must be >= 1/],
      [['train', '--config', join(root, 'ok.yaml'), '--method', 'dora'], /--method: field 'method': must be one of full, lora/],
      [['train', '--config', join(root, 'ok.yaml'), '--schedul', 'cosine'], /unknown option '--schedul'/],
      [['train', '--data', task.train, '--out-dir', dir], /field 'model': is required/],
    ];
    for (const [args, re] of cases) {
      const r = await runCli(args);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.stderr, args.join(' ')).toMatch(re);
    }
  });
});
