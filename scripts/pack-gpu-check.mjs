#!/usr/bin/env node
// Packs what bench/gpu-check.mjs needs on a GPU host that has no npm (and maybe no Node.js):
// .gpu-check/node_modules with the production dependencies of package.json and their
// transitive dependencies only (from `npm ls --omit=dev --all --parseable`). Then it checks
// that the carried set is self-sufficient (a staged copy of it runs the script's CPU dry run),
// prints the size against the 64 MiB limit, and prints the device command line and carry list.
//
//   node scripts/pack-gpu-check.mjs [--no-verify]
//
// Build first: `npx tsc -p tsconfig.json` (dist/), the addon (build/Release/tunekit.node) and the
// CUDA library (build-cuda/libtunekit_cuda.so); the Node binary comes from
// `bash ../shared/tools/pack-node.sh` (.device/). .gpu-check/ is git-ignored.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const verify = !process.argv.includes('--no-verify');
const MiB = 2 ** 20;
const LIMIT = 64 * MiB;
const CARRY = ['.device', 'build/Release/tunekit.node', 'build-cuda/libtunekit_cuda.so', 'build-cuda/dev', 'dist', '.gpu-check'];
const COMMAND = 'source .device/env.sh && ln -sfnT .gpu-check/node_modules node_modules && node bench/gpu-check.mjs';
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
if (carried + tree > LIMIT) fail('over the 64 MiB limit');
if (carried + tree > 0.75 * LIMIT) log('warning: above 75% of the limit');

const need = ['dist/index.js', 'build/Release/tunekit.node', 'build-cuda/libtunekit_cuda.so'];
for (const p of need) if (!existsSync(join(root, p))) log(`warning: ${p} is missing: build it before carrying`);
if (!existsSync(join(root, '.device', 'node.xz')) || !existsSync(join(root, '.device', 'env.sh')))
  log('warning: .device/node.xz or .device/env.sh is missing: run `bash ../shared/tools/pack-node.sh` (the GPU host may have no node)');
if (!existsSync(join(root, 'build-cuda', 'dev'))) log('note: build-cuda/dev is absent (kernel dev harnesses, optional): the device run removes it there');

// ---- verify: a staged copy of exactly what travels runs the CPU dry run
if (verify) {
  const stage = mkdtempSync(join(tmpdir(), 'tk-pack-'));
  try {
    const files = git.status === 0 ? git.stdout.split('\0').filter((f) => f && (f === 'package.json' || f.startsWith(`bench${sep}`))) : ['package.json', 'bench/gpu-check.mjs'];
    for (const f of files) if (existsSync(join(root, f))) cpSync(join(root, f), join(stage, f), { recursive: true });
    for (const f of ['bench/gpu-check.mjs', 'bench/gpu_check_torch.py']) cpSync(join(root, f), join(stage, f));
    for (const p of ['dist', 'build/Release/tunekit.node', 'build-cuda/libtunekit_cuda.so', '.gpu-check'])
      if (existsSync(join(root, p))) cpSync(join(root, p), join(stage, p), { recursive: true });
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
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

console.log(`
On the GPU host (the device tool's run, from the repository root):
  command: ${COMMAND}
  carry:   ${JSON.stringify(CARRY)}
Keeping the log and the JSON (what is under $OUT comes back):
  set -o pipefail; ${COMMAND} --json $OUT/gpu-check.json 2>&1 | tee $OUT/gpu-check.log
Add --quick for a smoke run, --only REGEX for some cases.`);
