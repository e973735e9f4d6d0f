// Missing and malformed tokenizer files: every error names the file, and the field when one is bad.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import { gpt2Config, gpt2Json, llamaConfig, llamaLegacyJson, tmpDir, writeDir } from './fixtures.js';

async function loadError(files: Record<string, unknown>): Promise<tk.TokenizerFileError> {
  const dir = writeDir(files);
  const err = await tk.loadTokenizer(dir).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(tk.TokenizerFileError);
  // the sync loader fails the same way
  expect(() => tk.loadTokenizerSync(dir)).toThrow((err as Error).message);
  return err as tk.TokenizerFileError;
}

const withConfig = (extra: Record<string, unknown>) => loadError({ 'tokenizer.json': gpt2Json(), 'tokenizer_config.json': gpt2Config(extra) });
const withJson = (json: unknown) => loadError({ 'tokenizer.json': json, 'tokenizer_config.json': gpt2Config() });

describe('missing files', () => {
  it('tokenizer.json', async () => {
    const e = await loadError({ 'tokenizer_config.json': gpt2Config() });
    expect(e.file).toMatch(/tokenizer\.json$/);
    expect(e.message).toMatch(/tokenizer\.json: not found/);
  });
  it('tokenizer_config.json', async () => {
    const e = await loadError({ 'tokenizer.json': gpt2Json() });
    expect(e.message).toMatch(/tokenizer_config\.json: not found/);
  });
  it('a directory that does not exist', async () => {
    await expect(tk.loadTokenizer(join(tmpDir(), 'nope'))).rejects.toThrow(/tokenizer\.json: not found/);
  });
  it('tokenizer.json is a directory', async () => {
    const dir = tmpDir();
    mkdirSync(join(dir, 'tokenizer.json'));
    writeFileSync(join(dir, 'tokenizer_config.json'), '{}');
    await expect(tk.loadTokenizer(dir)).rejects.toThrow(/tokenizer\.json: cannot be read/);
  });
});

describe('malformed tokenizer.json', () => {
  it('invalid JSON', async () => {
    const e = await withJson('{"model": ');
    expect(e.message).toMatch(/tokenizer\.json: is not valid JSON/);
  });
  it('not an object', async () => {
    expect((await withJson('[1, 2]')).message).toMatch(/tokenizer\.json: must contain a JSON object/);
  });
  it('no model', async () => {
    const e = await withJson({ added_tokens: [] });
    expect(e.field).toBe('model');
    expect(e.message).toMatch(/tokenizer\.json: field "model"/);
  });
  it('unknown model type', async () => {
    const j = gpt2Json();
    (j.model as Record<string, unknown>).type = 'WordLevel';
    expect((await withJson(j)).field).toBe('model.type');
  });
  it('bad vocab entry and bad merge', async () => {
    const j = gpt2Json();
    (j.model as { vocab: Record<string, unknown> }).vocab.x = 'seven';
    expect((await withJson(j)).field).toBe('model.vocab');
    const k = gpt2Json();
    (k.model as { merges: unknown[] }).merges.push('nospace');
    const e = await withJson(k);
    expect(e.field).toBe('model.merges[7]');
  });
  it('bad added_tokens', async () => {
    expect((await withJson({ ...gpt2Json(), added_tokens: {} })).field).toBe('added_tokens');
    expect((await withJson({ ...gpt2Json(), added_tokens: [{ id: 'x', content: 'y' }] })).field).toBe('added_tokens[0]');
  });
  it('a component the library does not know', async () => {
    const e = await withJson({ ...gpt2Json(), decoder: { type: 'Frobnicate' } });
    expect(e.message).toMatch(/tokenizer\.json: is not supported by @huggingface\/tokenizers: .*Frobnicate/);
  });
});

describe('malformed tokenizer_config.json', () => {
  it('invalid JSON', async () => {
    const e = await loadError({ 'tokenizer.json': gpt2Json(), 'tokenizer_config.json': '{bos_token: 1}' });
    expect(e.message).toMatch(/tokenizer_config\.json: is not valid JSON/);
  });
  it.each([
    [{ bos_token: 5 }, 'bos_token'],
    [{ eos_token: { text: 'x' } }, 'eos_token'],
    [{ pad_token: ['a'] }, 'pad_token'],
    [{ add_bos_token: 'yes' }, 'add_bos_token'],
    [{ add_eos_token: true, eos_token: null }, 'add_eos_token'],
    [{ model_max_length: -1 }, 'model_max_length'],
    [{ model_max_length: '2048' }, 'model_max_length'],
    [{ chat_template: 7 }, 'chat_template'],
    [{ chat_template: [{ name: 'default' }] }, 'chat_template[0]'],
    [{ padding_side: 'middle' }, 'padding_side'],
    [{ additional_special_tokens: 'x' }, 'additional_special_tokens'],
    [{ split_special_tokens: 1 }, 'split_special_tokens'],
    // a special token that tokenizer.json does not have
    [{ bos_token: '<s>' }, 'bos_token'],
    [{ additional_special_tokens: ['<|im_end|>', '<nope>'] }, 'additional_special_tokens[1]'],
  ])('%j names %s', async (extra, field) => {
    const e = await withConfig(extra);
    expect(e.field).toBe(field);
    expect(e.file).toMatch(/tokenizer_config\.json$/);
    expect(e.message).toContain(`tokenizer_config.json: field "${field}"`);
  });
  it('special_tokens_map.json errors name that file', async () => {
    const e = await loadError({
      'tokenizer.json': llamaLegacyJson(),
      'tokenizer_config.json': llamaConfig(),
      'special_tokens_map.json': { eos_token: 3 },
    });
    expect(e.message).toMatch(/special_tokens_map\.json: field "eos_token"/);
    const f = await loadError({
      'tokenizer.json': llamaLegacyJson(),
      'tokenizer_config.json': llamaConfig(),
      'special_tokens_map.json': { pad_token: '<pad>' },
    });
    expect(f.message).toMatch(/special_tokens_map\.json: field "pad_token" "<pad>" is not a token of .*tokenizer\.json/);
  });
});
