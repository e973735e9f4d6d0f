#!/usr/bin/env node
// Packs what bench/gpu-check.mjs needs on a GPU host that has no npm (and maybe no Node.js):
// .gpu-check/node_modules with the production dependencies of package.json and their
// transitive dependencies only (from `npm ls --omit=dev --all --parseable`). Then it checks
// that the carried set is self-sufficient (a staged copy of it runs the script's CPU dry run),
// prints the size against the 64 MiB limit, and prints the device command line and carry list.
//
//   node scripts/pack-gpu-check.mjs [--no-verify] [--with-tests [--lib PATH]]
//
// --with-tests prepares the whole GPU session (scripts/gpu-session.sh) instead: it also packs
//   .gpu-check/test-deps.tar.xz: the vitest closure (vitest and every package it needs, the
//     linux-x64-glibc native bindings of rolldown and lightningcss among them; ~38 MiB unpacked);
//     on the host: tar -xJf .gpu-check/test-deps.tar.xz -C .gpu-check/node_modules
//   .gpu-check/cuda.tar.xz: libtunekit_cuda.so and the dev harnesses dev/<op> (xz -9 in one solid
//     stream: the harnesses share the library's kernels, so 6 × ~17 MiB pack into ~8 MiB);
//     on the host: mkdir -p build-cuda && tar -xJf .gpu-check/cuda.tar.xz -C build-cuda
//   The library is --lib PATH, else build-cuda-dev/libtunekit_cuda.so (sm_90 only, built with the
//   harnesses by scripts/build-cuda-dev.mjs), else build-cuda/libtunekit_cuda.so; the harnesses
//   come from build-cuda/dev/. build-cuda/ is then not carried (the raw files do not fit in 64 MiB
//   next to node.xz and the tree), and the verification also runs, in the staged copy of the
//   whole working tree, tests/gpu/ops.test.ts (TUNEKIT_GPU_TEST_DEVICE=cpu) and
//   tests/gpu/plumbing.test.ts (needs g++) with the packed vitest.
//
// Build first: `npx tsc -p tsconfig.json` (dist/), the addon (build/Release/tunekit.node) and the
// CUDA library (build-cuda/libtunekit_cuda.so); the Node binary comes from
// `bash ../shared/tools/pack-node.sh` (.device/). .gpu-check/ is git-ignored.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const verify = !process.argv.includes('--no-verify');
const withTests = process.argv.includes('--with-tests');
const libArg = process.argv.includes('--lib') ? process.argv[process.argv.indexOf('--lib') + 1] : null;
const MiB = 2 ** 20;
const LIMIT = 64 * MiB;
const CARRY = withTests
  ? ['.device', 'build/Release/tunekit.node', 'dist', '.gpu-check']
  : ['.device', 'build/Release/tunekit.node', 'build-cuda/libtunekit_cuda.so', 'build-cuda/dev', 'dist', '.gpu-check'];
const COMMAND = withTests
  ? 'source .device/env.sh && bash scripts/gpu-session.sh'
  : 'source .device/env.sh && ln -sfnT .gpu-check/node_modules node_modules && node bench/gpu-check.mjs';
const log = (m) => console.log(`pack-gpu-check: ${m}`);
const fail = (m) => {
  console.error(`pack-gpu-check: ${m}`);
  process.exit(1);
};

// ---- the production dependency tree
const ls = spawnSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: root, encoding: 'utf8' });
if (ls.error) fail(`npm ls failed: ${ls.error.message}`);
const nm = join(root, 'node_modules');
const dirs = ls.stdout.split('\n').map((l) => l.trim()).filter((l) => l && l !== root && l.startsWith(nm + sep));
if (ls.status !== 0) log(`npm ls exited ${ls.status} (${ls.stderr.trim().split('\n')[0] ?? ''}); using the ${dirs.length} packages it listed`);
if (dirs.length === 0) fail('npm ls listed no production dependency: run `npm install` first');
const missing = dirs.filter((d) => !existsSync(d));
if (missing.length) fail(`missing from node_modules: ${missing.map((d) => relative(nm, d)).join(', ')} (run npm install)`);

const out = join(root, '.gpu-check', 'node_modules');
rmSync(join(root, '.gpu-check'), { recursive: true, force: true });
mkdirSync(out, { recursive: true });
for (const d of dirs) {
  const rel = relative(nm, d);
  // a package's own files; its nested node_modules hold packages listed (and copied) on their own
  cpSync(d, join(out, rel), {
    recursive: true,
    filter: (src) => {
      const r = relative(d, src);
      return r !== 'node_modules' && !r.startsWith(`node_modules${sep}`) && r !== '.bin';
    },
  });
}
log(`copied ${dirs.length} packages: ${dirs.map((d) => relative(nm, d)).join(', ')}`);

// ---- --with-tests: the vitest closure and the CUDA outputs, each as one .tar.xz
/** tar -cJf (xz -9, one thread: one solid stream) of the contents of dir; returns the archive's size */
function tarXz(dir, file) {
  const r = spawnSync('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '-cJf', file, '-C', dir, '.'], {
    env: { ...process.env, XZ_OPT: '-9 -T1' },
    encoding: 'utf8',
  });
  if (r.error || r.status !== 0) fail(`tar -cJf ${relative(root, file)} failed: ${r.error?.message ?? r.stderr}`);
  return lstatSync(file).size;
}
/** the package dirs (under node_modules) that `start` needs at run time, found as Node resolves them:
 * dependencies, optionalDependencies that are installed, non-optional peerDependencies */
function closure(start) {
  const seen = new Set();
  const resolve = (from, name) => {
    for (let d = from; ; d = dirname(d)) {
      const c = join(d, 'node_modules', name);
      if (existsSync(join(c, 'package.json'))) return c;
      if (d === root || d === dirname(d)) return null;
    }
  };
  const walk = (dir) => {
    if (seen.has(dir)) return;
    seen.add(dir);
    const p = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    const meta = p.peerDependenciesMeta ?? {};
    const need = [...Object.keys(p.dependencies ?? {}), ...Object.keys(p.peerDependencies ?? {}).filter((n) => !meta[n]?.optional)];
    for (const n of need) {
      const r = resolve(dir, n);
      if (!r) fail(`${relative(nm, dir)} needs ${n}, which is not installed (run npm install)`);
      walk(r);
    }
    for (const n of Object.keys(p.optionalDependencies ?? {})) {
      const r = resolve(dir, n);
      if (r) walk(r); // npm installs only the ones for this platform
    }
  };
  walk(start);
  return [...seen];
}
const bundles = {};
if (withTests) {
  if (process.platform !== 'linux' || process.arch !== 'x64')
    fail(`--with-tests packs this machine's native bindings (rolldown, lightningcss): it must run on linux-x64, not ${process.platform}-${process.arch}`);
  if (!existsSync(join(nm, 'vitest', 'package.json'))) fail('vitest is not installed: run npm install (with the dev dependencies)');
  const prod = new Set(dirs.map((d) => relative(nm, d)));
  const tdirs = closure(join(nm, 'vitest')).filter((d) => !prod.has(relative(nm, d)));
  const tstage = mkdtempSync(join(tmpdir(), 'tk-test-deps-'));
  try {
    let raw = 0;
    for (const d of tdirs) {
      const to = join(tstage, relative(nm, d));
      cpSync(d, to, {
        recursive: true,
        filter: (src) => {
          const r = relative(d, src);
          return r !== 'node_modules' && !r.startsWith(`node_modules${sep}`) && r !== '.bin';
        },
      });
      raw += sizeOf(to);
    }
    const s = tarXz(tstage, join(root, '.gpu-check', 'test-deps.tar.xz'));
    bundles['test-deps.tar.xz'] = s;
    log(`packed ${tdirs.length} test packages (${(raw / MiB).toFixed(1)} MiB) into .gpu-check/test-deps.tar.xz (${(s / MiB).toFixed(1)} MiB): ${tdirs.map((d) => relative(nm, d)).join(', ')}`);
  } finally {
    rmSync(tstage, { recursive: true, force: true });
  }

  const lib = libArg ?? ['build-cuda-dev/libtunekit_cuda.so', 'build-cuda/libtunekit_cuda.so'].find((p) => existsSync(join(root, p)));
  const devDir = join(root, 'build-cuda', 'dev');
  const harnesses = existsSync(devDir) ? readdirSync(devDir).filter((f) => lstatSync(join(devDir, f)).isFile()).sort() : [];
  if (!lib || !existsSync(join(root, lib))) log('warning: no libtunekit_cuda.so (build-cuda-dev/ or build-cuda/): the GPU session will find no CUDA backend');
  if (harnesses.length === 0) log('warning: build-cuda/dev is empty or absent: run `node scripts/build-cuda-dev.mjs` for the kernel harnesses');
  const cstage = mkdtempSync(join(tmpdir(), 'tk-cuda-'));
  try {
    if (lib && existsSync(join(root, lib))) cpSync(join(root, lib), join(cstage, 'libtunekit_cuda.so'));
    if (harnesses.length) mkdirSync(join(cstage, 'dev'));
    for (const h of harnesses) cpSync(join(devDir, h), join(cstage, 'dev', h));
    const raw = sizeOf(cstage);
    const s = tarXz(cstage, join(root, '.gpu-check', 'cuda.tar.xz'));
    bundles['cuda.tar.xz'] = s;
    log(`packed ${lib ?? '(no library)'} as libtunekit_cuda.so and build-cuda/dev/{${harnesses.join(',')}} (${(raw / MiB).toFixed(1)} MiB) into .gpu-check/cuda.tar.xz (${(s / MiB).toFixed(1)} MiB)`);
  } finally {
    rmSync(cstage, { recursive: true, force: true });
  }
}

// ---- sizes
function sizeOf(p) {
  if (!existsSync(p)) return 0;
  const st = lstatSync(p);
  if (st.isSymbolicLink()) return 0;
  if (!st.isDirectory()) return st.size;
  let s = 0;
  for (const e of readdirSync(p)) s += sizeOf(join(p, e));
  return s;
}
const fmt = (b) => `${(b / MiB).toFixed(1)} MiB`;
let carried = 0;
const lines = [];
for (const p of CARRY) {
  const abs = join(root, p);
  const s = sizeOf(abs);
  carried += s;
  lines.push(`  ${p.padEnd(32)} ${existsSync(abs) ? fmt(s) : 'absent (fine where optional; see below)'}`);
}
// the working tree that travels with every call: tracked plus untracked files that git does not ignore
const git = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root, encoding: 'utf8' });
let tree = 0;
if (git.status === 0) for (const f of git.stdout.split('\0')) if (f) tree += sizeOf(join(root, f));
console.log(lines.join('\n'));
log(`carried ${fmt(carried)} + working tree ${git.status === 0 ? fmt(tree) : '(git ls-files failed)'} = ${fmt(carried + tree)} of the 64 MiB limit`);
if (carried + tree > LIMIT) fail(`over the 64 MiB limit${withTests ? '' : ': pack with --with-tests (build-cuda/ as one .tar.xz, ~8 MiB)'}`);
if (carried + tree > 0.75 * LIMIT) log('warning: above 75% of the limit');

const need = ['dist/index.js', 'build/Release/tunekit.node', ...(withTests ? [] : ['build-cuda/libtunekit_cuda.so'])];
for (const p of need) if (!existsSync(join(root, p))) log(`warning: ${p} is missing: build it before carrying`);
if (!existsSync(join(root, '.device', 'node.xz')) || !existsSync(join(root, '.device', 'env.sh')))
  log('warning: .device/node.xz or .device/env.sh is missing: run `bash ../shared/tools/pack-node.sh` (the GPU host may have no node)');
if (!withTests && !existsSync(join(root, 'build-cuda', 'dev'))) log('note: build-cuda/dev is absent (kernel dev harnesses, optional): the device run removes it there');

// ---- verify: a staged copy of exactly what travels runs the CPU dry run
if (verify) {
  const stage = mkdtempSync(join(tmpdir(), 'tk-pack-'));
  try {
    // --with-tests: the whole working tree (the tests and vitest.config.ts travel with it)
    const tracked = git.status === 0 ? git.stdout.split('\0').filter(Boolean) : [];
    const files = withTests ? tracked : tracked.filter((f) => f === 'package.json' || f.startsWith(`bench${sep}`));
    if (files.length === 0) files.push('package.json', 'bench/gpu-check.mjs');
    for (const f of files) if (existsSync(join(root, f))) cpSync(join(root, f), join(stage, f), { recursive: true });
    for (const f of ['bench/gpu-check.mjs', 'bench/gpu_check_torch.py']) cpSync(join(root, f), join(stage, f));
    for (const p of CARRY.filter((c) => c !== '.device'))
      if (existsSync(join(root, p))) cpSync(join(root, p), join(stage, p), { recursive: true });
    if (withTests) {
      // as scripts/gpu-session.sh unpacks them on the GPU host
      mkdirSync(join(stage, 'build-cuda'), { recursive: true });
      for (const [tar, dir] of [['cuda.tar.xz', 'build-cuda'], ['test-deps.tar.xz', '.gpu-check/node_modules']]) {
        const r = spawnSync('tar', ['--no-same-owner', '-xJf', join('.gpu-check', tar), '-C', dir], { cwd: stage, encoding: 'utf8' });
        if (r.status !== 0) fail(`the staged copy cannot unpack .gpu-check/${tar}: ${r.stderr}`);
      }
    }
    symlinkSync('.gpu-check/node_modules', join(stage, 'node_modules'));
    const probe = [
      "const tk = await import('./dist/index.js');",
      "for (const m of ['@huggingface/jinja', '@huggingface/tokenizers', 'cli-progress', 'commander', 'yaml']) await import(m);",
      "console.log('dist loads, exports', Object.keys(tk).length, 'names; cuda:', JSON.stringify(tk.backend().cuda.reason ?? 'available'));",
    ].join('\n');
    const r1 = spawnSync(process.execPath, ['--input-type=module', '-e', probe], { cwd: stage, encoding: 'utf8' });
    if (r1.status !== 0) fail(`the staged copy does not load:\n${r1.stderr}`);
    log(`staged copy: ${r1.stdout.trim()}`);
    const r2 = spawnSync(process.execPath, ['bench/gpu-check.mjs', '--device', 'cpu', '--no-torch', '--only', '^(add|matmul|embedding) '], { cwd: stage, encoding: 'utf8' });
    const last = (r2.stdout.trim().split('\n').filter((l) => /passed in/.test(l)).pop() ?? '').trim();
    if (r2.status !== 0) fail(`the staged CPU dry run failed (status ${r2.status}):\n${r2.stdout.slice(-2000)}\n${r2.stderr.slice(-2000)}`);
    log(`staged CPU dry run: ${last}`);
    if (withTests) {
      const env = { ...process.env };
      delete env.TUNEKIT_CUDA_LIB;
      delete env.TUNEKIT_GPU_TEST_DEVICE;
      const vitest = (file, extra) => {
        const t0 = Date.now();
        const r = spawnSync(process.execPath, ['.gpu-check/node_modules/vitest/vitest.mjs', 'run', file], {
          cwd: stage,
          encoding: 'utf8',
          env: { ...env, ...extra },
        });
        const text = `${r.stdout}\n${r.stderr}`.replace(/\x1b\[[0-9;]*m/g, '');
        if (r.status !== 0) fail(`the staged vitest run of ${file} failed (status ${r.status}):\n${text.slice(-4000)}`);
        const tests = (text.match(/^\s*Tests\s+.*$/m) ?? [''])[0].trim();
        log(`staged vitest ${file}${extra.TUNEKIT_GPU_TEST_DEVICE ? ' (TUNEKIT_GPU_TEST_DEVICE=cpu)' : ''}: ${tests} in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
      };
      vitest('tests/gpu/ops.test.ts', { TUNEKIT_GPU_TEST_DEVICE: 'cpu' });
      vitest('tests/gpu/plumbing.test.ts', {});
    }
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

if (withTests)
  console.log(`
On the GPU host (the device tool's run, from the repository root; ~9 minutes at most, logs and
summary.txt under $OUT):
  command:   ${COMMAND}
  carry:     ${JSON.stringify(CARRY)}
  timeout_s: 600`);
else
  console.log(`
On the GPU host (the device tool's run, from the repository root):
  command: ${COMMAND}
  carry:   ${JSON.stringify(CARRY)}
Keeping the log and the JSON (what is under $OUT comes back):
  set -o pipefail; ${COMMAND} --json $OUT/gpu-check.json 2>&1 | tee $OUT/gpu-check.log
Add --quick for a smoke run, --only REGEX for some cases.`);
