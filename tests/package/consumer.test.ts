// `import * as tk from 'tunekit'` from a project that depends on the package:
// pack it (with a prebuild made by `npm run prebuild`), install the tarball
// into a fresh project offline, and run a small program there.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = resolve(__dirname, '..', '..');
const work = mkdtempSync(join(tmpdir(), 'tunekit-consumer-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function run(cmd: string, args: string[], cwd: string): string {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false' } });
}

describe('a project that depends on tunekit', () => {
  it('installs the packed tarball and imports it by name', () => {
    // work on a copy of the tracked files, so that the prebuild never touches
    // the build/ directory that the other test files are loading from
    const pkg = join(work, 'pkg');
    const files = run('git', ['ls-files', '-z'], root).split('\0').filter(Boolean);
    for (const f of files) {
      mkdirSync(dirname(join(pkg, f)), { recursive: true });
      copyFileSync(join(root, f), join(pkg, f));
    }
    symlinkSync(join(root, 'node_modules'), join(pkg, 'node_modules'), 'dir');
    run('npm', ['run', 'prebuild'], pkg);
    run('npm', ['pack', '--pack-destination', work], pkg);
    const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'));
    expect(tarball).toBeDefined();
    const app = join(work, 'app');
    run('mkdir', ['-p', app], work);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', type: 'module', private: true }));
    run('npm', ['install', '--offline', '--no-save', join(work, tarball!)], app);
    writeFileSync(
      join(app, 'main.js'),
      `import * as tk from 'tunekit';
const a = tk.tensor([1, 2, 3, 4], [2, 2]);
const y = tk.ops.matmul(a, a);
console.log(JSON.stringify({ y: Array.from(y.toArray()), isa: tk.backend().cpu.isa }));`,
    );
    const out = JSON.parse(run('node', ['main.js'], app).trim());
    expect(out.y).toEqual([7, 10, 15, 22]);
    expect(['avx512', 'avx2', 'scalar']).toContain(out.isa);
    // the prebuild was used: no compiler output directory in the installed package
    expect(readdirSync(join(app, 'node_modules', 'tunekit', 'prebuilds'))).toContain('linux-x64');
  }, 600_000);
});
