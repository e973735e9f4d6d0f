// Flash attention on CUDA: the kernel bodies and the launch plan, shared by
// attention.cu (the device build) and the CPU emulator of kernels/dev/attention.cu
// (-DTKA_EMU, which runs these same bodies on fibers and checks every shared-memory
// access for races, so that the index math is tested without a GPU).
//
// Every body is a template over an execution context C that provides the thread
// and block index, barriers, warp shuffles, ldmatrix, mma.sync, cp.async, shared
// and global memory accesses (see DevCtx in attention.cu for the device one).
// Bodies touch shared memory only through C::lds / C::sts / ldmatrix / cp.async
// and global memory only through C::ldg / C::stg / cp.async / atomics.
//
// Layouts: q [B, H, T, D], k, v [B, Hkv, S, D], o like q, lse [B, H, T] f32.
// Query head h reads kv head h / (H / Hkv). Row q sees keys j < lim(q), with
// lim(q) = min(kv_len[b], S) and, with causal, also j <= q + (S - T); a row with
// lim <= 0 gives o = 0 and lse = -inf.
//
// bf16 forward (FwdBf16): FlashAttention-2 schedule. One CTA of 4 warps per
// (b, h, tile of BM = 64·MT queries); warp w owns MT m16 tiles (16·MT query rows;
// MT = 2 for D <= 128: each K / V fragment read from shared memory then feeds two
// mma, which halves the ldmatrix traffic per mma, the bound with 16-row warps);
// loop over key tiles of BN = 64 keys. Q stays in shared memory (ldmatrix every
// k-step), K and V tiles stream in with cp.async: V_j is loaded during S = Q·K_jᵀ
// and the softmax, K_{j+1} during P·V_j (one buffer each). Scores, the online
// softmax (base 2, the scale folded into log2 e) and the O accumulator live in
// registers; P goes from the S accumulator straight into the A fragments of the
// P·V mma (no shared memory). Key tiles past the last key a CTA's rows see are
// never loaded; the causal (costlier) query tiles of a head are scheduled first.
//
// bf16 backward (BwdBf16): one CTA of 8 warps per (b, kv head, tile of 64 keys),
// looping over the G query heads of the kv head and the query tiles that see the
// keys (BM queries per step, Q/dO/lse/delta double-buffered with cp.async).
// Warps 0-3 ("P warps") own 16 keys each and compute Sᵀ = K·Qᵀ, Pᵀ = exp(Sᵀ − lse)
// and dV += Pᵀ·dO; warps 4-7 ("dP warps") own the same 16 keys each and compute
// dPᵀ = V·dOᵀ, dSᵀ = Pᵀ∘(dPᵀ − delta)·scale (Pᵀ handed over in shared memory, f32)
// and dK += dSᵀ·Q. K (P warps) or V (dP warps) stays in registers as mma A
// fragments for D <= 128. Then all 8 warps compute dQ = dS·K for the step and add
// it into an f32 [B·H·T, Dp] scratch with atomics (float2 atomics on sm_90); a
// last kernel converts it to bf16. delta = rowsum(dO∘O) comes from a small
// preprocessing kernel. dK and dV stay in registers until the CTA ends.
//
// f32 (FwdF32, BwdF32): the same schedules on SIMT cores, 32×32 tiles, 256
// threads, every product and accumulation in f32 (no tensor cores, no TF32).
//
// Head dims: bf16 pads D to Dp in {32, 64, 96, 128, 192, 256} with zero-filled
// columns (D % 8 == 0 with 16-byte aligned tensors loads with cp.async, any other
// D element by element); f32 pads to a multiple of 32.
#pragma once
#include <cmath>
#include <cstdint>

#include "common.cuh"

#define TKA_DEV __device__ __forceinline__

namespace tkc {
namespace attn {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

struct Args {
  const void *q, *k, *v;
  void* o;
  float* lse;
  const int32_t* kv_len;
  const void* dout;
  void *dq, *dk, *dv;
  float* dq_acc;  // bf16 backward: [B·H·T, Dp] f32 scratch, zeroed
  float* delta;   // backward: [B·H·T] f32 scratch
  int B, H, Hkv, G, T, S, D, Dp;
  float scale, scale_log2;
  int causal;
  int vec;      // D % 8 == 0 (bf16; D % 4 for f32) and every tensor 16-byte aligned
  int n_tiles;  // forward: query tiles per (b, h); backward: key tiles per (b, kv head)
  int64_t rows; // B·H·T
};

// keys of batch b not masked by kv_len: [0, cap)
template <class C>
TKA_DEV int key_cap(C& c, const Args& a, int b) {
  int L = a.S;
  if (a.kv_len) {
    int v = c.ldg(a.kv_len + b);
    v = v < 0 ? 0 : v;
    L = v < L ? v : L;
  }
  return L;
}
// row q sees keys [0, row_lim) (row_lim may be <= 0)
TKA_DEV int row_lim(const Args& a, int cap, int q) {
  if (!a.causal) return cap;
  long long c = (long long)q + a.S - a.T + 1;
  return c < cap ? (int)c : cap;
}

TKA_DEV uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x (low 16 bits) = lo
  uint32_t u;
  static_assert(sizeof(v) == 4, "bf16x2");
  __builtin_memcpy(&u, &v, 4);
  return u;
}
TKA_DEV uint16_t bf16_bits(bf16 x) { return __bfloat16_as_ushort(x); }
TKA_DEV bf16 bits_bf16(uint16_t u) { return __ushort_as_bfloat16(u); }

// ---- global <-> shared tiles of bf16 rows (shared row stride LD = Dp + 8 elements:
// 16 bytes of padding, so the 8 row addresses of an ldmatrix fall in 8 different
// 16-byte bank groups, and cp.async chunks stay 16-byte aligned)

// s[r][0..Dp) = g[r][0..D) for r < nvalid, zero elsewhere (rows < ROWS); g row stride D.
// `safe` is any valid global address (the source of zero-filling cp.async).
template <int ROWS, int Dp, int NT, class C>
TKA_DEV void load_rows_bf16(C& c, int idx, bf16* s, const bf16* g, int nvalid, const Args& a, const void* safe) {
  constexpr int CPR = Dp / 8, LD = Dp + 8, TOTAL = ROWS * CPR;
#pragma unroll 1
  for (int it = 0; it < (TOTAL + NT - 1) / NT; ++it) {
    const int i = idx + it * NT;
    if (TOTAL % NT != 0 && i >= TOTAL) break;
    const int r = i / CPR, col = (i % CPR) * 8;
    bf16* dst = s + r * LD + col;
    const bool ok = r < nvalid && col < a.D;
    if (a.vec) {
      c.cp16(dst, ok ? (const void*)(g + (int64_t)r * a.D + col) : safe, ok);
    } else {
      uint32_t w[4] = {0, 0, 0, 0};
      if (ok) {
        const bf16* src = g + (int64_t)r * a.D;
#pragma unroll
        for (int e = 0; e < 8; ++e)
          if (col + e < a.D) w[e >> 1] |= uint32_t(bf16_bits(c.ldg(src + col + e))) << ((e & 1) * 16);
      }
      c.sts(reinterpret_cast<uint4*>(dst), make_uint4(w[0], w[1], w[2], w[3]));
    }
  }
}

// g[r][0..D) = s[r][0..D) for r < nvalid; NT threads with index idx.
template <int ROWS, int Dp, int NT, class C>
TKA_DEV void store_rows_bf16(C& c, int idx, const bf16* s, bf16* g, int nvalid, const Args& a) {
  constexpr int CPR = Dp / 8, LD = Dp + 8, TOTAL = ROWS * CPR;
#pragma unroll 1
  for (int it = 0; it < (TOTAL + NT - 1) / NT; ++it) {
    const int i = idx + it * NT;
    if (TOTAL % NT != 0 && i >= TOTAL) break;
    const int r = i / CPR, col = (i % CPR) * 8;
    if (r >= nvalid || col >= a.D) continue;
    const bf16* src = s + r * LD + col;
    bf16* dst = g + (int64_t)r * a.D + col;
    if (a.vec) {
      c.stg(reinterpret_cast<uint4*>(dst), c.lds(reinterpret_cast<const uint4*>(src)));
    } else {
      uint4 v = c.lds(reinterpret_cast<const uint4*>(src));
      uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
      for (int e = 0; e < 8; ++e)
        if (col + e < a.D) c.stg(dst + e, bits_bf16(uint16_t(w[e >> 1] >> ((e & 1) * 16))));
    }
  }
}

// ldmatrix addresses (element offsets inside a tile with row stride ld), per lane:
// A operand 16×16 at (m0, k0) of a row-major [m][k] tile
TKA_DEV int ldsm_a(int lane, int m0, int k0, int ld) { return (m0 + (lane & 15)) * ld + k0 + (lane >> 4) * 8; }
// B operands of two n8 tiles (n0, n0 + 8) × k16 from a [n][k] tile (non-transposed ldmatrix):
// regs {0, 1} -> n-tile n0, {2, 3} -> n-tile n0 + 8
TKA_DEV int ldsm_b_nk(int lane, int n0, int k0, int ld) {
  return (n0 + (lane & 7) + ((lane >> 4) << 3)) * ld + k0 + ((lane >> 3) & 1) * 8;
}
// B operands of two n8 tiles from a [k][n] tile (ldmatrix .trans): regs {0,1} -> n0, {2,3} -> n0 + 8
TKA_DEV int ldsm_b_kn(int lane, int k0, int n0, int ld) {
  return (k0 + (lane & 7) + ((lane >> 3) & 1) * 8) * ld + n0 + (lane >> 4) * 8;
}
// A operand 16×16 at (m0, k0) from a [k][m] tile (ldmatrix .trans)
TKA_DEV int ldsm_a_km(int lane, int m0, int k0, int ld) {
  return (k0 + (lane & 7) + ((lane >> 4) & 1) * 8) * ld + m0 + ((lane >> 3) & 1) * 8;
}

// A fragment (16 rows × k16) from two m16n8 f32 accumulators (n-tiles 2kk, 2kk + 1)
TKA_DEV void acc_to_a(uint32_t (&fa)[4], const float (&c0)[4], const float (&c1)[4]) {
  fa[0] = pack_bf16(c0[0], c0[1]);
  fa[1] = pack_bf16(c0[2], c0[3]);
  fa[2] = pack_bf16(c1[0], c1[1]);
  fa[3] = pack_bf16(c1[2], c1[3]);
}

// ============================================================================
// bf16 forward
// kMaskAll: mask every key tile, not only the partial ones: one code path, which keeps the
// D = 128 kernel within 255 registers without spilling (the masking is cheap integer compares).
template <int Dp_, int MT_, int BN_ = 64, bool kMaskAll = false>
struct FwdBf16 {
  static constexpr int Dp = Dp_, MT = MT_, NW = 4, kThreads = 32 * NW, kMinBlocks = 2;
  static constexpr int BM = 16 * MT * NW, BN = BN_, LD = Dp + 8;
  static constexpr int kSmem = (BM + 2 * BN) * LD * 2;
  static_assert(Dp % 16 == 0 && Dp <= 256, "head dim");

  template <class C>
  static TKA_DEV void run(C& c, const Args& a) {
    const int tid = c.tid(), warp = tid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
    const int64_t bx = c.bid();
    const int qt = a.n_tiles - 1 - int(bx % a.n_tiles);  // the costlier (causal) tiles first
    const int bh = int(bx / a.n_tiles), b = bh / a.H, h = bh - b * a.H, hk = h / a.G;
    const int q0 = qt * BM;
    bf16* sQ = reinterpret_cast<bf16*>(c.smem());
    bf16* sK = sQ + BM * LD;
    bf16* sV = sK + BN * LD;
    const bf16* Qg = static_cast<const bf16*>(a.q) + ((int64_t)bh * a.T + q0) * a.D;
    const bf16* Kg = static_cast<const bf16*>(a.k) + (int64_t)(b * a.Hkv + hk) * a.S * a.D;
    const bf16* Vg = static_cast<const bf16*>(a.v) + (int64_t)(b * a.Hkv + hk) * a.S * a.D;

    const int cap = key_cap(c, a, b);
    const int qlast = (q0 + BM < a.T ? q0 + BM : a.T) - 1;
    const int hi = row_lim(a, cap, qlast);  // the CTA needs keys [0, hi)
    const int n_kt = hi > 0 ? (hi + BN - 1) / BN : 0;
    const int full = row_lim(a, cap, q0);  // every row sees keys [0, full)
    const int wrow = warp * 16 * MT;       // first row of this warp in the tile
    // per-lane ldmatrix base addresses (shared window, bytes); tile offsets are added as constants
    const uint32_t aQ = c.saddr(sQ) + 2 * ldsm_a(lane, wrow, 0, LD);
    const uint32_t aK = c.saddr(sK) + 2 * ldsm_b_nk(lane, 0, 0, LD);
    const uint32_t aV = c.saddr(sV) + 2 * ldsm_b_kn(lane, 0, 0, LD);

    load_rows_bf16<BM, Dp, kThreads>(c, tid, sQ, Qg, a.T - q0, a, a.q);
    if (n_kt > 0) load_rows_bf16<BN, Dp, kThreads>(c, tid, sK, Kg, a.S, a, a.k);
    c.cp_commit();

    float o[MT][Dp / 8][4];
    float m_run[MT][2], l_run[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
      for (int dn = 0; dn < Dp / 8; ++dn) o[mt][dn][0] = o[mt][dn][1] = o[mt][dn][2] = o[mt][dn][3] = 0.f;
      m_run[mt][0] = m_run[mt][1] = -INFINITY;
      l_run[mt][0] = l_run[mt][1] = 0.f;
    }

    for (int kt = 0; kt < n_kt; ++kt) {
      const int j0 = kt * BN;
      c.cp_wait_all();
      c.sync();  // K_kt (and Q) landed; every warp is done with V_{kt-1}
      load_rows_bf16<BN, Dp, kThreads>(c, tid, sV, Vg + (int64_t)j0 * a.D, a.S - j0, a, a.v);
      c.cp_commit();

      float s[MT][BN / 8][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int nt = 0; nt < BN / 8; ++nt) s[mt][nt][0] = s[mt][nt][1] = s[mt][nt][2] = s[mt][nt][3] = 0.f;
#pragma unroll
      for (int ks = 0; ks < Dp / 16; ++ks) {
        uint32_t qa[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) c.ldsm_x4(qa[mt], aQ + 2 * (mt * 16 * LD + ks * 16));
#pragma unroll
        for (int np = 0; np < BN / 16; ++np) {
          uint32_t kb[4];
          c.ldsm_x4(kb, aK + 2 * (np * 16 * LD + ks * 16));
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            c.mma(s[mt][2 * np], qa[mt], kb[0], kb[1]);
            c.mma(s[mt][2 * np + 1], qa[mt], kb[2], kb[3]);
          }
        }
      }
      // scores in base 2; masked keys -> -inf
      const bool need_mask = kMaskAll || j0 + BN > full;
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        int lim0 = 0, lim1 = 0;
        if (need_mask) {
          const int r0 = q0 + wrow + mt * 16 + g;
          lim0 = row_lim(a, cap, r0) - j0;
          lim1 = row_lim(a, cap, r0 + 8) - j0;
        }
#pragma unroll
        for (int nt = 0; nt < BN / 8; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            float x = s[mt][nt][e] * a.scale_log2;
            if (need_mask) {
              const int key = nt * 8 + 2 * t4 + (e & 1);
              if (key >= ((e & 2) ? lim1 : lim0)) x = -INFINITY;
            }
            s[mt][nt][e] = x;
          }
      }
      // online softmax, rows g (r = 0) and g + 8 (r = 1) of each m-tile
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          float mx = -INFINITY;
#pragma unroll
          for (int nt = 0; nt < BN / 8; ++nt) mx = fmaxf(mx, fmaxf(s[mt][nt][2 * r], s[mt][nt][2 * r + 1]));
          mx = fmaxf(mx, c.shfl_xor(mx, 1));
          mx = fmaxf(mx, c.shfl_xor(mx, 2));
          const float m_new = fmaxf(m_run[mt][r], mx);
          const float m_use = m_new == -INFINITY ? 0.f : m_new;  // a row that saw no key yet
          const float corr = c.ex2(m_run[mt][r] - m_use);
          m_run[mt][r] = m_new;
          float sum = 0.f;
#pragma unroll
          for (int nt = 0; nt < BN / 8; ++nt) {
            const float p0 = c.ex2(s[mt][nt][2 * r] - m_use), p1 = c.ex2(s[mt][nt][2 * r + 1] - m_use);
            s[mt][nt][2 * r] = p0;
            s[mt][nt][2 * r + 1] = p1;
            sum += p0 + p1;
          }
          l_run[mt][r] = l_run[mt][r] * corr + sum;
#pragma unroll
          for (int dn = 0; dn < Dp / 8; ++dn) {
            o[mt][dn][2 * r] *= corr;
            o[mt][dn][2 * r + 1] *= corr;
          }
        }
      // P to bf16 A fragments (halves the live registers before the K prefetch and P·V)
      uint32_t pa[BN / 16][MT][4];
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk)
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) acc_to_a(pa[kk][mt], s[mt][2 * kk], s[mt][2 * kk + 1]);
      c.cp_wait_all();
      c.sync();  // V_kt landed; every warp is done reading K_kt
      if (kt + 1 < n_kt) {
        load_rows_bf16<BN, Dp, kThreads>(c, tid, sK, Kg + (int64_t)(j0 + BN) * a.D, a.S - j0 - BN, a, a.k);
        c.cp_commit();
      }
      // O += P · V_kt
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
#pragma unroll
        for (int dp = 0; dp < Dp / 16; ++dp) {
          uint32_t vb[4];
          c.ldsm_x4_t(vb, aV + 2 * (kk * 16 * LD + dp * 16));
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            c.mma(o[mt][2 * dp], pa[kk][mt], vb[0], vb[1]);
            c.mma(o[mt][2 * dp + 1], pa[kk][mt], vb[2], vb[3]);
          }
        }
      }
    }

    // epilogue: O / l staged through this warp's own rows of sQ, then 16-byte stores
    c.cp_wait_all();
    c.sync();  // (with no key tile the Q loads are still in flight)
    float* lse = a.lse + (int64_t)bh * a.T;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float l = l_run[mt][r];
        l += c.shfl_xor(l, 1);
        l += c.shfl_xor(l, 2);
        const float inv = l > 0.f ? 1.f / l : 0.f;
        const int row = wrow + mt * 16 + g + 8 * r;
#pragma unroll
        for (int dn = 0; dn < Dp / 8; ++dn)
          c.sts(reinterpret_cast<uint32_t*>(sQ + row * LD + dn * 8 + 2 * t4),
                pack_bf16(o[mt][dn][2 * r] * inv, o[mt][dn][2 * r + 1] * inv));
        if (t4 == 0 && q0 + row < a.T)
          c.stg(lse + q0 + row, l > 0.f ? (m_run[mt][r] + log2f(l)) * kLn2 : -INFINITY);
      }
    c.syncwarp();
    bf16* Og = static_cast<bf16*>(a.o) + ((int64_t)bh * a.T + q0 + wrow) * a.D;
    store_rows_bf16<16 * MT, Dp, 32>(c, lane, sQ + wrow * LD, Og, a.T - q0 - wrow, a);
  }
};

// ============================================================================
// bf16 backward
template <int Dp_>
struct BwdBf16 {
  static constexpr int Dp = Dp_, kThreads = 256, kMinBlocks = 1;
  static constexpr int BN = 64, BM = Dp <= 128 ? 64 : 32, LD = Dp + 8, LDS = BM + 8;
  static constexpr bool KVREG = Dp <= 128;  // K / V A-fragments kept in registers
  static constexpr int DQ_WM = BM / 16, DQ_WN = 8 / DQ_WM, DW = Dp / DQ_WN;  // dQ step: warp grid, cols per warp
  static constexpr int kOffV = BN * LD * 2, kOffQ = 2 * kOffV, kOffdO = kOffQ + 2 * BM * LD * 2,
                       kOffdS = kOffdO + 2 * BM * LD * 2, kOffPf = kOffdS + BN * LDS * 2,
                       kOffLse = kOffPf + 4 * (BM / 8) * 32 * 16, kOffDel = kOffLse + 2 * BM * 4;
  static constexpr int kSmem = kOffDel + 2 * BM * 4;
  static_assert(Dp % 16 == 0 && DW % 16 == 0, "head dim");

  template <class C>
  static TKA_DEV void issue(C& c, const Args& a, int tid, char* sm, int buf, int bh, int q0) {
    bf16* sQ = reinterpret_cast<bf16*>(sm + kOffQ) + buf * BM * LD;
    bf16* sdO = reinterpret_cast<bf16*>(sm + kOffdO) + buf * BM * LD;
    float* sL = reinterpret_cast<float*>(sm + kOffLse) + buf * BM;
    float* sDl = reinterpret_cast<float*>(sm + kOffDel) + buf * BM;
    const int64_t off = ((int64_t)bh * a.T + q0) * a.D;
    load_rows_bf16<BM, Dp, kThreads>(c, tid, sQ, static_cast<const bf16*>(a.q) + off, a.T - q0, a, a.q);
    load_rows_bf16<BM, Dp, kThreads>(c, tid, sdO, static_cast<const bf16*>(a.dout) + off, a.T - q0, a, a.dout);
    if (tid < BM) {
      const bool ok = q0 + tid < a.T;
      const int64_t r = (int64_t)bh * a.T + q0 + tid;
      c.cp4(sL + tid, ok ? (const void*)(a.lse + r) : (const void*)a.lse, ok);
      c.cp4(sDl + tid, ok ? (const void*)(a.delta + r) : (const void*)a.delta, ok);
    }
  }

  template <class C>
  static TKA_DEV void run(C& c, const Args& a) {
    const int tid = c.tid(), warp = tid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
    const bool pw = warp < 4;  // P warps (dV) or dP warps (dK)
    const int wr = warp & 3;   // this warp's keys: [16 wr, 16 wr + 16) of the tile
    const int64_t bx = c.bid();
    const int kt = int(bx % a.n_tiles), bhk = int(bx / a.n_tiles);
    const int b = bhk / a.Hkv, hk = bhk - b * a.Hkv;
    const int j0 = kt * BN;
    char* sm = c.smem();
    bf16* sK = reinterpret_cast<bf16*>(sm);
    bf16* sV = reinterpret_cast<bf16*>(sm + kOffV);
    bf16* sdS = reinterpret_cast<bf16*>(sm + kOffdS);
    float* sPf = reinterpret_cast<float*>(sm + kOffPf);

    const int cap = key_cap(c, a, b);
    const int nqt = (a.T + BM - 1) / BM;
    int it0 = 0, n_it = 0;
    if (j0 < cap) {
      long long qs = a.causal ? (long long)j0 - (a.S - a.T) : 0;  // first query that sees key j0
      if (qs < 0) qs = 0;
      if (qs < a.T) {
        it0 = int(qs / BM);
        n_it = a.G * (nqt - it0);
      }
    }
    const int per = nqt - it0;

    const int64_t kvoff = ((int64_t)bhk * a.S + j0) * a.D;
    load_rows_bf16<BN, Dp, kThreads>(c, tid, sK, static_cast<const bf16*>(a.k) + kvoff, a.S - j0, a, a.k);
    load_rows_bf16<BN, Dp, kThreads>(c, tid, sV, static_cast<const bf16*>(a.v) + kvoff, a.S - j0, a, a.v);
    if (n_it > 0) issue(c, a, tid, sm, 0, b * a.H + hk * a.G, it0 * BM);
    c.cp_commit();

    float acc[Dp / 8][4];  // dV (P warps) or dK (dP warps): rows 16 wr + g (+ 8), cols 8 dn + 2 t4
#pragma unroll
    for (int dn = 0; dn < Dp / 8; ++dn) acc[dn][0] = acc[dn][1] = acc[dn][2] = acc[dn][3] = 0.f;
    uint32_t kvf[KVREG ? Dp / 16 : 1][4];
    // per-lane ldmatrix base addresses (bytes in the shared window)
    const uint32_t aA = c.saddr(pw ? sK : sV) + 2 * ldsm_a(lane, wr * 16, 0, LD);  // A of the first product
    const uint32_t aK = c.saddr(sK) + 2 * ldsm_b_kn(lane, 0, (warp / DQ_WM) * DW, LD);  // B of the dQ product
    const uint32_t adS = c.saddr(sdS) + 2 * ldsm_a_km(lane, (warp % DQ_WM) * 16, 0, LDS);
    const uint32_t aQ0 = c.saddr(sm + kOffQ), adO0 = c.saddr(sm + kOffdO);
    const int offB = 2 * ldsm_b_nk(lane, 0, 0, LD), offC = 2 * ldsm_b_kn(lane, 0, 0, LD);

    for (int it = 0; it < n_it; ++it) {
      const int buf = it & 1;
      const int gh = it / per, qt = it0 + it % per;
      const int bh = b * a.H + hk * a.G + gh, q0 = qt * BM;
      c.cp_wait_all();
      c.sync();  // (a) step `it` landed; every warp is done with step it - 1
      if constexpr (KVREG) {
        if (it == 0) {
#pragma unroll
          for (int ks = 0; ks < Dp / 16; ++ks) c.ldsm_x4(kvf[ks], aA + 2 * ks * 16);
        }
      }
      if (it + 1 < n_it) {
        const int gn = (it + 1) / per, qn = it0 + (it + 1) % per;
        issue(c, a, tid, sm, buf ^ 1, b * a.H + hk * a.G + gn, qn * BM);
        c.cp_commit();
      }
      const float* cL = reinterpret_cast<const float*>(sm + kOffLse) + buf * BM;
      const float* cDl = reinterpret_cast<const float*>(sm + kOffDel) + buf * BM;

      // Sᵀ = K·Qᵀ (P warps) or dPᵀ = V·dOᵀ (dP warps): 16 keys × BM queries
      float s[BM / 8][4];
#pragma unroll
      for (int nt = 0; nt < BM / 8; ++nt) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
      const uint32_t aB = (pw ? aQ0 : adO0) + buf * (BM * LD * 2) + offB;
#pragma unroll
      for (int ks = 0; ks < Dp / 16; ++ks) {
        uint32_t af[4];
        if constexpr (KVREG) {
          af[0] = kvf[ks][0], af[1] = kvf[ks][1], af[2] = kvf[ks][2], af[3] = kvf[ks][3];
        } else {
          c.ldsm_x4(af, aA + 2 * ks * 16);
        }
#pragma unroll
        for (int np = 0; np < BM / 16; ++np) {
          uint32_t bb[4];
          c.ldsm_x4(bb, aB + 2 * (np * 16 * LD + ks * 16));
          c.mma(s[2 * np], af, bb[0], bb[1]);
          c.mma(s[2 * np + 1], af, bb[2], bb[3]);
        }
      }
      if (pw) {
        // Pᵀ = exp2(Sᵀ·scale·log2 e − lse·log2 e), zero where masked
        const bool full = q0 + BM <= a.T && j0 + BN <= cap && (!a.causal || (long long)j0 + BN - 1 <= (long long)q0 + a.S - a.T);
        const int key0 = j0 + wr * 16 + g;
#pragma unroll
        for (int nt = 0; nt < BM / 8; ++nt) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int qc = nt * 8 + 2 * t4 + (e & 1);
            float p = c.ex2(s[nt][e] * a.scale_log2 - c.lds(cL + qc) * kLog2e);
            if (!full) {
              const int q = q0 + qc;
              if (q >= a.T || key0 + (e & 2) * 4 >= row_lim(a, cap, q)) p = 0.f;
            }
            s[nt][e] = p;
          }
          c.sts(reinterpret_cast<float4*>(sPf + ((wr * (BM / 8) + nt) * 32 + lane) * 4),
                make_float4(s[nt][0], s[nt][1], s[nt][2], s[nt][3]));
        }
      }
      c.sync();  // (b) Pᵀ in shared memory
      if (!pw) {
        // dSᵀ = Pᵀ ∘ (dPᵀ − delta)·scale, to registers and (bf16) to sdS [key][query]
#pragma unroll
        for (int nt = 0; nt < BM / 8; ++nt) {
          const float4 p = c.lds(reinterpret_cast<const float4*>(sPf + ((wr * (BM / 8) + nt) * 32 + lane) * 4));
          const float d0 = c.lds(cDl + nt * 8 + 2 * t4), d1 = c.lds(cDl + nt * 8 + 2 * t4 + 1);
          s[nt][0] = p.x * (s[nt][0] - d0) * a.scale;
          s[nt][1] = p.y * (s[nt][1] - d1) * a.scale;
          s[nt][2] = p.z * (s[nt][2] - d0) * a.scale;
          s[nt][3] = p.w * (s[nt][3] - d1) * a.scale;
          c.sts(reinterpret_cast<uint32_t*>(sdS + (wr * 16 + g) * LDS + nt * 8 + 2 * t4), pack_bf16(s[nt][0], s[nt][1]));
          c.sts(reinterpret_cast<uint32_t*>(sdS + (wr * 16 + g + 8) * LDS + nt * 8 + 2 * t4),
                pack_bf16(s[nt][2], s[nt][3]));
        }
      }
      // dV += Pᵀ·dO (P warps) or dK += dSᵀ·Q (dP warps)
      const uint32_t aC = (pw ? adO0 : aQ0) + buf * (BM * LD * 2) + offC;
#pragma unroll
      for (int kk = 0; kk < BM / 16; ++kk) {
        uint32_t pa[4];
        acc_to_a(pa, s[2 * kk], s[2 * kk + 1]);
#pragma unroll
        for (int dn = 0; dn < Dp / 16; ++dn) {
          uint32_t vb[4];
          c.ldsm_x4_t(vb, aC + 2 * (kk * 16 * LD + dn * 16));
          c.mma(acc[2 * dn], pa, vb[0], vb[1]);
          c.mma(acc[2 * dn + 1], pa, vb[2], vb[3]);
        }
      }
      c.sync();  // (c) dSᵀ in shared memory
      {
        // dQ[q0 + 16 wm .., DW wn ..] += dS · K
        const int wm = warp % DQ_WM, wn = warp / DQ_WM;
        float dq[DW / 8][4];
#pragma unroll
        for (int nt = 0; nt < DW / 8; ++nt) dq[nt][0] = dq[nt][1] = dq[nt][2] = dq[nt][3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < BN / 16; ++kk) {
          uint32_t da[4];
          c.ldsm_x4_t(da, adS + 2 * kk * 16 * LDS);
#pragma unroll
          for (int dn = 0; dn < DW / 16; ++dn) {
            uint32_t kb[4];
            c.ldsm_x4_t(kb, aK + 2 * (kk * 16 * LD + dn * 16));
            c.mma(dq[2 * dn], da, kb[0], kb[1]);
            c.mma(dq[2 * dn + 1], da, kb[2], kb[3]);
          }
        }
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const int q = q0 + wm * 16 + g + 8 * r;
          if (q < a.T) {
            float* dst = a.dq_acc + ((int64_t)bh * a.T + q) * Dp + wn * DW + 2 * t4;
#pragma unroll
            for (int nt = 0; nt < DW / 8; ++nt) c.atomic_add2(dst + nt * 8, dq[nt][2 * r], dq[nt][2 * r + 1]);
          }
        }
      }
    }

    // epilogue: dV (P warps) into sV, dK (dP warps) into sK, then 16-byte stores
    c.cp_wait_all();
    c.sync();
    bf16* st = pw ? sV : sK;
#pragma unroll
    for (int dn = 0; dn < Dp / 8; ++dn) {
      c.sts(reinterpret_cast<uint32_t*>(st + (wr * 16 + g) * LD + dn * 8 + 2 * t4), pack_bf16(acc[dn][0], acc[dn][1]));
      c.sts(reinterpret_cast<uint32_t*>(st + (wr * 16 + g + 8) * LD + dn * 8 + 2 * t4), pack_bf16(acc[dn][2], acc[dn][3]));
    }
    c.sync();
    store_rows_bf16<BN, Dp, kThreads>(c, tid, sK, static_cast<bf16*>(a.dk) + kvoff, a.S - j0, a);
    store_rows_bf16<BN, Dp, kThreads>(c, tid, sV, static_cast<bf16*>(a.dv) + kvoff, a.S - j0, a);
  }
};

// ============================================================================
// f32 forward (SIMT): 32 queries × 32 keys per step, thread (r = tid / 8, cc = tid % 8)
// owns query row r, scores of keys cc + 8i and output columns cc + 8i.
template <int Dp_>
struct FwdF32 {
  static constexpr int Dp = Dp_, kThreads = 256, kMinBlocks = 1, BM = 32, BN = 32;
  static constexpr int LQ = Dp + 1, LV = Dp, LP = BN + 1;
  static constexpr int kSmem = (BM * LQ + BN * LQ + BN * LV + BM * LP) * 4;
  static_assert(Dp % 8 == 0, "head dim");

  template <class C>
  static TKA_DEV void run(C& c, const Args& a) {
    const int tid = c.tid(), r = tid >> 3, cc = tid & 7;
    const int64_t bx = c.bid();
    const int qt = a.n_tiles - 1 - int(bx % a.n_tiles);
    const int bh = int(bx / a.n_tiles), b = bh / a.H, h = bh - b * a.H, hk = h / a.G;
    const int q0 = qt * BM, q = q0 + r;
    float* sQ = reinterpret_cast<float*>(c.smem());
    float* sK = sQ + BM * LQ;
    float* sV = sK + BN * LQ;
    float* sP = sV + BN * LV;
    const float* Qg = static_cast<const float*>(a.q) + ((int64_t)bh * a.T + q0) * a.D;
    const float* Kg = static_cast<const float*>(a.k) + (int64_t)(b * a.Hkv + hk) * a.S * a.D;
    const float* Vg = static_cast<const float*>(a.v) + (int64_t)(b * a.Hkv + hk) * a.S * a.D;
    const int cap = key_cap(c, a, b);
    const int qlast = (q0 + BM < a.T ? q0 + BM : a.T) - 1;
    const int hi = row_lim(a, cap, qlast);
    const int n_kt = hi > 0 ? (hi + BN - 1) / BN : 0;
    const int mylim = row_lim(a, cap, q);

    for (int i = tid; i < BM * Dp; i += kThreads) {
      const int rr = i / Dp, d = i - rr * Dp;
      c.sts(sQ + rr * LQ + d, (q0 + rr < a.T && d < a.D) ? c.ldg(Qg + (int64_t)rr * a.D + d) : 0.f);
    }
    float o[Dp / 8];
#pragma unroll
    for (int i = 0; i < Dp / 8; ++i) o[i] = 0.f;
    float m_run = -INFINITY, l_run = 0.f;
    for (int kt = 0; kt < n_kt; ++kt) {
      const int j0 = kt * BN;
      c.sync();  // every thread is done with the previous K, V, P
      for (int i = tid; i < BN * Dp; i += kThreads) {
        const int rr = i / Dp, d = i - rr * Dp;
        const bool ok = j0 + rr < a.S && d < a.D;
        const int64_t off = (int64_t)(j0 + rr) * a.D + d;
        c.sts(sK + rr * LQ + d, ok ? c.ldg(Kg + off) : 0.f);
        c.sts(sV + rr * LV + d, ok ? c.ldg(Vg + off) : 0.f);
      }
      c.sync();
      float s[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) s[i] = 0.f;
#pragma unroll 8
      for (int d = 0; d < Dp; ++d) {
        const float qv = c.lds(sQ + r * LQ + d);
#pragma unroll
        for (int i = 0; i < 4; ++i) s[i] += qv * c.lds(sK + (cc + 8 * i) * LQ + d);
      }
      float mx = -INFINITY;
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        s[i] = j0 + cc + 8 * i < mylim ? s[i] * a.scale_log2 : -INFINITY;
        mx = fmaxf(mx, s[i]);
      }
      mx = fmaxf(mx, c.shfl_xor(mx, 1));
      mx = fmaxf(mx, c.shfl_xor(mx, 2));
      mx = fmaxf(mx, c.shfl_xor(mx, 4));
      const float m_new = fmaxf(m_run, mx);
      const float m_use = m_new == -INFINITY ? 0.f : m_new;
      const float corr = exp2f(m_run - m_use);
      m_run = m_new;
      float sum = 0.f;
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float p = exp2f(s[i] - m_use);
        sum += p;
        c.sts(sP + r * LP + cc + 8 * i, p);
      }
      l_run = l_run * corr + sum;
      c.syncwarp();  // row r of P comes from the 8 lanes of this warp that own it
#pragma unroll
      for (int i = 0; i < Dp / 8; ++i) o[i] *= corr;
#pragma unroll 4
      for (int j = 0; j < BN; ++j) {
        const float p = c.lds(sP + r * LP + j);
#pragma unroll
        for (int i = 0; i < Dp / 8; ++i) o[i] += p * c.lds(sV + j * LV + cc + 8 * i);
      }
    }
    float l = l_run;
    l += c.shfl_xor(l, 1);
    l += c.shfl_xor(l, 2);
    l += c.shfl_xor(l, 4);
    if (q < a.T) {
      const float inv = l > 0.f ? 1.f / l : 0.f;
      float* Og = static_cast<float*>(a.o) + ((int64_t)bh * a.T + q) * a.D;
#pragma unroll
      for (int i = 0; i < Dp / 8; ++i)
        if (cc + 8 * i < a.D) c.stg(Og + cc + 8 * i, o[i] * inv);
      if (cc == 0) c.stg(a.lse + (int64_t)bh * a.T + q, l > 0.f ? (m_run + log2f(l)) * kLn2 : -INFINITY);
    }
  }
};

// ============================================================================
// f32 backward (SIMT): one CTA per (b, kv head, 32 keys); thread (r = tid / 8, cc = tid % 8)
// owns key row r (dK, dV columns cc + 8i) and, for the dQ step, query row r.
template <int Dp_>
struct BwdF32 {
  static constexpr int Dp = Dp_, kThreads = 256, kMinBlocks = 1, BM = 32, BN = 32;
  static constexpr int L1 = Dp + 1, LP = BM + 1;
  static constexpr int kSmem = (2 * BN * L1 + 2 * BM * L1 + 2 * BN * LP + 2 * BM) * 4;
  static_assert(Dp % 8 == 0, "head dim");

  template <class C>
  static TKA_DEV void run(C& c, const Args& a) {
    const int tid = c.tid(), r = tid >> 3, cc = tid & 7;
    const int64_t bx = c.bid();
    const int kt = int(bx % a.n_tiles), bhk = int(bx / a.n_tiles);
    const int b = bhk / a.Hkv, hk = bhk - b * a.Hkv;
    const int j0 = kt * BN, key = j0 + r;
    float* sK = reinterpret_cast<float*>(c.smem());
    float* sV = sK + BN * L1;
    float* sQ = sV + BN * L1;
    float* sdO = sQ + BM * L1;
    float* sP = sdO + BM * L1;
    float* sdS = sP + BN * LP;
    float* sL = sdS + BN * LP;
    float* sDl = sL + BM;
    const int cap = key_cap(c, a, b);
    const int nqt = (a.T + BM - 1) / BM;
    int it0 = 0, n_it = 0;
    if (j0 < cap) {
      long long qs = a.causal ? (long long)j0 - (a.S - a.T) : 0;
      if (qs < 0) qs = 0;
      if (qs < a.T) {
        it0 = int(qs / BM);
        n_it = a.G * (nqt - it0);
      }
    }
    const int per = nqt - it0;
    const int64_t kvoff = ((int64_t)bhk * a.S + j0) * a.D;
    const float* Kg = static_cast<const float*>(a.k) + kvoff;
    const float* Vg = static_cast<const float*>(a.v) + kvoff;
    for (int i = tid; i < BN * Dp; i += kThreads) {
      const int rr = i / Dp, d = i - rr * Dp;
      const bool ok = j0 + rr < a.S && d < a.D;
      c.sts(sK + rr * L1 + d, ok ? c.ldg(Kg + (int64_t)rr * a.D + d) : 0.f);
      c.sts(sV + rr * L1 + d, ok ? c.ldg(Vg + (int64_t)rr * a.D + d) : 0.f);
    }
    float dk[Dp / 8], dv[Dp / 8];
#pragma unroll
    for (int i = 0; i < Dp / 8; ++i) dk[i] = dv[i] = 0.f;

    for (int it = 0; it < n_it; ++it) {
      const int gh = it / per, qt = it0 + it % per;
      const int bh = b * a.H + hk * a.G + gh, q0 = qt * BM;
      c.sync();  // every thread is done with the previous step
      const int64_t off = ((int64_t)bh * a.T + q0) * a.D;
      const float* Qg = static_cast<const float*>(a.q) + off;
      const float* dOg = static_cast<const float*>(a.dout) + off;
      for (int i = tid; i < BM * Dp; i += kThreads) {
        const int rr = i / Dp, d = i - rr * Dp;
        const bool ok = q0 + rr < a.T && d < a.D;
        c.sts(sQ + rr * L1 + d, ok ? c.ldg(Qg + (int64_t)rr * a.D + d) : 0.f);
        c.sts(sdO + rr * L1 + d, ok ? c.ldg(dOg + (int64_t)rr * a.D + d) : 0.f);
      }
      if (tid < BM) {
        const bool ok = q0 + tid < a.T;
        c.sts(sL + tid, ok ? c.ldg(a.lse + (int64_t)bh * a.T + q0 + tid) : 0.f);
        c.sts(sDl + tid, ok ? c.ldg(a.delta + (int64_t)bh * a.T + q0 + tid) : 0.f);
      }
      c.sync();
      // Sᵀ and dPᵀ for key r, queries cc + 8i
      float s[4], dp[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) s[i] = dp[i] = 0.f;
#pragma unroll 4
      for (int d = 0; d < Dp; ++d) {
        const float kv = c.lds(sK + r * L1 + d), vv = c.lds(sV + r * L1 + d);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          s[i] += kv * c.lds(sQ + (cc + 8 * i) * L1 + d);
          dp[i] += vv * c.lds(sdO + (cc + 8 * i) * L1 + d);
        }
      }
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int qc = cc + 8 * i, qq = q0 + qc;
        float p = 0.f;
        if (qq < a.T && key < row_lim(a, cap, qq)) p = exp2f(s[i] * a.scale_log2 - c.lds(sL + qc) * kLog2e);
        c.sts(sP + r * LP + qc, p);
        c.sts(sdS + r * LP + qc, p * (dp[i] - c.lds(sDl + qc)) * a.scale);
      }
      c.sync();
#pragma unroll 2
      for (int qq = 0; qq < BM; ++qq) {
        const float p = c.lds(sP + r * LP + qq), ds = c.lds(sdS + r * LP + qq);
#pragma unroll
        for (int i = 0; i < Dp / 8; ++i) {
          dv[i] += p * c.lds(sdO + qq * L1 + cc + 8 * i);
          dk[i] += ds * c.lds(sQ + qq * L1 + cc + 8 * i);
        }
      }
      // dQ row q0 + r
      float dq[Dp / 8];
#pragma unroll
      for (int i = 0; i < Dp / 8; ++i) dq[i] = 0.f;
#pragma unroll 2
      for (int j = 0; j < BN; ++j) {
        const float ds = c.lds(sdS + j * LP + r);
#pragma unroll
        for (int i = 0; i < Dp / 8; ++i) dq[i] += ds * c.lds(sK + j * L1 + cc + 8 * i);
      }
      if (q0 + r < a.T) {
        float* dst = static_cast<float*>(a.dq) + ((int64_t)bh * a.T + q0 + r) * a.D;
#pragma unroll
        for (int i = 0; i < Dp / 8; ++i)
          if (cc + 8 * i < a.D) c.atomic_add(dst + cc + 8 * i, dq[i]);
      }
    }
    if (key < a.S) {
      float* dkg = static_cast<float*>(a.dk) + kvoff + (int64_t)r * a.D;
      float* dvg = static_cast<float*>(a.dv) + kvoff + (int64_t)r * a.D;
#pragma unroll
      for (int i = 0; i < Dp / 8; ++i)
        if (cc + 8 * i < a.D) {
          c.stg(dkg + cc + 8 * i, dk[i]);
          c.stg(dvg + cc + 8 * i, dv[i]);
        }
    }
  }
};

// ============================================================================
// backward helpers: delta = rowsum(dO ∘ O) (one warp per row), dq = dq_acc (bf16)
template <class T>
struct Delta {
  static constexpr int kThreads = 256, kMinBlocks = 1, kSmem = 0;
  template <class C>
  static TKA_DEV void run(C& c, const Args& a) {
    const int lane = c.tid() & 31;
    const int64_t w0 = c.bid() * (kThreads / 32) + (c.tid() >> 5), nw = c.grid() * (kThreads / 32);
    for (int64_t row = w0; row < a.rows; row += nw) {
      const T* o = static_cast<const T*>(a.o) + row * a.D;
      const T* d = static_cast<const T*>(a.dout) + row * a.D;
      float sum = 0.f;
      for (int i = lane; i < a.D; i += 32) sum += to_f32(c.ldg(o + i)) * to_f32(c.ldg(d + i));
#pragma unroll
      for (int m = 16; m >= 1; m >>= 1) sum += c.shfl_xor(sum, m);
      if (lane == 0) c.stg(a.delta + row, sum);
    }
  }
};
struct DqConvert {
  static constexpr int kThreads = 256, kMinBlocks = 1, kSmem = 0;
  template <class C>
  static TKA_DEV void run(C& c, const Args& a) {
    const int64_t n = a.rows * a.D, stride = c.grid() * kThreads;
    for (int64_t i = c.bid() * kThreads + c.tid(); i < n; i += stride) {
      const int64_t row = i / a.D, d = i - row * a.D;
      c.stg(static_cast<bf16*>(a.dq) + i, __float2bfloat16_rn(c.ldg(a.dq_acc + row * a.Dp + d)));
    }
  }
};

// ============================================================================
// host side: the launch plan, over a launcher L that provides
//   int fail(const char* fmt, ...), template <class K> int launch(int64_t grid, const Args&),
//   int zero(void* p, size_t bytes), void* scratch(size_t), void release(void*), int finish(),
//   int grid_cap(int threads)  (blocks for a grid-stride helper kernel)
// Variants for measuring on a device (the dev harness sets these; the defaults are the shipped choice).
struct Tune {
  int fwd_bn = 0;  // D in (96, 128]: 0 or 64 -> 64-key tiles (every tile masked), 32 -> 32-key tiles
};
inline Tune& tune() {
  static Tune t;
  return t;
}

inline bool aligned16(const void* p) { return p == nullptr || (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

template <class L>
inline int check_params(L& l, const tk_attention_params* p, const char* op) {
  if (p->dt != TK_F32 && p->dt != TK_BF16) return l.fail("%s: dtype %d is not supported on CUDA (f32 or bf16)", op, int(p->dt));
  if (p->B < 0 || p->H < 0 || p->T < 0 || p->S < 0 || p->Hkv < 1 || p->H % p->Hkv != 0)
    return l.fail("%s: bad shape B=%lld H=%lld Hkv=%lld T=%lld S=%lld", op, (long long)p->B, (long long)p->H,
                  (long long)p->Hkv, (long long)p->T, (long long)p->S);
  if (p->D < 1 || p->D > 256) return l.fail("%s: head dimension %lld is not in [1, 256]", op, (long long)p->D);
  if (p->T > INT32_MAX / 2 || p->S > INT32_MAX / 2 || p->B * p->H > INT32_MAX)
    return l.fail("%s: shape too large", op);
  return 0;
}

inline Args make_args(const tk_attention_params* p) {
  Args a{};
  a.q = p->q, a.k = p->k, a.v = p->v, a.o = p->o, a.lse = p->lse, a.kv_len = p->kv_len;
  a.dout = p->dout, a.dq = p->dq, a.dk = p->dk, a.dv = p->dv;
  a.B = int(p->B), a.H = int(p->H), a.Hkv = int(p->Hkv), a.G = int(p->H / p->Hkv);
  a.T = int(p->T), a.S = int(p->S), a.D = int(p->D);
  a.scale = p->scale, a.scale_log2 = p->scale * kLog2e;
  a.causal = p->causal ? 1 : 0;
  a.rows = p->B * p->H * p->T;
  return a;
}
inline int bf16_dp(int D) { return D <= 32 ? 32 : D <= 64 ? 64 : D <= 96 ? 96 : D <= 128 ? 128 : D <= 192 ? 192 : 256; }
inline int f32_dp(int D) { return (D + 31) / 32 * 32; }

template <class K, class L>
inline int launch_fwd(L& l, Args a) {
  a.n_tiles = (a.T + K::BM - 1) / K::BM;
  return l.template launch<K>((int64_t)a.n_tiles * a.B * a.H, a);
}

template <class L>
inline int forward_impl(L& l, const tk_attention_params* p) {
  if (int rc = check_params(l, p, "attention")) return rc;
  if (p->B * p->H * p->T == 0) return 0;
  Args a = make_args(p);
  int rc = 0;
  if (p->dt == TK_BF16) {
    a.Dp = bf16_dp(a.D);
    a.vec = a.D % 8 == 0 && aligned16(a.q) && aligned16(a.k) && aligned16(a.v) && aligned16(a.o);
    switch (a.Dp) {
      case 32: rc = launch_fwd<FwdBf16<32, 2>>(l, a); break;
      case 64: rc = launch_fwd<FwdBf16<64, 2>>(l, a); break;
      case 96: rc = launch_fwd<FwdBf16<96, 2>>(l, a); break;
      case 128:
        if (tune().fwd_bn == 32) rc = launch_fwd<FwdBf16<128, 2, 32>>(l, a);
        else rc = launch_fwd<FwdBf16<128, 2, 64, true>>(l, a);
        break;
      case 192: rc = launch_fwd<FwdBf16<192, 1>>(l, a); break;
      default: rc = launch_fwd<FwdBf16<256, 1>>(l, a); break;
    }
  } else {
    a.Dp = f32_dp(a.D);
    switch (a.Dp) {
      case 32: rc = launch_fwd<FwdF32<32>>(l, a); break;
      case 64: rc = launch_fwd<FwdF32<64>>(l, a); break;
      case 96: rc = launch_fwd<FwdF32<96>>(l, a); break;
      case 128: rc = launch_fwd<FwdF32<128>>(l, a); break;
      case 160: rc = launch_fwd<FwdF32<160>>(l, a); break;
      case 192: rc = launch_fwd<FwdF32<192>>(l, a); break;
      case 224: rc = launch_fwd<FwdF32<224>>(l, a); break;
      default: rc = launch_fwd<FwdF32<256>>(l, a); break;
    }
  }
  if (rc) return rc;
  return l.finish();
}

template <class K, class L>
inline int launch_bwd(L& l, Args a) {
  a.n_tiles = (a.S + K::BN - 1) / K::BN;
  return l.template launch<K>((int64_t)a.n_tiles * a.B * a.Hkv, a);
}

template <class L>
inline int backward_impl(L& l, const tk_attention_params* p) {
  if (int rc = check_params(l, p, "attention_backward")) return rc;
  const size_t es = p->dt == TK_BF16 ? 2 : 4;
  const int64_t nq = p->B * p->H * p->T * p->D, nk = p->B * p->Hkv * p->S * p->D;
  if (nq == 0 || nk == 0) {  // nothing attends: zero gradients
    if (nq && l.zero(p->dq, size_t(nq) * es)) return -1;
    if (nk && l.zero(p->dk, size_t(nk) * es)) return -1;
    if (nk && l.zero(p->dv, size_t(nk) * es)) return -1;
    return l.finish();
  }
  Args a = make_args(p);
  a.delta = static_cast<float*>(l.scratch(size_t(a.rows) * 4));
  if (!a.delta) return -1;
  int rc = 0;
  if (p->dt == TK_BF16) {
    a.Dp = bf16_dp(a.D);
    a.vec = a.D % 8 == 0 && aligned16(a.q) && aligned16(a.k) && aligned16(a.v) && aligned16(a.dout) &&
            aligned16(a.dk) && aligned16(a.dv);
    a.dq_acc = static_cast<float*>(l.scratch(size_t(a.rows) * a.Dp * 4));
    if (!a.dq_acc) {
      l.release(a.delta);
      return -1;
    }
    rc = l.zero(a.dq_acc, size_t(a.rows) * a.Dp * 4);
    if (!rc) rc = l.template launch<Delta<bf16>>(l.grid_cap(Delta<bf16>::kThreads, a.rows * 32), a);
    if (!rc) switch (a.Dp) {
        case 32: rc = launch_bwd<BwdBf16<32>>(l, a); break;
        case 64: rc = launch_bwd<BwdBf16<64>>(l, a); break;
        case 96: rc = launch_bwd<BwdBf16<96>>(l, a); break;
        case 128: rc = launch_bwd<BwdBf16<128>>(l, a); break;
        case 192: rc = launch_bwd<BwdBf16<192>>(l, a); break;
        default: rc = launch_bwd<BwdBf16<256>>(l, a); break;
      }
    if (!rc) rc = l.template launch<DqConvert>(l.grid_cap(DqConvert::kThreads, a.rows * a.D), a);
    l.release(a.dq_acc);
  } else {
    a.Dp = f32_dp(a.D);
    rc = l.zero(a.dq, size_t(nq) * 4);
    if (!rc) rc = l.template launch<Delta<float>>(l.grid_cap(Delta<float>::kThreads, a.rows * 32), a);
    if (!rc) switch (a.Dp) {
        case 32: rc = launch_bwd<BwdF32<32>>(l, a); break;
        case 64: rc = launch_bwd<BwdF32<64>>(l, a); break;
        case 96: rc = launch_bwd<BwdF32<96>>(l, a); break;
        case 128: rc = launch_bwd<BwdF32<128>>(l, a); break;
        case 160: rc = launch_bwd<BwdF32<160>>(l, a); break;
        case 192: rc = launch_bwd<BwdF32<192>>(l, a); break;
        case 224: rc = launch_bwd<BwdF32<224>>(l, a); break;
        default: rc = launch_bwd<BwdF32<256>>(l, a); break;
      }
  }
  l.release(a.delta);
  if (rc) return rc;
  return l.finish();
}

}  // namespace attn
}  // namespace tkc
