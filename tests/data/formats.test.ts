// JSONL record formats -> { inputIds, labels } (or { inputIds, label }) with the byte tokenizer:
// ids 0..255 are UTF-8 bytes, <|bos|> = 256, <|eos|> = 257, <|pad|> = 258.
import { describe, expect, it } from 'vitest';
import * as tk from 'tunekit';

const BOS = 256, EOS = 257, PAD = 258;
const X = -100;
const bytes = (s: string): number[] => Array.from(new TextEncoder().encode(s));
const masked = (n: number): number[] => new Array(n).fill(X);
const tok = tk.byteTokenizer();
const jsonl = (...lines: unknown[]): string => lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n');

describe('text', () => {
  it('trains on every token and appends eos', () => {
    const ds = tk.datasetFromJsonl(jsonl({ text: 'hi' }), tok);
    expect(ds.kind).toBe('lm');
    expect(ds.examples).toEqual([{ inputIds: [104, 105, EOS], labels: [104, 105, EOS] }]);
    expect(ds.padTokenId).toBe(PAD);
    expect(ds.stats.formats).toEqual({ text: 1 });
  });

  it('appendEos: false leaves it out; text that already ends with eos gets no second one', () => {
    expect(tk.datasetFromJsonl(jsonl({ text: 'hi' }), tok, { appendEos: false }).examples[0]).toEqual({ inputIds: [104, 105], labels: [104, 105] });
    const eosTok = tk.byteTokenizer({ addEosToken: true });
    expect(tk.datasetFromJsonl(jsonl({ text: 'hi' }), eosTok, { kind: 'lm' }).examples[0]!.inputIds).toEqual([104, 105, EOS]);
  });

  it("keeps the tokenizer's bos (masked) with addSpecialTokens, none without", () => {
    const bosTok = tk.byteTokenizer({ addBosToken: true });
    expect(tk.datasetFromJsonl(jsonl({ text: 'ab' }), bosTok).examples[0]).toEqual({ inputIds: [BOS, 97, 98, EOS], labels: [X, 97, 98, EOS] });
    expect(tk.datasetFromJsonl(jsonl({ text: 'ab' }), bosTok, { addSpecialTokens: false }).examples[0]).toEqual({
      inputIds: [97, 98, EOS],
      labels: [97, 98, EOS],
    });
  });

  it('truncates to seqLen keeping the start (the eos is cut with the rest)', () => {
    const ds = tk.datasetFromJsonl(jsonl({ text: 'abcdef' }, { text: 'ab' }), tok, { seqLen: 3 });
    expect(ds.examples).toEqual([
      { inputIds: [97, 98, 99], labels: [97, 98, 99] },
      { inputIds: [97, 98, EOS], labels: [97, 98, EOS] },
    ]);
    expect(ds.stats.truncated).toBe(1);
  });

  it("seqLen defaults to the tokenizer's modelMaxLength", () => {
    const t = tk.byteTokenizer({ modelMaxLength: 2 });
    expect(tk.datasetFromJsonl(jsonl({ text: 'abc' }), t, { kind: 'lm' }).examples[0]!.inputIds).toEqual([97, 98]);
    expect(tk.datasetFromJsonl(jsonl({ text: 'abc' }), t, { seqLen: null, kind: 'lm' }).examples[0]!.inputIds).toEqual([97, 98, 99, EOS]);
  });
});

describe('prompt / completion', () => {
  it('masks the prompt tokens and appends eos to the completion', () => {
    const ds = tk.datasetFromJsonl(jsonl({ prompt: 'Q:', completion: 'A' }), tok);
    expect(ds.examples[0]).toEqual({ inputIds: [81, 58, 65, EOS], labels: [X, X, 65, EOS] });
  });

  it('trainOnPrompt: true trains on the prompt too', () => {
    const ds = tk.datasetFromJsonl(jsonl({ prompt: 'Q:', completion: 'A' }), tok, { trainOnPrompt: true });
    expect(ds.examples[0]).toEqual({ inputIds: [81, 58, 65, EOS], labels: [81, 58, 65, EOS] });
  });

  it('with a bos-adding tokenizer the bos belongs to the prompt', () => {
    const ds = tk.datasetFromJsonl(jsonl({ prompt: 'Q', completion: 'A' }), tk.byteTokenizer({ addBosToken: true, addEosToken: true }));
    // encode adds bos and eos around the joined text; no second eos is appended
    expect(ds.examples[0]).toEqual({ inputIds: [BOS, 81, 65, EOS], labels: [X, X, 65, EOS] });
  });

  it('truncation keeps the start: a prompt longer than seqLen leaves nothing to train on and is dropped', () => {
    const lines = jsonl({ prompt: 'abcd', completion: 'e' }, { prompt: 'ab', completion: 'cd' });
    const ds = tk.datasetFromJsonl(lines, tok, { seqLen: 3 });
    expect(ds.examples).toEqual([{ inputIds: [97, 98, 99], labels: [X, X, 99] }]);
    expect(ds.stats.droppedNoLoss).toBe(1);
    expect(ds.stats.truncated).toBe(2);
    const kept = tk.datasetFromJsonl(lines, tok, { seqLen: 3, dropNoLoss: false });
    expect(kept.examples[0]).toEqual({ inputIds: [97, 98, 99], labels: [X, X, X] });
  });
});

describe('alpaca', () => {
  it('renders the default template, leaving out the Input section when input is empty', () => {
    expect(tk.renderAlpacaPrompt('Add', '1+1')).toBe('### Instruction:\nAdd\n\n### Input:\n1+1\n\n### Response:\n');
    expect(tk.renderAlpacaPrompt('Add', '')).toBe('### Instruction:\nAdd\n\n### Response:\n');
    expect(tk.DEFAULT_ALPACA_TEMPLATE.withInput).toContain('{input}');
  });

  it('masks the rendered prompt and trains on output + eos', () => {
    const ds = tk.datasetFromJsonl(jsonl({ instruction: 'Add', input: '1+1', output: '2' }, { instruction: 'Hi', input: '', output: 'Yo' }, { instruction: 'Hi', output: 'Yo' }), tok);
    const p1 = bytes('### Instruction:\nAdd\n\n### Input:\n1+1\n\n### Response:\n');
    expect(ds.examples[0]).toEqual({ inputIds: [...p1, 50, EOS], labels: [...masked(p1.length), 50, EOS] });
    const p2 = bytes('### Instruction:\nHi\n\n### Response:\n');
    expect(ds.examples[1]).toEqual({ inputIds: [...p2, 89, 111, EOS], labels: [...masked(p2.length), 89, 111, EOS] });
    expect(ds.examples[2]).toEqual(ds.examples[1]);
    expect(ds.stats.formats).toEqual({ alpaca: 3 });
  });

  it('takes a custom template (placeholders replaced once, not inside the values)', () => {
    const t = { withInput: '<{instruction}|{input}>', withoutInput: '<{instruction}>' };
    const ds = tk.datasetFromJsonl(jsonl({ instruction: '{input}', input: 'x', output: 'y' }, { instruction: 'i', output: 'o' }), tok, { alpacaTemplate: t });
    expect(ds.examples[0]).toEqual({ inputIds: [...bytes('<{input}|x>'), 121, EOS], labels: [...masked(11), 121, EOS] });
    expect(ds.examples[1]).toEqual({ inputIds: [...bytes('<i>'), 111, EOS], labels: [X, X, X, 111, EOS] });
    expect(tk.renderAlpacaPrompt('a', 'b', 'I={instruction} N={input}')).toBe('I=a N=b');
  });
});

describe('chat', () => {
  // byte template: bos, then per message '<|role|>\n' + content + eos; generation prompt '<|assistant|>\n'
  const U = (s: string) => [...bytes(`<|user|>\n${s}`), EOS];
  const A = (s: string) => [...bytes(`<|assistant|>\n${s}`), EOS];

  it('renders with the chat template and trains on assistant content (and its end of turn) only', () => {
    const messages = [
      { role: 'user', content: 'q' },
      { role: 'assistant', content: 'r' },
    ];
    const ds = tk.datasetFromJsonl(jsonl({ messages }), tok, { format: 'chat' });
    expect(ds.examples[0]!.inputIds).toEqual([BOS, ...U('q'), ...A('r')]);
    expect(ds.examples[0]!.inputIds).toEqual(tok.applyChatTemplate(messages));
    const head = 1 + U('q').length + bytes('<|assistant|>\n').length;
    expect(ds.examples[0]!.labels).toEqual([...masked(head), 114, EOS]);
  });

  it('multi-turn: every assistant turn is trained, system and user turns are not', () => {
    const messages = [
      { role: 'system', content: 'S' },
      { role: 'user', content: 'a' },
      { role: 'assistant', content: 'bb' },
      { role: 'user', content: 'c' },
      { role: 'assistant', content: 'd' },
    ];
    const ex = tk.datasetFromJsonl(jsonl({ messages }), tok, { format: 'chat' }).examples[0]!;
    const sys = [...bytes('<|system|>\nS'), EOS];
    const gp = bytes('<|assistant|>\n').length;
    expect(ex.inputIds).toEqual([BOS, ...sys, ...U('a'), ...A('bb'), ...U('c'), ...A('d')]);
    expect(ex.labels).toEqual([
      ...masked(1 + sys.length + U('a').length + gp),
      98,
      98,
      EOS,
      ...masked(U('c').length + gp),
      100,
      EOS,
    ]);
    const spans = tk.assistantSpans(tok, messages, ex.inputIds);
    expect(spans.map(([s, e]) => tok.decode(ex.inputIds.slice(s, e)))).toEqual(['bb<|eos|>', 'd<|eos|>']);
  });

  it('trainOnPrompt trains on the whole conversation; no eos is appended (the template ends turns)', () => {
    const messages = [
      { role: 'user', content: 'q' },
      { role: 'assistant', content: 'r' },
    ];
    const ex = tk.datasetFromJsonl(jsonl({ messages }), tok, { format: 'chat', trainOnPrompt: true }).examples[0]!;
    expect(ex.labels).toEqual(ex.inputIds);
    expect(ex.inputIds.filter((t) => t === EOS)).toHaveLength(2);
  });

  it('a conversation without an assistant turn has nothing to train on and is dropped', () => {
    const ds = tk.datasetFromJsonl(jsonl({ messages: [{ role: 'user', content: 'q' }] }), tok);
    expect(ds.length).toBe(0);
    expect(ds.stats.droppedNoLoss).toBe(1);
  });

  it('uses a given chat template (ChatML-like, with special tokens)', () => {
    const chatml =
      "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}" +
      "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
    const t = tk.byteTokenizer({ specials: ['<|im_start|>', '<|im_end|>', '<|pad|>'], eosToken: '<|im_end|>', chatTemplate: chatml });
    const S = 256, E = 257;
    const ex = tk.datasetFromJsonl(jsonl({ messages: [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'r' }] }), t, { format: 'chat' }).examples[0]!;
    expect(ex.inputIds).toEqual([S, ...bytes('user\nq'), E, 10, S, ...bytes('assistant\nr'), E, 10]);
    expect(ex.labels).toEqual([...masked(1 + 6 + 2 + 1 + 10), 114, E, 10]);
  });
});

describe('classification', () => {
  it('string labels: sorted names give the ids', () => {
    const ds = tk.datasetFromJsonl(jsonl({ text: 'a', label: 'pos' }, { text: 'b', label: 'neg' }, { text: 'c', label: 'pos' }), tok);
    expect(ds.kind).toBe('classification');
    expect(ds.labelNames).toEqual(['neg', 'pos']);
    expect(ds.labelToId).toEqual({ neg: 0, pos: 1 });
    expect(ds.examples).toEqual([
      { inputIds: [97], label: 1 },
      { inputIds: [98], label: 0 },
      { inputIds: [99], label: 1 },
    ]);
  });

  it('integer labels are their own ids; no eos is appended; truncation keeps the start', () => {
    const ds = tk.datasetFromJsonl(jsonl({ text: 'abc', label: 2 }, { text: 'b', label: 0 }), tok, { seqLen: 2 });
    expect(ds.labelNames).toEqual(['0', '1', '2']);
    expect(ds.examples).toEqual([
      { inputIds: [97, 98], label: 2 },
      { inputIds: [98], label: 0 },
    ]);
  });

  it('options.labels fixes the order; an unknown label is a line error', () => {
    const ds = tk.datasetFromJsonl(jsonl({ text: 'a', label: 'pos' }, { text: 'b', label: 0 }), tok, { kind: 'classification', labels: ['pos', 'neg'] });
    expect(ds.examples.map((e) => e.label)).toEqual([0, 0]);
    expect(ds.labelNames).toEqual(['pos', 'neg']);
    expect(() => tk.datasetFromJsonl(jsonl({ text: 'a', label: 'pos' }, { text: 'b', label: 'meh' }), tok, { labels: ['pos', 'neg'] })).toThrow(
      '<string>:2: unknown label: "meh" is not in labels',
    );
    expect(() => tk.datasetFromJsonl(jsonl({ text: 'a', label: 5 }), tok, { labels: ['pos', 'neg'] })).toThrow(/<string>:1: unknown label: 5/);
  });

  it('format: "text" reads text+label lines as plain text', () => {
    const ds = tk.datasetFromJsonl(jsonl({ text: 'a', label: 'x' }), tok, { format: 'text' });
    expect(ds.kind).toBe('lm');
    expect(ds.examples[0]).toEqual({ inputIds: [97, EOS], labels: [97, EOS] });
  });
});

describe('preference', () => {
  it('tokenizes prompt + chosen and prompt + rejected with the prompt masked', () => {
    const ds = tk.datasetFromJsonl(jsonl({ prompt: 'Q', chosen: 'y', rejected: 'no' }), tok);
    expect(ds.kind).toBe('preference');
    expect(ds.examples[0]).toEqual({
      chosen: { inputIds: [81, 121, EOS], labels: [X, 121, EOS] },
      rejected: { inputIds: [81, 110, 111, EOS], labels: [X, 110, 111, EOS] },
    });
  });

  it('an implicit prompt is the common prefix of chosen and rejected (the space goes to the responses)', () => {
    const ds = tk.datasetFromJsonl(jsonl({ chosen: 'Q: yes', rejected: 'Q: no' }), tok);
    const p = masked(2);
    expect(ds.examples[0]).toEqual({
      chosen: { inputIds: [...bytes('Q: yes'), EOS], labels: [...p, ...bytes(' yes'), EOS] },
      rejected: { inputIds: [...bytes('Q: no'), EOS], labels: [...p, ...bytes(' no'), EOS] },
    });
  });

  it('conversational pairs: rendered with the chat template, loss on the response turns', () => {
    const prompt = [{ role: 'user', content: 'q' }];
    const ds = tk.datasetFromJsonl(jsonl({ prompt, chosen: [{ role: 'assistant', content: 'y' }], rejected: [{ role: 'assistant', content: 'n' }] }), tok, { format: 'preference' });
    const ex = ds.examples[0]!;
    const head = [BOS, ...bytes('<|user|>\nq'), EOS, ...bytes('<|assistant|>\n')];
    expect(ex.chosen).toEqual({ inputIds: [...head, 121, EOS], labels: [...masked(head.length), 121, EOS] });
    expect(ex.rejected).toEqual({ inputIds: [...head, 110, EOS], labels: [...masked(head.length), 110, EOS] });
    // implicit conversational prompt: the common leading messages
    const implicit = tk.datasetFromJsonl(
      jsonl({ chosen: [...prompt, { role: 'assistant', content: 'y' }], rejected: [...prompt, { role: 'assistant', content: 'n' }] }),
      tok,
    );
    expect(implicit.examples[0]).toEqual(ex);
  });
});

describe('detection', () => {
  it('detects formats per line; lm formats mix, other kinds do not', () => {
    const ds = tk.datasetFromJsonl(jsonl({ text: 'a' }, { prompt: 'b', completion: 'c' }, { messages: [{ role: 'assistant', content: 'd' }] }), tok);
    expect(ds.stats.formats).toEqual({ text: 1, completion: 1, chat: 1 });
    expect(() => tk.datasetFromJsonl(jsonl({ text: 'a' }, { text: 'b', label: 1 }), tok)).toThrow(
      /^<string>:2: a classification record, but this dataset holds lm examples \(set by line 1\)/,
    );
    expect(() => tk.datasetFromJsonl(jsonl({ text: 'a' }), tok, { kind: 'preference' })).toThrow(/<string>:1: a text record, but this dataset holds preference/);
  });

  it('format forces one reading; a line without its fields is an error', () => {
    expect(() => tk.datasetFromJsonl(jsonl({ text: 'a' }), tok, { format: 'completion' })).toThrow('<string>:1: missing field "prompt" (prompt-completion record)');
    const ds = tk.datasetFromJsonl(jsonl({ prompt: 'a', completion: 'b', text: 'zz' }), tok, { format: 'completion' });
    expect(ds.examples[0]!.inputIds).toEqual([97, 98, EOS]);
  });

  it('datasetFromRecords takes parsed objects', () => {
    const ds = tk.datasetFromRecords([{ text: 'a' }, { prompt: 'b', completion: 'c' }], tok, { format: undefined });
    expect(ds.length).toBe(2);
    expect(() => tk.datasetFromRecords([{ text: 'a' }, { text: 3 }], tok)).toThrow('<records>:2: wrong type: "text" must be a string, got number');
  });

  it('types follow the format option', () => {
    const ds = tk.datasetFromJsonl(jsonl({ text: 'a', label: 'x' }), tok, { format: 'classification' });
    const label: number = ds.examples[0]!.label; // compiles: Dataset<ClassificationExample>
    expect(label).toBe(0);
    const any = tk.datasetFromJsonl(jsonl({ text: 'a', label: 'x' }), tok);
    if (any.kind === 'classification') expect(any.examples[0]!.label).toBe(0);
    else throw new Error('expected classification');
  });
});
