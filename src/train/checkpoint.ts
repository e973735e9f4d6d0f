// Atomic checkpoint directories: everything is written into a temporary
// directory, every file (nested ones included) fsynced, then the directory is
// renamed into place, so a kill -9 at any moment leaves the previous
// checkpoint intact and loadable. Directories are only ever removed after
// being renamed out of the checkpoint namespace (to a .tmp- name), so a
// half-deleted directory is never mistaken for a checkpoint either.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const CHECKPOINT_PREFIX = 'checkpoint-';
export const STATE_FILE = 'trainer_state.json';
/** temporary and doomed directories in a run directory start with this (never a checkpoint) */
export const TEMP_PREFIX = `.tmp-${CHECKPOINT_PREFIX}`;
const CHECKPOINT_NAME = /^checkpoint-(0|[1-9][0-9]*)$/;

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

/** fsyncs every file under dir, then each directory (children before parents). */
function fsyncTree(dir: string): void {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) fsyncTree(p);
    else fsyncPath(p);
  }
  fsyncPath(dir);
}

let tmpCounter = 0;
function tempName(outDir: string, what: string): string {
  return join(outDir, `${TEMP_PREFIX}${what}-${process.pid}-${Date.now()}-${tmpCounter++}`);
}

/** Moves a directory out of the checkpoint namespace (to a .tmp- name); returns the new path, or null if absent. */
function renameAway(outDir: string, dir: string): string | null {
  if (!existsSync(dir)) return null;
  const doomed = tempName(outDir, 'deleted');
  renameSync(dir, doomed);
  return doomed;
}

/** Removes a checkpoint directory without ever leaving a partial one under its name: rename away first, then delete. */
export function removeCheckpoint(outDir: string, dir: string): void {
  const doomed = renameAway(outDir, dir);
  if (doomed) rmSync(doomed, { recursive: true, force: true });
}

/** Writes checkpoint-<step> in outDir through `write(tmpDir)`; keeps the newest `keep`; returns its path. */
export function writeCheckpoint(outDir: string, step: number, write: (dir: string) => void, keep = 2): string {
  mkdirSync(outDir, { recursive: true });
  const final = join(outDir, `${CHECKPOINT_PREFIX}${step}`);
  const tmp = tempName(outDir, String(step));
  mkdirSync(tmp, { recursive: true });
  try {
    write(tmp);
    fsyncTree(tmp);
    // the same step again: replace it, moving the old one out of the namespace first (a
    // directory cannot be renamed over a non-empty one) and deleting it only once the new one is in
    const old = renameAway(outDir, final);
    renameSync(tmp, final);
    fsyncPath(outDir);
    if (old) rmSync(old, { recursive: true, force: true });
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  // keep the newest `keep` checkpoints
  const all = listCheckpoints(outDir);
  for (const c of all.slice(0, Math.max(0, all.length - keep))) removeCheckpoint(outDir, c.dir);
  return final;
}

export function writeJsonFile(path: string, value: unknown): void {
  writeFileSync(path, JSON.stringify(value, null, 2) + '\n');
}

/** Complete checkpoints (checkpoint-<step> with a trainer state), oldest first. Temporary directories are ignored. */
export function listCheckpoints(outDir: string): Array<{ step: number; dir: string }> {
  if (!existsSync(outDir)) return [];
  return readdirSync(outDir)
    .filter((n) => CHECKPOINT_NAME.test(n))
    .map((n) => ({ step: Number(n.slice(CHECKPOINT_PREFIX.length)), dir: join(outDir, n) }))
    .filter((c) => existsSync(join(c.dir, STATE_FILE)))
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
  for (const n of readdirSync(outDir)) if (n.startsWith(TEMP_PREFIX)) rmSync(join(outDir, n), { recursive: true, force: true });
}
