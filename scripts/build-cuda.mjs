#!/usr/bin/env node
// Install step for the CUDA backend: builds kernels/ with cmake-js into
// build-cuda/libtunekit_cuda.so when nvcc is found. TUNEKIT_CUDA=0 skips it;
// TUNEKIT_CUDA_ARCHS overrides the targets (default "80;90"). Never fails the
// install: without nvcc (or on a build error) the CPU path works and
// tk.backend().cuda.reason says why.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const log = (m) => console.log(`tunekit: ${m}`);

if (process.env.TUNEKIT_CUDA === '0') {
  log('TUNEKIT_CUDA=0: skipping the CUDA backend');
  process.exit(0);
}
const which = spawnSync('sh', ['-c', 'command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null'], { encoding: 'utf8' });
const nvcc = which.stdout.trim().split('\n')[0];
if (!nvcc) {
  log('nvcc not found: skipping the CUDA backend (CPU only)');
  process.exit(0);
}
let cmakeJs;
try {
  cmakeJs = join(dirname(fileURLToPath(import.meta.resolve('cmake-js/package.json'))), 'bin', 'cmake-js');
} catch {
  cmakeJs = null;
}
if (!cmakeJs || !existsSync(cmakeJs)) {
  log('cmake-js is not installed: skipping the CUDA backend');
  process.exit(0);
}
const archs = process.env.TUNEKIT_CUDA_ARCHS ?? '80;90';
const args = [cmakeJs, 'compile', '-d', 'kernels', '-O', 'build-cuda', `--CDCMAKE_CUDA_ARCHITECTURES=${archs}`, `--CDCMAKE_CUDA_COMPILER=${nvcc}`];
log(`building the CUDA backend for sm_${archs.split(';').join(', sm_')} with ${nvcc}`);
// cmake-js fetches Node headers unless it knows a local Node directory; the
// backend does not use them, but the install must work offline.
const env = { ...process.env };
const nodeDir = dirname(dirname(process.execPath));
if (!env.npm_config_nodedir && existsSync(join(nodeDir, 'include', 'node', 'node.h'))) env.npm_config_nodedir = nodeDir;
const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit', env });
if (r.status !== 0) {
  log('CUDA backend build failed (see above); continuing with the CPU path');
  process.exit(0);
}
log(existsSync(join(root, 'build-cuda', 'libtunekit_cuda.so')) ? 'CUDA backend built: build-cuda/libtunekit_cuda.so' : 'CUDA backend build produced no library');
