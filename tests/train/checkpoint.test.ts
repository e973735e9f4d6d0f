// The checkpoint directory protocol (the pieces the kill -9 test relies on):
// only complete checkpoint-<step> directories count, temporary ones never do,
// a failing write leaves nothing behind, re-saving a step replaces it whole,
// and only the newest `keep` survive.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import { cleanup, tempRoot } from './util.js';

let root: string;
beforeAll(() => {
  root = tempRoot('ckpt');
});
afterAll(() => cleanup(root));

const writeState = (step: number) => (dir: string) => {
  mkdirSync(join(dir, 'model'));
  writeFileSync(join(dir, 'model', 'weights.bin'), Buffer.alloc(64, step));
  writeFileSync(join(dir, 'trainer_state.json'), JSON.stringify({ step }));
};

describe('checkpoint directories', () => {
  it('only complete checkpoint-<step> directories are listed', () => {
    const dir = join(root, 'list');
    mkdirSync(dir);
    for (const name of ['checkpoint-2', 'checkpoint-10', '.tmp-checkpoint-11-123-456-0', 'checkpoint-', 'checkpoint-07', 'checkpoint-1e3', 'checkpoint-3', 'final']) {
      mkdirSync(join(dir, name));
      if (name !== 'checkpoint-3') writeFileSync(join(dir, name, 'trainer_state.json'), '{}');  // checkpoint-3: no state (incomplete)
    }
    expect(tk.listCheckpoints(dir).map((c) => c.step)).toEqual([2, 10]);
    expect(tk.latestCheckpoint(dir)?.dir).toBe(join(dir, 'checkpoint-10'));
    tk.cleanTemporary(dir);
    expect(readdirSync(dir)).not.toContain('.tmp-checkpoint-11-123-456-0');
    expect(tk.latestCheckpoint(join(root, 'absent'))).toBeNull();
  });

  it('writes atomically: a failing writer leaves no directory and the previous checkpoint intact', () => {
    const dir = join(root, 'atomic');
    tk.writeCheckpoint(dir, 1, writeState(1));
    expect(() =>
      tk.writeCheckpoint(dir, 2, (d) => {
        writeState(2)(d);
        throw new Error('disk full');
      }),
    ).toThrow(/disk full/);
    expect(readdirSync(dir)).toEqual(['checkpoint-1']);
    expect(JSON.parse(readFileSync(join(dir, 'checkpoint-1', 'trainer_state.json'), 'utf8'))).toEqual({ step: 1 });
  });

  it('re-saving a step replaces it whole; only the newest `keep` are kept', () => {
    const dir = join(root, 'keep');
    for (const s of [1, 2, 3]) tk.writeCheckpoint(dir, s, writeState(s), 2);
    expect(tk.listCheckpoints(dir).map((c) => c.step)).toEqual([2, 3]);
    tk.writeCheckpoint(dir, 3, (d) => {
      writeState(3)(d);
      writeFileSync(join(d, 'marker'), 'second');
    }, 2);
    expect(readFileSync(join(dir, 'checkpoint-3', 'marker'), 'utf8')).toBe('second');
    expect(readdirSync(dir).sort()).toEqual(['checkpoint-2', 'checkpoint-3']);  // no leftovers
    expect(existsSync(join(dir, 'checkpoint-3', 'model', 'weights.bin'))).toBe(true);
  });
});
