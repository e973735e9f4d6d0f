// Check-and-bench harness of the flash attention kernels (kernels/attention.cu).
//
// GPU (built by -DTUNEKIT_CUDA_DEV=ON as build-cuda/dev/attention):
//   attention          every correctness case, then the benchmark
//   attention check    the correctness cases only
//   attention bench    the benchmark only (B=4, H=16, T=S=4096, D=128, bf16)
//   attention check-bn32  the correctness cases with the 32-key-tile forward variant
// Correctness: fresh random inputs, outputs poisoned with NaN, forward (o, lse) and
// backward (dq, dk, dv) against a float64 host reference (naive softmax(Q·Kᵀ·scale)·V
// and its gradients) on awkward shapes. f32 tolerance 1e-4 (relative norm error);
// bf16: 2× the error of an unfused bf16 computation (inputs rounded to bf16, the
// probabilities and dS rounded to bf16 before their products, outputs rounded),
// or 2e-2, whichever is larger. The benchmark checks sampled rows (o, lse, dq) and
// prints TFLOP/s: forward 4·B·H·T·S·D FLOPs (halved when causal), backward 2.5×.
//
// CPU emulator (no GPU needed): the same kernel bodies (attention.cuh) run on
// fibers, one per CUDA thread, with ldmatrix / mma.sync / shuffles emulated from
// their PTX definitions; every shared-memory access is checked for races (no
// barrier between a write and another warp's access), reads of uninitialized or
// in-flight (cp.async not yet waited) shared memory, and every global access for
// bounds. Build and run:
//   g++ -std=c++17 -O2 -x c++ -DTKA_EMU -Ikernels -Inative/include -I/usr/local/cuda/include
//       -Wno-unknown-pragmas kernels/dev/attention.cu -o /tmp/attention_emu && /tmp/attention_emu
#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "../attention.cuh"

#ifdef TKA_EMU
#include <ucontext.h>
#else
#include "harness.h"
#endif

using tkc::attn::Args;

// ============================================================================
#ifdef TKA_EMU
namespace emu {

[[noreturn]] void die(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::fprintf(stderr, "EMU ERROR: ");
  std::vfprintf(stderr, fmt, ap);
  std::fprintf(stderr, "\n");
  va_end(ap);
  std::exit(3);
}

struct Region {
  const char *lo, *hi;
  bool writable;
};
std::vector<Region> g_regions;
void reg(const void* p, size_t n, bool w) { g_regions.push_back({(const char*)p, (const char*)p + n, w}); }
void unreg(const void* p) {
  for (size_t i = 0; i < g_regions.size(); ++i)
    if (g_regions[i].lo == p) {
      g_regions.erase(g_regions.begin() + i);
      return;
    }
  die("unregister of an unknown buffer");
}

enum State { RUN, WOP, BAR, DONE };
enum Op { OP_NONE, OP_SHFL, OP_SYNCWARP, OP_LDSM, OP_LDSM_T, OP_MMA };

struct Shadow {
  int32_t wtid = -1, wbe = -1, wwe = -1, rbe = -1;
  uint32_t rwarps = 0;
  int32_t pending = 0;
};
struct Pending {
  char* dst;
  unsigned char data[16];
  int n;
};
struct ThreadSt {
  ucontext_t uc;
  std::vector<char> stack;
  State st = RUN;
  int op = OP_NONE;
  std::vector<Pending> pend;
};
struct WarpIO {
  float fin[32], fout[32];
  int imask[32];
  uint32_t addr[32];
  uint32_t a[32][4], b[32][2], r[32][4];
  float c[32][4], d[32][4];
};

struct Block;
struct Ctx;
Block* g_B = nullptr;

struct Block {
  int nt = 0;
  int64_t bid = 0, grid = 0;
  char* smem = nullptr;
  size_t smem_bytes = 0;
  std::vector<char> smem_store;
  std::vector<Shadow> sh;
  std::vector<ThreadSt> th;
  std::vector<WarpIO> io;
  ucontext_t sched;
  int be = 0;
  std::vector<int> we;
  std::function<void(Ctx&)> body;
  const char* kname = "";

  [[noreturn]] void fail(int t, const char* what, size_t off) {
    die("%s: block %lld thread %d (warp %d lane %d), shared offset %zu, barrier epoch %d", what, (long long)bid, t,
        t / 32, t % 32, off, be);
  }
  size_t off_of(int t, const void* p, size_t n, size_t align, const char* what) {
    const char* c = (const char*)p;
    if (c < smem || c + n > smem + smem_bytes) die("%s: %s outside shared memory (block %lld thread %d)", kname, what, (long long)bid, t);
    size_t off = size_t(c - smem);
    if (off % align) fail(t, "misaligned shared access", off);
    return off;
  }
  void read_mark(int t, size_t off, size_t n) {
    const int w = t / 32;
    for (size_t u = off / 2; u < (off + n + 1) / 2; ++u) {
      Shadow& s = sh[u];
      if (s.pending) fail(t, "read of shared memory with a cp.async in flight", u * 2);
      if (s.wtid < 0) fail(t, "read of uninitialized shared memory", u * 2);
      if (s.wtid != t && s.wbe == be && !(s.wtid / 32 == w && s.wwe < we[w]))
        fail(t, "race: read after another thread's write without a barrier", u * 2);
      if (s.rbe == be) s.rwarps |= 1u << w;
      else s.rbe = be, s.rwarps = 1u << w;
    }
  }
  void write_check(int t, size_t off, size_t n) {
    const int w = t / 32;
    for (size_t u = off / 2; u < (off + n + 1) / 2; ++u) {
      Shadow& s = sh[u];
      if (s.pending) fail(t, "write to shared memory with a cp.async in flight", u * 2);
      if (s.wtid >= 0 && s.wtid != t && s.wbe == be && !(s.wtid / 32 == w && s.wwe < we[w]))
        fail(t, "race: write after another thread's write without a barrier", u * 2);
      if (s.rbe == be && (s.rwarps & ~(1u << w))) fail(t, "race: write after another warp's read without a barrier", u * 2);
    }
  }
  void write_mark(int t, size_t off, size_t n) {
    const int w = t / 32;
    for (size_t u = off / 2; u < (off + n + 1) / 2; ++u) {
      Shadow& s = sh[u];
      s.wtid = t, s.wbe = be, s.wwe = we[w];
    }
  }
};

void check_global(const void* p, size_t n, bool write, const char* what) {
  const char* c = (const char*)p;
  for (const Region& r : g_regions)
    if (c >= r.lo && c + n <= r.hi) {
      if (write && !r.writable) die("%s: write to a read-only buffer (block %lld)", what, (long long)(g_B ? g_B->bid : -1));
      return;
    }
  die("%s: global access out of bounds at %p (%zu bytes) in %s block %lld", what, p, n, g_B ? g_B->kname : "?",
      (long long)(g_B ? g_B->bid : -1));
}

inline float bf_lo(uint32_t u) {
  uint32_t x = u << 16;
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}
inline float bf_hi(uint32_t u) {
  uint32_t x = u & 0xffff0000u;
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

struct Ctx {
  Block* B;
  int t;
  int tid() const { return t; }
  int64_t bid() const { return B->bid; }
  int64_t grid() const { return B->grid; }
  char* smem() const { return B->smem; }
  uint32_t saddr(const void* p) const { return uint32_t(B->off_of(t, p, 0, 1, "saddr")); }

  void yield() { swapcontext(&B->th[t].uc, &B->sched); }
  void warp_op(int op) {
    B->th[t].st = WOP;
    B->th[t].op = op;
    yield();
  }
  void sync() {
    B->th[t].st = BAR;
    yield();
  }
  void syncwarp() { warp_op(OP_SYNCWARP); }
  float shfl_xor(float v, int m) {
    WarpIO& io = B->io[t / 32];
    io.fin[t % 32] = v;
    io.imask[t % 32] = m;
    warp_op(OP_SHFL);
    return io.fout[t % 32];
  }
  void ldsm(uint32_t (&r)[4], uint32_t addr, int op) {
    if (addr % 16) B->fail(t, "ldmatrix row address not 16-byte aligned", addr);
    if (addr + 16 > B->smem_bytes) B->fail(t, "ldmatrix row outside shared memory", addr);
    WarpIO& io = B->io[t / 32];
    io.addr[t % 32] = addr;
    warp_op(op);
    for (int i = 0; i < 4; ++i) r[i] = io.r[t % 32][i];
  }
  void ldsm_x4(uint32_t (&r)[4], uint32_t addr) { ldsm(r, addr, OP_LDSM); }
  void ldsm_x4_t(uint32_t (&r)[4], uint32_t addr) { ldsm(r, addr, OP_LDSM_T); }
  void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    WarpIO& io = B->io[t / 32];
    const int l = t % 32;
    for (int i = 0; i < 4; ++i) io.a[l][i] = a[i], io.c[l][i] = c[i];
    io.b[l][0] = b0, io.b[l][1] = b1;
    warp_op(OP_MMA);
    for (int i = 0; i < 4; ++i) c[i] = io.d[l][i];
  }
  void cp(void* dst, const void* src, bool pred, int n) {
    size_t off = B->off_of(t, dst, n, n, "cp.async destination");
    if (pred) {
      if (reinterpret_cast<uintptr_t>(src) % n) die("cp.async source misaligned");
      check_global(src, n, false, "cp.async source");
    }
    B->write_check(t, off, n);
    Pending pd;
    pd.dst = (char*)dst;
    pd.n = n;
    if (pred) std::memcpy(pd.data, src, n);
    else std::memset(pd.data, 0, n);
    B->th[t].pend.push_back(pd);
    for (size_t u = off / 2; u < (off + n) / 2; ++u) B->sh[u].pending++;
  }
  void cp16(void* dst, const void* src, bool pred) { cp(dst, src, pred, 16); }
  void cp4(void* dst, const void* src, bool pred) { cp(dst, src, pred, 4); }
  void cp_commit() {}
  void cp_wait_all() {
    for (Pending& pd : B->th[t].pend) {
      size_t off = size_t(pd.dst - B->smem);
      for (size_t u = off / 2; u < (off + pd.n) / 2; ++u) B->sh[u].pending--;
      std::memcpy(pd.dst, pd.data, pd.n);
      B->write_mark(t, off, pd.n);
    }
    B->th[t].pend.clear();
  }
  template <class T>
  T lds(const T* p) {
    size_t off = B->off_of(t, p, sizeof(T), sizeof(T) > 16 ? 16 : sizeof(T), "lds");
    B->read_mark(t, off, sizeof(T));
    T v;
    std::memcpy(&v, p, sizeof(T));
    return v;
  }
  template <class T>
  void sts(T* p, T v) {
    size_t off = B->off_of(t, p, sizeof(T), sizeof(T) > 16 ? 16 : sizeof(T), "sts");
    B->write_check(t, off, sizeof(T));
    B->write_mark(t, off, sizeof(T));
    std::memcpy(p, &v, sizeof(T));
  }
  template <class T>
  T ldg(const T* p) {
    if (reinterpret_cast<uintptr_t>(p) % sizeof(T)) die("misaligned global load");
    check_global(p, sizeof(T), false, "ldg");
    T v;
    std::memcpy(&v, p, sizeof(T));
    return v;
  }
  template <class T>
  void stg(T* p, T v) {
    if (reinterpret_cast<uintptr_t>(p) % sizeof(T)) die("misaligned global store");
    check_global(p, sizeof(T), true, "stg");
    std::memcpy(p, &v, sizeof(T));
  }
  void atomic_add(float* p, float v) {
    if (reinterpret_cast<uintptr_t>(p) % 4) die("misaligned atomic");
    check_global(p, 4, true, "atomic");
    *p += v;
  }
  void atomic_add2(float* p, float x, float y) {
    if (reinterpret_cast<uintptr_t>(p) % 8) die("misaligned float2 atomic");
    check_global(p, 8, true, "atomic2");
    p[0] += x;
    p[1] += y;
  }
  float ex2(float x) { return std::exp2(x); }
};

void entry(int t) {
  Ctx c{g_B, t};
  g_B->body(c);
  if (!g_B->th[t].pend.empty()) die("%s: thread %d exits with cp.async in flight", g_B->kname, t);
  g_B->th[t].st = DONE;
  swapcontext(&g_B->th[t].uc, &g_B->sched);
  die("resumed a finished thread");
}

// the warp-collective operations, from their PTX definitions
void exec_warp(Block& B, int w) {
  WarpIO& io = B.io[w];
  const int op = B.th[w * 32].op;
  for (int l = 0; l < 32; ++l)
    if (B.th[w * 32 + l].op != op) die("%s: divergent warp operations in warp %d (block %lld)", B.kname, w, (long long)B.bid);
  switch (op) {
    case OP_SYNCWARP: B.we[w]++; break;
    case OP_SHFL:
      for (int l = 0; l < 32; ++l) io.fout[l] = io.fin[l ^ io.imask[l]];
      break;
    case OP_LDSM:
    case OP_LDSM_T: {
      // matrix i: rows from the addresses of lanes 8i..8i+7 (16 bytes each)
      for (int l = 0; l < 32; ++l) B.read_mark(w * 32 + l, io.addr[l], 16);
      auto elem = [&](int i, int row, int col) {
        uint16_t v;
        std::memcpy(&v, B.smem + io.addr[8 * i + row] + 2 * col, 2);
        return uint32_t(v);
      };
      for (int l = 0; l < 32; ++l)
        for (int i = 0; i < 4; ++i) {
          if (op == OP_LDSM)  // lane l: row l/4, columns 2(l%4), 2(l%4)+1
            io.r[l][i] = elem(i, l >> 2, 2 * (l & 3)) | (elem(i, l >> 2, 2 * (l & 3) + 1) << 16);
          else  // .trans: lane l: column l/4 of rows 2(l%4), 2(l%4)+1
            io.r[l][i] = elem(i, 2 * (l & 3), l >> 2) | (elem(i, 2 * (l & 3) + 1, l >> 2) << 16);
        }
      break;
    }
    case OP_MMA: {
      // m16n8k16 .row.col bf16: groupID g = lane/4, t = lane%4
      float A[16][16], Bm[16][8], C[16][8];
      for (int l = 0; l < 32; ++l) {
        const int g = l >> 2, t = l & 3;
        for (int j = 0; j < 2; ++j) {
          const uint32_t* a = io.a[l];
          A[g][2 * t + j] = j ? bf_hi(a[0]) : bf_lo(a[0]);
          A[g + 8][2 * t + j] = j ? bf_hi(a[1]) : bf_lo(a[1]);
          A[g][2 * t + 8 + j] = j ? bf_hi(a[2]) : bf_lo(a[2]);
          A[g + 8][2 * t + 8 + j] = j ? bf_hi(a[3]) : bf_lo(a[3]);
          Bm[2 * t + j][g] = j ? bf_hi(io.b[l][0]) : bf_lo(io.b[l][0]);
          Bm[2 * t + 8 + j][g] = j ? bf_hi(io.b[l][1]) : bf_lo(io.b[l][1]);
          C[g][2 * t + j] = io.c[l][j];
          C[g + 8][2 * t + j] = io.c[l][2 + j];
        }
      }
      for (int l = 0; l < 32; ++l) {
        const int g = l >> 2, t = l & 3;
        for (int e = 0; e < 4; ++e) {
          const int row = g + (e >> 1) * 8, col = 2 * t + (e & 1);
          float acc = C[row][col];
          for (int k = 0; k < 16; ++k) acc = std::fma(A[row][k], Bm[k][col], acc);
          io.d[l][e] = acc;
        }
      }
      break;
    }
    default: die("unknown warp op");
  }
  for (int l = 0; l < 32; ++l) B.th[w * 32 + l].st = RUN;
}

void run_block(const char* kname, int nt, int smem_bytes, int64_t bid, int64_t grid,
               const std::function<void(Ctx&)>& body) {
  static Block B;  // reused: the fiber stacks are allocated once
  B.kname = kname;
  B.nt = nt;
  B.bid = bid;
  B.grid = grid;
  B.smem_store.assign(size_t(smem_bytes) + 16, char(0x7f));  // garbage, never read (checked)
  B.smem = B.smem_store.data() + (16 - (reinterpret_cast<uintptr_t>(B.smem_store.data()) & 15)) % 16;
  B.smem_bytes = size_t(smem_bytes);
  B.sh.assign(size_t(smem_bytes) / 2 + 1, Shadow());
  if ((int)B.th.size() < nt) B.th.resize(nt);
  B.io.resize(nt / 32);
  B.be = 0;
  B.we.assign(nt / 32, 0);
  B.body = body;
  g_B = &B;
  if (nt % 32) die("block size not a multiple of 32");
  for (int t = 0; t < nt; ++t) {
    ThreadSt& T = B.th[t];
    if (T.stack.empty()) T.stack.resize(512 * 1024);
    T.st = RUN;
    T.op = OP_NONE;
    T.pend.clear();
    getcontext(&T.uc);
    T.uc.uc_stack.ss_sp = T.stack.data();
    T.uc.uc_stack.ss_size = T.stack.size();
    T.uc.uc_link = nullptr;
    makecontext(&T.uc, (void (*)())entry, 1, t);
  }
  for (;;) {
    for (int t = 0; t < nt; ++t)
      if (B.th[t].st == RUN) swapcontext(&B.sched, &B.th[t].uc);
    bool changed = false;
    int ndone = 0, nbar = 0;
    for (int w = 0; w < nt / 32; ++w) {
      int nw = 0;
      for (int l = 0; l < 32; ++l) nw += B.th[w * 32 + l].st == WOP;
      if (nw == 32) {
        exec_warp(B, w);
        changed = true;
      }
    }
    for (int t = 0; t < nt; ++t) ndone += B.th[t].st == DONE, nbar += B.th[t].st == BAR;
    if (ndone == nt) break;
    if (changed) continue;
    if (nbar + ndone == nt) {
      if (ndone) die("%s: __syncthreads after %d threads exited (block %lld)", kname, ndone, (long long)bid);
      B.be++;
      for (int t = 0; t < nt; ++t) B.th[t].st = RUN;
      continue;
    }
    die("%s: deadlock (a warp split between a barrier and a warp operation?) in block %lld", kname, (long long)bid);
  }
  g_B = nullptr;
}

template <class K>
const char* kernel_name() {
  return __PRETTY_FUNCTION__;
}

struct Launcher {
  template <class... A>
  int fail(const char* fmt, A... args) {
    std::fprintf(stderr, "fail: ");
    std::fprintf(stderr, fmt, args...);
    std::fprintf(stderr, "\n");
    return -1;
  }
  template <class K>
  int launch(int64_t grid, const Args& a) {
    if (K::kSmem > 166912) die("%s needs %d bytes of shared memory, more than an A100 block can have", kernel_name<K>(), K::kSmem);
    for (int64_t b = 0; b < grid; ++b)
      run_block(kernel_name<K>(), K::kThreads, K::kSmem, b, grid, [&](Ctx& c) { K::template run<Ctx>(c, a); });
    return 0;
  }
  int zero(void* p, size_t n) {
    check_global(p, n, true, "zero");
    std::memset(p, 0, n);
    return 0;
  }
  void* scratch(size_t n) {
    size_t m = (n + 255) / 256 * 256;
    void* p = std::aligned_alloc(256, m ? m : 256);
    std::memset(p, 0xff, m);  // NaN: the kernels must not read what they did not write
    reg(p, n, true);
    return p;
  }
  void release(void* p) {
    unreg(p);
    std::free(p);
  }
  int finish() { return 0; }
  int64_t grid_cap(int threads, int64_t work) {  // small, to exercise the grid-stride loops
    int64_t g = (work + threads - 1) / threads;
    return g < 1 ? 1 : g < 3 ? g : 3;
  }
};

}  // namespace emu

// the test driver's view of the backend
namespace be {
void* alloc_bytes(size_t n, bool writable) {
  size_t m = (n + 255) / 256 * 256;
  void* p = std::aligned_alloc(256, m ? m : 256);
  emu::reg(p, n, writable);
  return p;
}
void* upload(const std::vector<float>& h, tk_dtype dt) {
  size_t n = h.size();
  if (dt == TK_BF16) {
    auto* p = static_cast<tkc::bf16*>(alloc_bytes(n * 2, false));
    for (size_t i = 0; i < n; ++i) p[i] = __float2bfloat16_rn(h[i]);
    return p;
  }
  auto* p = static_cast<float*>(alloc_bytes(n * 4, false));
  std::memcpy(p, h.data(), n * 4);
  return p;
}
void* upload_i32(const std::vector<int>& h) {
  auto* p = static_cast<int*>(alloc_bytes(h.size() * 4, false));
  std::memcpy(p, h.data(), h.size() * 4);
  return p;
}
void* poisoned(size_t n, tk_dtype dt) {
  size_t bytes = n * (dt == TK_BF16 ? 2 : 4);
  void* p = alloc_bytes(bytes, true);
  if (dt == TK_BF16) {
    auto* b = static_cast<tkc::bf16*>(p);
    for (size_t i = 0; i < n; ++i) b[i] = __float2bfloat16_rn(NAN);
  } else {
    auto* f = static_cast<float*>(p);
    for (size_t i = 0; i < n; ++i) f[i] = NAN;
  }
  return p;
}
std::vector<float> download(const void* p, size_t n, tk_dtype dt) {
  std::vector<float> h(n);
  for (size_t i = 0; i < n; ++i)
    h[i] = dt == TK_BF16 ? __bfloat162float(static_cast<const tkc::bf16*>(p)[i]) : static_cast<const float*>(p)[i];
  return h;
}
void release(void* p) {
  if (!p) return;
  emu::unreg(p);
  std::free(p);
}
int forward(const tk_attention_params* p) {
  emu::Launcher l;
  return tkc::attn::forward_impl(l, p);
}
int backward(const tk_attention_params* p) {
  emu::Launcher l;
  return tkc::attn::backward_impl(l, p);
}
const char* last_error() { return "(see stderr)"; }
}  // namespace be

#else  // ============================================================== GPU
namespace be {
void* upload(const std::vector<float>& h, tk_dtype dt) { return dev::upload(h, dt); }
void* upload_i32(const std::vector<int>& h) {
  void* d = dev::api().alloc(h.size() * 4 + 16);
  dev::ok(dev::api().memcpy_h2d(d, h.data(), h.size() * 4), "upload kv_len");
  return d;
}
void* poisoned(size_t n, tk_dtype dt) { return dev::poisoned(n, dt); }
std::vector<float> download(const void* p, size_t n, tk_dtype dt) { return dev::download(p, n, dt); }
void release(void* p) {
  if (p) dev::api().free(p);
}
int forward(const tk_attention_params* p) { return tkc::attention_forward(p); }
int backward(const tk_attention_params* p) { return tkc::attention_backward(p); }
const char* last_error() { return dev::api().last_error(); }
}  // namespace be
#endif

// ============================================================================
// float64 reference
namespace {

int g_fail = 0;

float rbf(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }

std::vector<float> randn(size_t n, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

struct Case {
  std::string name;
  int B, H, Hkv, T, S, D;
  int causal;
  std::vector<int> kv_len;  // empty: none
};

int lim_of(const Case& c, int b, int t) {
  int cap = c.S;
  if (!c.kv_len.empty()) cap = std::min(std::max(c.kv_len[b], 0), c.S);
  if (c.causal) cap = (int)std::min<long long>(cap, (long long)t + c.S - c.T + 1);
  return cap;
}

struct Inputs {
  std::vector<float> q, k, v, dout;
};

// One query row: o, lse, dq (and, when dk / dv are given, this row's terms of dK and dV).
// unf: the unfused bf16 model (inputs must be rounded already; P, O, dS rounded to bf16).
void ref_row(const Case& c, const Inputs& in, int b, int h, int t, bool unf, double* o, double* lse, double* dq,
             double* dk, double* dv) {
  const int D = c.D, S = c.S, G = c.H / c.Hkv, hk = h / G;
  const double scale = 1.0 / std::sqrt(double(D));
  const float* q = &in.q[((size_t(b) * c.H + h) * c.T + t) * D];
  const float* go = &in.dout[((size_t(b) * c.H + h) * c.T + t) * D];
  const float* K = &in.k[(size_t(b) * c.Hkv + hk) * S * D];
  const float* V = &in.v[(size_t(b) * c.Hkv + hk) * S * D];
  const int lim = lim_of(c, b, t);
  for (int d = 0; d < D; ++d) o[d] = 0, dq[d] = 0;
  if (lim <= 0) {
    *lse = -INFINITY;
    return;
  }
  std::vector<double> s(lim), p(lim), pm(lim);
  double m = -INFINITY;
  for (int j = 0; j < lim; ++j) {
    double acc = 0;
    for (int d = 0; d < D; ++d) acc += double(q[d]) * K[size_t(j) * D + d];
    s[j] = acc * scale;
    m = std::max(m, s[j]);
  }
  double sum = 0;
  for (int j = 0; j < lim; ++j) sum += (p[j] = std::exp(s[j] - m));
  for (int j = 0; j < lim; ++j) {
    p[j] /= sum;
    pm[j] = unf ? rbf(float(p[j])) : p[j];
  }
  *lse = m + std::log(sum);
  for (int j = 0; j < lim; ++j)
    for (int d = 0; d < D; ++d) o[d] += pm[j] * V[size_t(j) * D + d];
  if (unf)
    for (int d = 0; d < D; ++d) o[d] = rbf(float(o[d]));
  double delta = 0;
  for (int d = 0; d < D; ++d) delta += double(go[d]) * o[d];
  for (int j = 0; j < lim; ++j) {
    double dp = 0;
    for (int d = 0; d < D; ++d) dp += double(go[d]) * V[size_t(j) * D + d];
    double ds = p[j] * (dp - delta) * scale;
    if (unf) ds = rbf(float(ds));
    for (int d = 0; d < D; ++d) dq[d] += ds * K[size_t(j) * D + d];
    if (dk)
      for (int d = 0; d < D; ++d) {
        dk[size_t(j) * D + d] += ds * q[d];
        dv[size_t(j) * D + d] += pm[j] * go[d];
      }
  }
  if (unf)
    for (int d = 0; d < D; ++d) dq[d] = rbf(float(dq[d]));
}

struct Ref {
  std::vector<double> o, lse, dq, dk, dv;
};
Ref reference(const Case& c, const Inputs& in, bool unf) {
  const size_t D = c.D;
  Ref r;
  r.o.assign(size_t(c.B) * c.H * c.T * D, 0);
  r.dq = r.o;
  r.lse.assign(size_t(c.B) * c.H * c.T, 0);
  r.dk.assign(size_t(c.B) * c.Hkv * c.S * D, 0);
  r.dv = r.dk;
  const int G = c.H / c.Hkv;
  for (int b = 0; b < c.B; ++b)
    for (int h = 0; h < c.H; ++h)
      for (int t = 0; t < c.T; ++t) {
        const size_t row = (size_t(b) * c.H + h) * c.T + t;
        const size_t kv = (size_t(b) * c.Hkv + h / G) * c.S * D;
        ref_row(c, in, b, h, t, unf, &r.o[row * D], &r.lse[row], &r.dq[row * D], &r.dk[kv], &r.dv[kv]);
      }
  if (unf) {
    for (auto& x : r.dk) x = rbf(float(x));
    for (auto& x : r.dv) x = rbf(float(x));
  }
  return r;
}

double rel_err(const std::vector<float>& got, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    double d = double(got[i]) - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  return std::sqrt(num / (den > 0 ? den : 1));
}
std::vector<float> to_f(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }
// lse: -inf exactly where the reference has -inf, relative norm error over the rest
double lse_err(const std::vector<float>& got, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (std::isinf(ref[i])) {
      if (!(std::isinf(got[i]) && got[i] < 0)) return INFINITY;
      continue;
    }
    double d = double(got[i]) - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  return std::sqrt(num / (den > 0 ? den : 1));
}

void line(const Case& c, tk_dtype dt, const char* what, double err, double tol, double ms, double flops) {
  bool pass = std::isfinite(err) && err <= tol;
  if (!pass) ++g_fail;
  char shape[160];
  std::snprintf(shape, sizeof shape, "B%d H%d/%d T%d S%d D%d%s%s", c.B, c.H, c.Hkv, c.T, c.S, c.D,
                c.causal ? " causal" : "", c.kv_len.empty() ? "" : " kvlen");
  std::printf("%-9s %-44s %-4s %-4s", c.name.c_str(), shape, dt == TK_BF16 ? "bf16" : "f32", what);
  if (ms > 0) std::printf(" %8.3f ms %7.2f TFLOP/s", ms, flops / (ms * 1e-3) / 1e12);
  std::printf("  err %.2e (tol %.1e) %s\n", err, tol, pass ? "PASS" : "FAIL");
  std::fflush(stdout);
}

double fwd_flops(const Case& c) {
  double f = 4.0 * c.B * c.H * double(c.T) * c.S * c.D;
  return c.causal ? f / 2 : f;
}

#ifndef TKA_EMU
template <class F>
double time_ms(F&& fn, int iters, int warmup) {
  return dev::time_ms(fn, iters, warmup);
}
#else
template <class F>
double time_ms(F&&, int, int) {
  return 0;
}
#endif

void run_case(const Case& c, tk_dtype dt, uint64_t seed, bool timed) {
  const size_t nq = size_t(c.B) * c.H * c.T * c.D, nk = size_t(c.B) * c.Hkv * c.S * c.D,
               nr = size_t(c.B) * c.H * c.T;
  Inputs in{randn(nq, seed + 1), randn(nk, seed + 2), randn(nk, seed + 3), randn(nq, seed + 4)};
  Inputs inb = in;  // what the device sees in bf16
  if (dt == TK_BF16)
    for (auto* v : {&inb.q, &inb.k, &inb.v, &inb.dout})
      for (auto& x : *v) x = rbf(x);
  void* q = be::upload(in.q, dt);
  void* k = be::upload(in.k, dt);
  void* v = be::upload(in.v, dt);
  void* go = be::upload(in.dout, dt);
  void* kl = c.kv_len.empty() ? nullptr : be::upload_i32(c.kv_len);
  void* o = be::poisoned(nq, dt);
  void* lse = be::poisoned(nr, TK_F32);
  tk_attention_params p{};
  p.dt = dt;
  p.B = c.B, p.H = c.H, p.Hkv = c.Hkv, p.T = c.T, p.S = c.S, p.D = c.D;
  p.scale = float(1.0 / std::sqrt(double(c.D)));
  p.causal = c.causal;
  p.q = q, p.k = k, p.v = v, p.kv_len = static_cast<const int32_t*>(kl);
  p.o = o, p.lse = static_cast<float*>(lse), p.dout = go;
  if (be::forward(&p) != 0) {
    std::printf("%s: forward failed: %s\n", c.name.c_str(), be::last_error());
    ++g_fail;
    return;
  }
  std::vector<float> oh = be::download(o, nq, dt), lh = be::download(lse, nr, TK_F32);
  void* dq = be::poisoned(nq, dt);
  void* dk = be::poisoned(nk, dt);
  void* dv = be::poisoned(nk, dt);
  p.dq = dq, p.dk = dk, p.dv = dv;
  if (be::backward(&p) != 0) {
    std::printf("%s: backward failed: %s\n", c.name.c_str(), be::last_error());
    ++g_fail;
    return;
  }
  std::vector<float> dqh = be::download(dq, nq, dt), dkh = be::download(dk, nk, dt), dvh = be::download(dv, nk, dt);
  double fms = 0, bms = 0;
  if (timed) {
    fms = time_ms([&] { be::forward(&p); }, 5, 1);
    bms = time_ms([&] { be::backward(&p); }, 5, 1);
  }

  Ref ref = reference(c, in, false);
  double tol_o = 1e-4, tol_l = 1e-4, tol_q = 1e-4, tol_k = 1e-4, tol_v = 1e-4;
  if (dt == TK_BF16) {
    Ref u = reference(c, inb, true);
    auto tol = [](double e) { return std::max(2 * e, 2e-2); };
    tol_o = tol(rel_err(to_f(u.o), ref.o));
    tol_l = tol(lse_err(to_f(u.lse), ref.lse));
    tol_q = tol(rel_err(to_f(u.dq), ref.dq));
    tol_k = tol(rel_err(to_f(u.dk), ref.dk));
    tol_v = tol(rel_err(to_f(u.dv), ref.dv));
  }
  line(c, dt, "o", rel_err(oh, ref.o), tol_o, fms, fwd_flops(c));
  line(c, dt, "lse", lse_err(lh, ref.lse), tol_l, 0, 0);
  line(c, dt, "dq", rel_err(dqh, ref.dq), tol_q, bms, 2.5 * fwd_flops(c));
  line(c, dt, "dk", rel_err(dkh, ref.dk), tol_k, 0, 0);
  line(c, dt, "dv", rel_err(dvh, ref.dv), tol_v, 0, 0);
  for (void* x : {q, k, v, go, kl, o, lse, dq, dk, dv}) be::release(x);
}

std::vector<Case> cases() {
  std::vector<Case> v;
  v.push_back({"square", 2, 3, 3, 37, 37, 64, 0, {}});
  v.push_back({"square", 2, 3, 3, 37, 37, 64, 1, {}});
  v.push_back({"S>T", 1, 2, 2, 19, 53, 64, 0, {}});
  v.push_back({"S>T", 1, 2, 2, 19, 53, 64, 1, {}});
  v.push_back({"S<T", 1, 2, 2, 53, 19, 64, 1, {}});  // the first rows see no key
  v.push_back({"gqa", 2, 6, 2, 37, 37, 128, 1, {}});
  v.push_back({"gqa", 1, 6, 2, 19, 53, 128, 0, {}});
  v.push_back({"kvlen", 3, 4, 2, 37, 53, 64, 0, {0, 29, 53}});
  v.push_back({"kvlen", 3, 4, 2, 37, 53, 64, 1, {0, 29, 45}});
  v.push_back({"d40", 1, 2, 1, 19, 53, 40, 1, {}});
  v.push_back({"d80", 1, 2, 2, 37, 37, 80, 0, {}});
  v.push_back({"d128", 1, 2, 2, 19, 53, 128, 1, {50}});
  v.push_back({"d200", 1, 2, 1, 37, 53, 200, 1, {}});
  v.push_back({"d200", 1, 1, 1, 19, 37, 200, 0, {}});
  v.push_back({"d20", 1, 2, 2, 37, 37, 20, 1, {}});   // D % 8 != 0: element loads
  v.push_back({"d1", 1, 1, 1, 5, 9, 1, 0, {}});
  v.push_back({"t1", 2, 2, 1, 1, 1, 64, 1, {}});
  v.push_back({"d256", 1, 2, 2, 37, 53, 256, 1, {}});
  v.push_back({"d192", 1, 8, 1, 19, 37, 192, 0, {37}});
  v.push_back({"d32", 2, 2, 2, 37, 37, 32, 1, {37, 1}});
  v.push_back({"s0", 1, 2, 1, 5, 0, 64, 0, {}});  // no keys: o = 0, lse = -inf, zero gradients
  v.push_back({"t0", 1, 2, 1, 0, 7, 64, 1, {}});  // no queries: zero dk, dv
  // several query and key tiles per head (the pipelines, the causal tile skipping)
  v.push_back({"tiles", 1, 4, 2, 300, 300, 128, 1, {}});
  v.push_back({"tiles", 1, 2, 2, 300, 300, 128, 0, {}});
  v.push_back({"tiles", 2, 2, 1, 200, 520, 64, 1, {0, 450}});
  v.push_back({"tiles", 1, 2, 2, 150, 150, 200, 1, {}});
  v.push_back({"tiles", 1, 2, 1, 130, 260, 96, 0, {}});
  return v;
}

#ifndef TKA_EMU
// B=4, H=16, T=S=4096, D=128 bf16: sampled rows of o, lse, dq checked; times printed
void bench(int causal) {
  Case c{"bench", 4, 16, 16, 4096, 4096, 128, causal, {}};
  const tk_dtype dt = TK_BF16;
  const size_t nq = size_t(c.B) * c.H * c.T * c.D, nk = size_t(c.B) * c.Hkv * c.S * c.D, nr = size_t(c.B) * c.H * c.T;
  Inputs in{randn(nq, 11 + causal), randn(nk, 12), randn(nk, 13), randn(nq, 14)};
  Inputs inb = in;
  for (auto* v : {&inb.q, &inb.k, &inb.v, &inb.dout})
    for (auto& x : *v) x = rbf(x);
  void* q = be::upload(in.q, dt);
  void* k = be::upload(in.k, dt);
  void* v = be::upload(in.v, dt);
  void* go = be::upload(in.dout, dt);
  void* o = be::poisoned(nq, dt);
  void* lse = be::poisoned(nr, TK_F32);
  void* dq = be::poisoned(nq, dt);
  void* dk = be::poisoned(nk, dt);
  void* dv = be::poisoned(nk, dt);
  tk_attention_params p{};
  p.dt = dt;
  p.B = c.B, p.H = c.H, p.Hkv = c.Hkv, p.T = c.T, p.S = c.S, p.D = c.D;
  p.scale = float(1.0 / std::sqrt(double(c.D)));
  p.causal = causal;
  p.q = q, p.k = k, p.v = v, p.o = o, p.lse = static_cast<float*>(lse), p.dout = go;
  p.dq = dq, p.dk = dk, p.dv = dv;
  dev::ok(be::forward(&p), "forward");
  dev::ok(be::backward(&p), "backward");
  dev::ok(dev::api().synchronize(), "synchronize");
  std::vector<float> oh = be::download(o, nq, dt), lh = be::download(lse, nr, TK_F32), dqh = be::download(dq, nq, dt);
  // sampled rows against float64
  std::vector<float> go_, gl, gq;
  std::vector<double> ro, rl, rq, uo, ul, uq;
  std::vector<double> bo(c.D), bq(c.D);
  double bl;
  std::mt19937 rng(5);
  for (int i = 0; i < 48; ++i) {
    int b = i % c.B, h = (i * 7) % c.H;
    int t = i == 0 ? 0 : i == 1 ? c.T - 1 : int(rng() % c.T);
    size_t row = (size_t(b) * c.H + h) * c.T + t;
    ref_row(c, in, b, h, t, false, bo.data(), &bl, bq.data(), nullptr, nullptr);
    ro.insert(ro.end(), bo.begin(), bo.end());
    rq.insert(rq.end(), bq.begin(), bq.end());
    rl.push_back(bl);
    ref_row(c, inb, b, h, t, true, bo.data(), &bl, bq.data(), nullptr, nullptr);
    uo.insert(uo.end(), bo.begin(), bo.end());
    uq.insert(uq.end(), bq.begin(), bq.end());
    ul.push_back(bl);
    go_.insert(go_.end(), oh.begin() + row * c.D, oh.begin() + (row + 1) * c.D);
    gq.insert(gq.end(), dqh.begin() + row * c.D, dqh.begin() + (row + 1) * c.D);
    gl.push_back(lh[row]);
  }
  auto tol = [](double e) { return std::max(2 * e, 2e-2); };
  const double F = fwd_flops(c);
  auto& tn = tkc::attn::tune();
  const int variants[2] = {64, 32};
  for (int bn : variants) {
    tn.fwd_bn = bn;
    double ms = time_ms([&] { be::forward(&p); }, 20, 3);
    std::string nm = "fwd bn" + std::to_string(bn);
    c.name = nm;
    line(c, dt, "o", rel_err(go_, ro), tol(rel_err(to_f(uo), ro)), ms, F);
  }
  tn.fwd_bn = 0;
  dev::ok(be::forward(&p), "forward");
  c.name = "bwd";
  double ms = time_ms([&] { be::backward(&p); }, 10, 2);
  line(c, dt, "dq", rel_err(gq, rq), tol(rel_err(to_f(uq), rq)), ms, 2.5 * F);
  c.name = "fwd";
  line(c, dt, "lse", lse_err(gl, rl), tol(lse_err(to_f(ul), rl)), 0, 0);
  dev::Limits lim = dev::limits();
  std::printf("device %s: dense bf16 peak %.0f TFLOP/s\n", lim.name.c_str(), lim.bf16_tflops);
  for (void* x : {q, k, v, go, o, lse, dq, dk, dv}) be::release(x);
}
#endif

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "all";
  uint64_t seed = 1000;
  if (mode == "check-bn32") {  // the correctness cases with the 32-key forward variant (D in (96, 128])
    tkc::attn::tune().fwd_bn = 32;
    mode = "check";
  }
  if (mode == "all" || mode == "check") {
    for (const Case& c : cases())
      for (tk_dtype dt : {TK_F32, TK_BF16}) {
#ifdef TKA_EMU
        run_case(c, dt, seed += 10, false);
#else
        run_case(c, dt, seed += 10, true);
#endif
      }
  }
#ifndef TKA_EMU
  if (mode == "all" || mode == "bench") {
    bench(0);
    bench(1);
  }
#endif
  std::printf("%s: %d failure(s)\n", g_fail ? "FAIL" : "PASS", g_fail);
  return g_fail ? 1 : 0;
}
