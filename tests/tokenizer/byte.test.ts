// The byte-level tokenizer: exact UTF-8 round trips, specials, and save -> loadTokenizer equivalence.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import { GPT2_BYTE_SYMBOL, tmpDir } from './fixtures.js';

// Fresh inputs each run; the seed is in every failure message.
const SEED = (Date.now() ^ (process.pid << 8)) >>> 0;
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const RANGES: [number, number][] = [
  [0x00, 0x7f], // ASCII, controls and NUL included
  [0x80, 0x7ff], // 2-byte UTF-8
  [0x800, 0xd7ff], // 3-byte, below the surrogates
  [0xe000, 0xffff], // 3-byte, above them (private use, U+FEFF, U+FFFD, U+FFFF)
  [0x1f300, 0x1faff], // emoji
  [0x10000, 0x10ffff], // any astral plane
];
const PIECES = ['<|bos|>', '<|eos|>', '<|pad|>', '<|', '|>', '<|eos', '\uFEFF', '👨‍👩‍👧', 'e\u0301', ' ', '\r\n'];

function randomText(r: () => number, maxLen = 40): string {
  const n = Math.floor(r() * maxLen);
  let s = '';
  for (let i = 0; i < n; i++) {
    if (r() < 0.1) {
      s += PIECES[Math.floor(r() * PIECES.length)];
      continue;
    }
    const [lo, hi] = RANGES[Math.floor(r() * RANGES.length)]!;
    s += String.fromCodePoint(lo + Math.floor(r() * (hi - lo + 1)));
  }
  return s;
}

describe('byteTokenizer', () => {
  it('ids 0..255 are byte values, specials follow', () => {
    const t = tk.byteTokenizer();
    expect(t.vocabSize).toBe(259);
    expect(t.bosTokenId).toBe(256);
    expect(t.eosTokenId).toBe(257);
    expect(t.padTokenId).toBe(258);
    expect(t.unkTokenId).toBeNull();
    expect(t.specialTokenIds).toEqual([256, 257, 258]);
    expect(t.encode('A')).toEqual([65]);
    expect(t.encode('é')).toEqual([0xc3, 0xa9]);
    expect(t.encode('😀')).toEqual([0xf0, 0x9f, 0x98, 0x80]);
    expect(t.encode('\0')).toEqual([0]);
    expect(t.idToToken(65)).toBe('A');
    expect(t.idToToken(32)).toBe('Ġ');
    expect(t.idToToken(257)).toBe('<|eos|>');
    expect(t.idToToken(259)).toBeNull();
    expect(t.tokenToId('Ġ')).toBe(32);
    expect(t.tokenToId('<|pad|>')).toBe(258);
    expect(t.tokenToId('AB')).toBeNull();
  });

  it('special strings are text unless allowSpecial; longest match wins', () => {
    const t = tk.byteTokenizer({ specials: ['<|a|>', '<|a|>b', '<|eos|>'] });
    expect(t.encode('<|eos|>')).toEqual([...Buffer.from('<|eos|>')]);
    expect(t.encode('x<|eos|>y', { allowSpecial: true })).toEqual([120, 258, 121]);
    expect(t.encode('<|a|>b<|a|>c', { allowSpecial: true })).toEqual([257, 256, 99]);
    expect(t.bosTokenId).toBeNull();
    expect(t.eosTokenId).toBe(258);
    expect(t.additionalSpecialTokens).toEqual(['<|a|>', '<|a|>b']);
  });

  it('round-trips random Unicode exactly', () => {
    const r = rng(SEED);
    const t = tk.byteTokenizer();
    for (let i = 0; i < 500; i++) {
      const s = randomText(r);
      const ids = t.encode(s);
      expect(ids.every((id) => id < 256), `seed ${SEED}`).toBe(true);
      expect(ids).toEqual([...Buffer.from(s, 'utf8')]);
      expect(t.decode(ids), `seed ${SEED}`).toBe(s);
      expect(t.decode(t.encode(s, { allowSpecial: true })), `seed ${SEED}`).toBe(s);
    }
  });

  it('lone surrogates cannot be UTF-8: they become U+FFFD (as TextEncoder does)', () => {
    const t = tk.byteTokenizer();
    expect(t.encode('a\uD800b')).toEqual([97, 0xef, 0xbf, 0xbd, 98]);
    expect(t.decode(t.encode('a\uDC00'))).toBe('a\uFFFD');
  });

  it('decodes invalid byte sequences with U+FFFD and keeps a leading BOM', () => {
    const t = tk.byteTokenizer();
    expect(t.decode([0xff, 65])).toBe('\uFFFDA');
    expect(t.decode(Uint16Array.from([0xe6, 0x97, 0xa5, 258]))).toBe('日<|pad|>');
    expect(t.decode([0xf0, 0x9f, 256, 0x98, 0x80])).toBe('\uFFFD<|bos|>\uFFFD\uFFFD');
    expect(t.decode([0xef, 0xbb, 0xbf, 65])).toBe('\uFEFFA');
    expect(t.decode([256, 104, 105, 257, 258], { skipSpecialTokens: true })).toBe('hi');
    expect(() => t.decode([259])).toThrow(/259 is not a token id/);
    expect(() => t.decode([-1])).toThrow(/not a token id/);
  });

  it('addBosToken / addEosToken frame encode() and batchEncode', () => {
    const t = tk.byteTokenizer({ addBosToken: true, addEosToken: true });
    expect(t.encode('hi')).toEqual([256, 104, 105, 257]);
    expect(t.encode('hi', { addSpecialTokens: false })).toEqual([104, 105]);
    expect(t.decode(t.encode('hi'))).toBe('<|bos|>hi<|eos|>');
    const b = t.batchEncode(['hi', 'hello'], { padding: true, truncation: true, maxLength: 5 });
    expect(b.inputIds).toEqual([
      [256, 104, 105, 257, 258],
      [256, 104, 101, 108, 257],
    ]);
    expect(b.attentionMask).toEqual([
      [1, 1, 1, 1, 0],
      [1, 1, 1, 1, 1],
    ]);
  });

  it('has a default chat template', () => {
    const t = tk.byteTokenizer();
    const msgs = [
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: 'yo' },
    ];
    const text = t.applyChatTemplate(msgs, { tokenize: false, addGenerationPrompt: true });
    expect(text).toBe('<|bos|><|user|>\nhi<|eos|><|assistant|>\nyo<|eos|><|assistant|>\n');
    const ids = t.applyChatTemplate(msgs);
    expect(ids[0]).toBe(256);
    expect(ids.filter((i) => i === 257)).toHaveLength(2);
    expect(ids.at(-1)).toBe(257);
    expect(t.decode(ids)).toBe('<|bos|><|user|>\nhi<|eos|><|assistant|>\nyo<|eos|>');
    // without bos/eos specials the template still renders
    const plain = tk.byteTokenizer({ specials: [] });
    expect(plain.applyChatTemplate(msgs, { tokenize: false })).toBe('<|user|>\nhi<|assistant|>\nyo');
    expect(plain.vocabSize).toBe(256);
  });

  it('rejects bad options', () => {
    expect(() => tk.byteTokenizer({ specials: ['<x>', '<x>'] })).toThrow(/twice/);
    expect(() => tk.byteTokenizer({ specials: [''] })).toThrow(/non-empty/);
    expect(() => tk.byteTokenizer({ bosToken: '<s>' })).toThrow(/not one of the specials/);
    expect(() => tk.byteTokenizer({ specials: [], addBosToken: true })).toThrow(/bos/);
  });
});

describe('byteTokenizer save -> loadTokenizer', () => {
  it('writes tokenizer.json in Hugging Face terms', async () => {
    const dir = tmpDir();
    await tk.byteTokenizer().save(dir);
    const json = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
    expect(json.model.type).toBe('BPE');
    expect(json.model.merges).toEqual([]);
    expect(Object.keys(json.model.vocab)).toHaveLength(256);
    // the vocabulary is GPT-2's byte-level alphabet, each symbol at its byte's id
    for (let b = 0; b < 256; b++) expect(json.model.vocab[GPT2_BYTE_SYMBOL[b]!]).toBe(b);
    expect(json.pre_tokenizer.type).toBe('ByteLevel');
    expect(json.decoder.type).toBe('ByteLevel');
    expect(json.added_tokens.map((t: { id: number; content: string }) => [t.id, t.content])).toEqual([
      [256, '<|bos|>'],
      [257, '<|eos|>'],
      [258, '<|pad|>'],
    ]);
    const cfg = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'));
    expect(cfg).toMatchObject({ bos_token: '<|bos|>', eos_token: '<|eos|>', pad_token: '<|pad|>', split_special_tokens: true });
  });

  for (const opts of [{}, { addBosToken: true, addEosToken: true, modelMaxLength: 64, paddingSide: 'left' as const }, { specials: ['<|im_start|>', '<|im_end|>', '<|endoftext|>'], eosToken: '<|im_end|>' }]) {
    it(`loads back to an equivalent tokenizer ${JSON.stringify(opts)}`, async () => {
      const r = rng(SEED + 1);
      const a = tk.byteTokenizer(opts);
      const dir = tmpDir();
      a.saveSync(dir);
      const b = await tk.loadTokenizer(dir);
      expect(b.vocabSize).toBe(a.vocabSize);
      expect([b.bosTokenId, b.eosTokenId, b.padTokenId, b.unkTokenId]).toEqual([a.bosTokenId, a.eosTokenId, a.padTokenId, a.unkTokenId]);
      expect(b.specialTokenIds).toEqual(a.specialTokenIds);
      expect(b.modelMaxLength).toBe(a.modelMaxLength);
      expect(b.paddingSide).toBe(a.paddingSide);
      expect(b.chatTemplate).toBe(a.chatTemplate);
      for (let id = 0; id < a.vocabSize; id++) expect(b.idToToken(id)).toBe(a.idToToken(id));
      for (let i = 0; i < 300; i++) {
        const s = randomText(r);
        for (const o of [{}, { allowSpecial: true }, { addSpecialTokens: false }, { allowSpecial: true, addSpecialTokens: false }]) {
          expect(b.encode(s, o), `seed ${SEED + 1} ${JSON.stringify(s)} ${JSON.stringify(o)}`).toEqual(a.encode(s, o));
        }
        expect(b.decode(a.encode(s))).toBe(a.decode(a.encode(s)));
        expect(b.decode(b.encode(s, { addSpecialTokens: false }))).toBe(s);
        // arbitrary id sequences, invalid UTF-8 and specials included
        const ids = Array.from({ length: Math.floor(r() * 12) }, () => Math.floor(r() * a.vocabSize));
        expect(b.decode(ids), `seed ${SEED + 1} ${JSON.stringify(ids)}`).toBe(a.decode(ids));
        expect(b.decode(ids, { skipSpecialTokens: true })).toBe(a.decode(ids, { skipSpecialTokens: true }));
      }
      const msgs = [
        { role: 'system', content: 'be nice 😊' },
        { role: 'user', content: 'hé <|eos|>' },
      ];
      expect(b.applyChatTemplate(msgs, { addGenerationPrompt: true })).toEqual(a.applyChatTemplate(msgs, { addGenerationPrompt: true }));
      const texts = ['a', 'hello there', '日本語'];
      const padId = a.padTokenId ?? 0;
      expect(b.batchEncode(texts, { padding: true, padTokenId: padId })).toEqual(a.batchEncode(texts, { padding: true, padTokenId: padId }));
    });
  }
});
