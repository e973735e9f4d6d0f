// The addon's device plumbing, tested on any machine through the host test
// backend (tests/gpu/host-backend/host_backend.cc: the runtime half of the
// CUDA backend ABI over host memory, with the real caching allocator). Each
// case runs in a child process with TUNEKIT_CUDA_LIB pointing at it. The
// kernels themselves are tested on a real GPU by tests/gpu/ops.test.ts.
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
let lib = '';

beforeAll(() => {
  lib = join(mkdtempSync(join(tmpdir(), 'tunekit-hostbackend-')), 'host_backend.so');
  execFileSync('g++', ['-std=c++17', '-O1', '-shared', '-fPIC', `-I${join(root, 'native', 'include')}`, join(here, 'host-backend', 'host_backend.cc'), '-o', lib]);
}, 120_000);

/** Runs `body` (an async function body with `tk` in scope) in a child; returns what it returns. */
function child(body: string, env: Record<string, string> = {}): any {
  const code = `import('tunekit').then(async (tk) => { const r = await (async () => { ${body} })(); console.log(JSON.stringify(r)); })
    .catch((e) => { console.log(JSON.stringify({ error: String(e && e.message || e), name: e && e.constructor && e.constructor.name })); });`;
  const out = execFileSync(process.execPath, ['--expose-gc', '-e', code], {
    env: { ...process.env, TUNEKIT_CUDA_LIB: lib, ...env },
    encoding: 'utf8',
  });
  const lines = out.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!);
}

describe('device plumbing (host test backend)', () => {
  it('loads as an available device', () => {
    const r = child(`return tk.backend().cuda;`);
    expect(r.available).toBe(true);
    expect(r.devices[0].name).toBe('tunekit host test backend');
  });

  it('moves tensors to the device and back, bit for bit, with device set on every tensor', () => {
    const r = child(`
      const x = tk.randn([3, 5], { seed: 7 });
      const c = x.to('cuda');
      const back = c.to('cpu');
      const z = tk.zeros([4], { device: 'cuda' });
      const t = tk.tensor([1, 2, 3], [3], { device: 'cuda' });
      const i = tk.tensor(new Int32Array([5, -6]), [2]).to('cuda');
      return { dev: [x.device, c.device, back.device, z.device, t.device, i.device], same: c.to('cuda') === c,
        x: Array.from(x.toArray()), c: Array.from(c.toArray()), back: Array.from(back.toArray()),
        z: Array.from(z.toArray()), t: Array.from(t.toArray()), i: Array.from(i.toArray()), idt: i.dtype,
        rs: c.reshape ? null : null, str: String(c) };
    `);
    expect(r.dev).toEqual(['cpu', 'cuda', 'cpu', 'cuda', 'cuda', 'cuda']);
    expect(r.same).toBe(true);
    expect(r.c).toEqual(r.x);
    expect(r.back).toEqual(r.x);
    expect(r.z).toEqual([0, 0, 0, 0]);
    expect(r.t).toEqual([1, 2, 3]);
    expect(r.i).toEqual([5, -6]);
    expect(r.idt).toBe('i32');
    expect(r.str).toMatch(/device=cuda/);
  });

  it('runs broadcasting binary ops and strided copies on the device, equal to the CPU', () => {
    const r = child(`
      const a = tk.randn([2, 3, 4], { seed: 1 }), b = tk.randn([3, 1], { seed: 2 });
      const ac = a.to('cuda'), bc = b.to('cuda');
      const pairs = [
        [tk.ops.add(a, b), tk.ops.add(ac, bc)],
        [tk.ops.mul(a, 3), tk.ops.mul(ac, 3)],
        [tk.ops.sub(2, b), tk.ops.sub(2, bc)],
        [tk.ops.permute(a, [2, 0, 1]), tk.ops.permute(ac, [2, 0, 1])],
        [tk.ops.slice(a, 1, 1, 3), tk.ops.slice(ac, 1, 1, 3)],
        [tk.ops.concat([a, a], 2), tk.ops.concat([ac, ac], 2)],
        [tk.ops.reshape(a, [6, 4]), tk.ops.reshape(ac, [6, 4])],
      ];
      return pairs.map(([p, q]) => ({ cpu: Array.from(p.toArray()), dev: Array.from(q.toArray()), d: q.device, s: q.shape }));
    `);
    for (const p of r) {
      expect(p.d).toBe('cuda');
      expect(p.dev).toEqual(p.cpu);
    }
  });

  it('gradients flow on the device', () => {
    const r = child(`
      const x = tk.tensor([1, 2, 3], [3], { device: 'cuda', requiresGrad: true });
      const y = tk.ops.add(tk.ops.mul(x, x), x);
      y.backward(tk.ones([3], { device: 'cuda' }));
      return { g: Array.from(x.grad.toArray()), d: x.grad.device };
    `);
    // the host backend has no kernels for the mul backward's sum: mul uses mul and add only
    expect(r.error ?? null).toBe(null);
    expect(r.d).toBe('cuda');
    expect(r.g).toEqual([3, 5, 7]);
  });

  it('refuses to mix devices in one op, naming the argument and both devices', () => {
    const r = child(`
      try { tk.ops.add(tk.ones([2]), tk.ones([2], { device: 'cuda' })); return 'no error'; }
      catch (e) { return { m: e.message, n: e.constructor.name }; }
    `);
    expect(r.n).toBe('TypeError');
    expect(r.m).toMatch(/^add: argument 'b' is on cuda but the op runs on cpu/);
  });

  it('an op whose kernel the library lacks throws instead of crashing', () => {
    const r = child(`
      try { tk.ops.exp(tk.ones([2], { device: 'cuda' })); return 'no error'; }
      catch (e) { return { m: e.message }; }
    `);
    expect(r.m).toMatch(/^exp: the CUDA backend library has no 'unary_forward' kernel/);
  });

  it('memory statistics follow allocation, dispose, reuse and emptyCache', () => {
    const r = child(`
      const s0 = tk.cuda.memoryStats();
      const t = tk.zeros([1000], { device: 'cuda' });  // 4000 bytes: size class 4096
      const s1 = tk.cuda.memoryStats();
      t.dispose();
      const s2 = tk.cuda.memoryStats();
      const u = tk.zeros([1000], { device: 'cuda' });  // served from the cache
      const s3 = tk.cuda.memoryStats();
      u.dispose();
      tk.cuda.emptyCache();
      const s4 = tk.cuda.memoryStats();
      return [s0, s1, s2, s3, s4];
    `);
    const [s0, s1, s2, s3, s4] = r;
    expect(s1.allocatedBytes - s0.allocatedBytes).toBe(4096);
    expect(s1.peakBytes).toBeGreaterThanOrEqual(s1.allocatedBytes);
    expect(s2.allocatedBytes).toBe(s0.allocatedBytes);
    expect(s2.reservedBytes).toBe(s1.reservedBytes);  // cached, not returned
    expect(s3.deviceAllocCount).toBe(s2.deviceAllocCount);  // no new device allocation
    expect(s3.allocCount).toBe(s2.allocCount + 1);
    expect(s4.reservedBytes).toBe(s4.allocatedBytes);
    expect(s4.liveTensors).toBe(s0.liveTensors);
  });

  it('tensors dropped without dispose are freed after a garbage collection (no finalizer wait)', () => {
    const r = child(`
      const before = tk.cuda.memoryStats().allocatedBytes;
      for (let i = 0; i < 2000; i++) tk.zeros([256], { device: 'cuda' });  // never disposed
      globalThis.gc();
      const after = tk.cuda.memoryStats();  // sweeps
      return { before, after: after.allocatedBytes, live: after.liveTensors };
    `);
    expect(r.after - r.before).toBeLessThan(1024 * 64);
  });

  it('out of memory: the cache is emptied and the request retried, then a clear RangeError', () => {
    const r = child(`
      const a = tk.zeros([150000], { device: 'cuda' });  // 600 kB class
      a.dispose();  // cached
      const b = tk.zeros([180000], { device: 'cuda' });  // another class: fits only once the cache is emptied
      let err = null;
      try { tk.zeros([1 << 20], { device: 'cuda' }); } catch (e) { err = { m: e.message, n: e.constructor.name }; }
      return { ok: b.device, err };
    `, { TUNEKIT_TEST_DEVICE_BYTES: String(1 << 20) });
    expect(r.ok).toBe('cuda');
    expect(r.err.n).toBe('RangeError');
    expect(r.err.m).toMatch(/^empty: CUDA out of memory: tried to allocate 4194304 bytes \(\d+ free of 1048576\)/);
  });

  it('a kernel fault surfaces at the next synchronization as an error naming the op', () => {
    const r = child(`
      const t = tk.full([2], NaN, { device: 'cuda' });  // the host backend's injected fault
      try { t.toArray(); return 'no error'; } catch (e) { return { m: e.message }; }
    `, { TUNEKIT_TEST_FAULT_ON_NAN_FILL: '1' });
    expect(r.m).toMatch(/^toArray: a CUDA kernel failed: an illegal memory access/);
  });

  it('Module.to moves parameters in place; creation and optimizer state follow the device', () => {
    const r = child(`
      const lin = new tk.Linear(3, 2);
      const w = lin.weight;
      lin.to('cuda');
      return { same: lin.weight === w, dev: lin.weight.device, mdev: lin.device, b: lin.bias.device };
    `);
    expect(r).toEqual({ same: true, dev: 'cuda', mdev: 'cuda', b: 'cuda' });
  });

});
