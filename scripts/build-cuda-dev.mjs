#!/usr/bin/env node
// Builds the kernels/dev check-and-bench harnesses (gemm, lora, attention, int8, gae) for a
// GPU session prepared on a machine without a GPU, and puts them in build-cuda/dev/ (the path
// the device tool carries). Needs nvcc and cmake, no GPU and no cmake-js.
//
//   node scripts/build-cuda-dev.mjs [--archs 90] [--jobs 2] [--no-strip]
//
// It configures kernels/ into build-cuda-dev/ (-DTUNEKIT_CUDA_DEV=ON, Release, sm_90 by default:
// the H100/H200 of the device tool; TUNEKIT_CUDA_ARCHS or --archs override), builds only the
// dev_<op> targets and the library (build-cuda-dev/libtunekit_cuda.so, for these archs only),
// strips the harnesses' host symbols (the device code and its line info stay) and copies
// build-cuda-dev/dev/* to build-cuda/dev/. Both folders are git-ignored. It leaves
// build-cuda/libtunekit_cuda.so alone (scripts/build-cuda.mjs builds that one);
// scripts/pack-gpu-check.mjs --with-tests packs the sm_90 library of build-cuda-dev/ instead
// (half the size, and the same sources as the harnesses).
// Wrap it in `flock /tmp/tunekit-build.lock` where other builds share the machine.
import { spawnSync } from 'node:child_process';
import { copyFileSync, chmodSync, existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : dflt;
};
const archs = opt('--archs', process.env.TUNEKIT_CUDA_ARCHS ?? '90');
const jobs = opt('--jobs', process.env.TUNEKIT_BUILD_JOBS ?? '2');
const strip = !argv.includes('--no-strip');
const log = (m) => console.log(`build-cuda-dev: ${m}`);
const fail = (m) => {
  console.error(`build-cuda-dev: ${m}`);
  process.exit(1);
};
const sh = (cmd) => spawnSync('sh', ['-c', cmd], { encoding: 'utf8' }).stdout.trim().split('\n')[0];
const run = (cmd, args) => {
  log(`${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.error) fail(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) fail(`${cmd} exited ${r.status}`);
};

const nvcc = process.env.CUDACXX || sh('command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null');
if (!nvcc) fail('nvcc not found (put it on PATH or set CUDACXX)');
if (!sh('command -v cmake')) fail('cmake not found');

const ops = readdirSync(join(root, 'kernels', 'dev')).filter((f) => f.endsWith('.cu')).map((f) => f.slice(0, -3)).sort();
if (ops.length === 0) fail('no kernels/dev/*.cu');
const bdir = join(root, 'build-cuda-dev');
const cfg = ['-S', 'kernels', '-B', 'build-cuda-dev', '-DTUNEKIT_CUDA_DEV=ON', `-DCMAKE_CUDA_ARCHITECTURES=${archs}`,
  '-DCMAKE_BUILD_TYPE=Release', `-DCMAKE_CUDA_COMPILER=${nvcc}`];
if (!existsSync(join(bdir, 'CMakeCache.txt')) && sh('command -v ninja')) cfg.push('-G', 'Ninja');
const t0 = Date.now();
run('cmake', cfg);
run('cmake', ['--build', 'build-cuda-dev', '-j', String(jobs), '--target', 'tunekit_cuda', ...ops.map((o) => `dev_${o}`)]);
log(`built in ${((Date.now() - t0) / 1000).toFixed(0)} s`);

const dst = join(root, 'build-cuda', 'dev');
rmSync(dst, { recursive: true, force: true });
mkdirSync(dst, { recursive: true });
const MiB = 2 ** 20;
let total = 0;
for (const o of ops) {
  const src = join(bdir, 'dev', o);
  if (!existsSync(src)) fail(`build-cuda-dev/dev/${o} was not built`);
  const to = join(dst, o);
  copyFileSync(src, to);
  chmodSync(to, 0o755);
  if (strip && sh('command -v strip')) spawnSync('strip', ['--strip-unneeded', to]);
  const s = statSync(to).size;
  total += s;
  log(`build-cuda/dev/${o.padEnd(10)} ${(s / MiB).toFixed(1)} MiB (sm_${archs.split(';').join(', sm_')})`);
}
log(`build-cuda/dev: ${ops.length} harnesses, ${(total / MiB).toFixed(1)} MiB`);
const lib = join(bdir, 'libtunekit_cuda.so');
if (existsSync(lib)) log(`build-cuda-dev/libtunekit_cuda.so ${(statSync(lib).size / MiB).toFixed(1)} MiB (sm_${archs.split(';').join(', sm_')})`);
