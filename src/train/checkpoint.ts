// Atomic checkpoint directories: everything is written into a temporary
// directory, each file fsynced, then the directory is renamed into place, so
// a kill -9 at any moment leaves the previous checkpoint intact and loadable.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const CHECKPOINT_PREFIX = 'checkpoint-';
export const STATE_FILE = 'trainer_state.json';

function fsyncPath(path: string): void {
  let fd: number | null = null;
  try {
    fd = openSync(path, 'r');
    fsyncSync(fd);
  } catch {
    // some filesystems refuse fsync on directories; the rename is still atomic
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

/** Writes checkpoint-<step> in outDir through `write(tmpDir)`; returns its path. */
export function writeCheckpoint(outDir: string, step: number, write: (dir: string) => void, keep = 2): string {
  mkdirSync(outDir, { recursive: true });
  const final = join(outDir, `${CHECKPOINT_PREFIX}${step}`);
  const tmp = join(outDir, `.tmp-${CHECKPOINT_PREFIX}${step}-${process.pid}-${Date.now()}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    write(tmp);
    for (const f of readdirSync(tmp)) fsyncPath(join(tmp, f));
    fsyncPath(tmp);
    if (existsSync(final)) rmSync(final, { recursive: true, force: true });
    renameSync(tmp, final);
    fsyncPath(outDir);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  // keep the newest `keep` checkpoints
  const all = listCheckpoints(outDir);
  for (const c of all.slice(0, Math.max(0, all.length - keep))) rmSync(c.dir, { recursive: true, force: true });
  return final;
}

export function writeJsonFile(path: string, value: unknown): void {
  writeFileSync(path, JSON.stringify(value, null, 2) + '\n');
}

/** Complete checkpoints (those with a trainer state), oldest first. Temporary directories are ignored. */
export function listCheckpoints(outDir: string): Array<{ step: number; dir: string }> {
  if (!existsSync(outDir)) return [];
  return readdirSync(outDir)
    .filter((n) => n.startsWith(CHECKPOINT_PREFIX))
    .map((n) => ({ step: Number(n.slice(CHECKPOINT_PREFIX.length)), dir: join(outDir, n) }))
    .filter((c) => Number.isInteger(c.step) && existsSync(join(c.dir, STATE_FILE)))
    .sort((a, b) => a.step - b.step);
}

export function latestCheckpoint(outDir: string): { step: number; dir: string } | null {
  const all = listCheckpoints(outDir);
  return all.length ? all[all.length - 1]! : null;
}

export function readState<T>(dir: string): T {
  const p = join(dir, STATE_FILE);
  try {
    return JSON.parse(readFileSync(p, 'utf8')) as T;
  } catch (e) {
    throw new Error(`${p}: unreadable trainer state (${(e as Error).message})`);
  }
}

/** Removes temporary directories left by a killed run. */
export function cleanTemporary(outDir: string): void {
  if (!existsSync(outDir)) return;
  for (const n of readdirSync(outDir)) if (n.startsWith(`.tmp-${CHECKPOINT_PREFIX}`)) rmSync(join(outDir, n), { recursive: true, force: true });
}
