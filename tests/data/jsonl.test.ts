// JSONL files: streaming line reader, empty lines, CRLF/BOM, malformed lines reported with
// file:line (or skipped and counted with skipBadLines).
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as tk from 'tunekit';

const EOS = 257;
const tok = tk.byteTokenizer();
const dir = mkdtempSync(join(tmpdir(), 'tunekit-data-'));
let n = 0;
function file(content: string | Uint8Array): string {
  const p = join(dir, `f${n++}.jsonl`);
  writeFileSync(p, content);
  return p;
}

describe('reading', () => {
  it('loadJsonl and loadJsonlSync read the same examples; empty and blank lines are ignored', async () => {
    const p = file('{"text":"a"}\n\n   \n{"prompt":"b","completion":"c"}\n\t\n');
    const ds = await tk.loadJsonl(p, tok);
    expect(ds.examples).toEqual([
      { inputIds: [97, EOS], labels: [97, EOS] },
      { inputIds: [98, 99, EOS], labels: [-100, 99, EOS] },
    ]);
    expect(ds.source).toBe(p);
    expect(ds.stats.lines).toBe(2);
    expect(tk.loadJsonlSync(p, tok).examples).toEqual(ds.examples);
  });

  it('CRLF line ends, a byte order mark, and no final newline', async () => {
    const p = file('\uFEFF{"text":"a"}\r\n{"text":"b"}');
    expect((await tk.loadJsonl(p, tok, { kind: 'lm' })).examples.map((e) => e.inputIds)).toEqual([
      [97, EOS],
      [98, EOS],
    ]);
  });

  it('streams lines across chunk boundaries (multi-byte characters split between chunks)', async () => {
    const texts = Array.from({ length: 300 }, (_, i) => `${i} héllo wörld 😀 ${'x'.repeat(i % 17)}`);
    const content = texts.map((t) => JSON.stringify({ text: t })).join('\n') + '\n';
    const p = file(content);
    for (const chunk of [1, 3, 7, 64, 1 << 20]) {
      const lines = [...tk.readLinesSync(p, chunk)];
      expect(lines.map((l) => JSON.parse(l.text).text)).toEqual(texts);
      expect(lines.map((l) => l.lineNumber)).toEqual(texts.map((_, i) => i + 1));
      const asyncLines: string[] = [];
      for await (const l of tk.readLines(p, chunk)) asyncLines.push(l.text);
      expect(asyncLines).toEqual(lines.map((l) => l.text));
    }
    const ds = await tk.loadJsonl(p, tok, { format: 'text' });
    expect(ds.length).toBe(300);
    expect(tok.decode(ds.examples[299]!.inputIds, { skipSpecialTokens: true })).toBe(texts[299]);
  });

  it('a missing file rejects with the path', async () => {
    await expect(tk.loadJsonl(join(dir, 'nope.jsonl'), tok)).rejects.toThrow(/nope\.jsonl/);
    expect(() => tk.loadJsonlSync(join(dir, 'nope.jsonl'), tok)).toThrow(/nope\.jsonl/);
  });
});

describe('malformed lines', () => {
  const cases: Array<[string, string, tk.DataProblem, RegExp]> = [
    ['bad JSON', '{"text": "a",}', 'bad_json', /:3: bad JSON: /],
    ['not an object', '["a"]', 'not_object', /:3: wrong type: a line must be a JSON object, got array$/],
    ['missing field', '{"prompt": "a"}', 'missing_field', /:3: missing field "completion" \(prompt-completion record\)$/],
    ['wrong type', '{"text": 5}', 'wrong_type', /:3: wrong type: "text" must be a string, got number$/],
    ['wrong message type', '{"messages": [{"role": "user", "content": ["x"]}]}', 'wrong_type', /:3: wrong type: "messages"\[0\]\.content must be a string, got array$/],
    ['missing message role', '{"messages": [{"content": "x"}]}', 'missing_field', /:3: missing field "role" in "messages"\[0\]$/],
    ['unknown format', '{"foo": 1, "bar": 2}', 'unknown_format', /:3: unknown format: fields "foo", "bar"; expected one of/],
    ['bad label', '{"text": "a", "label": 1.5}', 'wrong_type', /:3: wrong type: "label" must be a string or a non-negative integer, got 1\.5$/],
  ];

  for (const [what, line, problem, message] of cases) {
    it(`${what}: reported with file and line number`, async () => {
      const first = line.includes('label') ? '{"text":"ok","label":0}' : '{"text":"ok"}';
      const p = file(`${first}\n\n${line}\n{"text":"b"}\n`);
      let err: unknown;
      try {
        await tk.loadJsonl(p, tok);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(tk.DataLineError);
      const e = err as tk.DataLineError;
      expect(e.message.startsWith(`${p}:3: `)).toBe(true);
      expect(e.message).toMatch(message);
      expect(e.file).toBe(p);
      expect(e.line).toBe(3);
      expect(e.problem).toBe(problem);
      expect(() => tk.loadJsonlSync(p, tok)).toThrow(e.message);
    });
  }

  it('a chat template failure is reported for its line', () => {
    const t = tk.byteTokenizer({ chatTemplate: "{{ raise_exception('roles must alternate') }}" });
    expect(() => tk.datasetFromJsonl('{"messages":[{"role":"assistant","content":"x"}]}', t, { source: 'chat.jsonl' })).toThrow(
      /^chat\.jsonl:1: tokenizer or chat template failed: .*roles must alternate/,
    );
  });

  it('skipBadLines: bad lines are skipped and counted, the first reasons kept', async () => {
    const lines = ['{"text":"a"}', 'nope', '', '{"text":1}', '{"text":"b"}', '{"x":1}', '{"prompt":"p"}', '{"text":"c"}'];
    const p = file(lines.join('\n'));
    const ds = await tk.loadJsonl(p, tok, { kind: 'lm', skipBadLines: true, maxSkippedReasons: 3 });
    expect(ds.examples.map((e) => e.inputIds[0])).toEqual([97, 98, 99]);
    expect(ds.skipped).toBe(4);
    expect(ds.stats.skipped).toBe(4);
    expect(ds.skippedReasons).toHaveLength(3);
    expect(ds.skippedReasons[0]).toMatch(new RegExp(`^${p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2: bad JSON`));
    expect(ds.skippedReasons[1]).toBe(`${p}:4: wrong type: "text" must be a string, got number`);
    expect(ds.skippedReasons[2]).toMatch(/:6: unknown format/);
    // skipped records survive splits and packing as metadata
    expect(ds.split({ count: 1 }).train.skipped).toBe(4);
  });

  it('skipBadLines also skips lines of another kind', () => {
    const ds = tk.datasetFromJsonl('{"text":"a","label":"x"}\n{"text":"b"}\n{"text":"c","label":"y"}', tok, { skipBadLines: true });
    expect(ds.kind).toBe('classification');
    expect(ds.length).toBe(2);
    expect(ds.skippedReasons).toEqual(['<string>:2: missing field "label" (classification record)']);
  });
});
