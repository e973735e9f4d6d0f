// The tiles of the dense GEMM, shared by gemm.cu (tkc::gemm) and lora.cu
// (tkc::lora_forward), and the path-forcing entries of both for the
// kernels/dev harnesses. The backend itself only calls tkc::gemm and
// tkc::lora_forward (ops.h), which pick the path.
//
// Two main loops, one epilogue:
//
// * mma_kernel (bf16 operands): tensor cores through mma.sync m16n8k16 bf16
//   with f32 accumulation. CTA tile BM x BN x 32 (128x256 with 8 warps, or
//   128x128 with 4 warps; warp tile 64x64), a 4-stage cp.async ring
//   (global -> shared, 16-byte chunks, zero-filled through the src-size
//   operand past M, N and K), one __syncthreads per K tile. Shared tiles keep
//   the operand's contiguous axis: a K-major tile ([rows][32], 64-byte rows)
//   stores the 16-byte chunk c of row r at chunk c ^ ((r >> 1) & 3); an
//   M/N-major tile ([32][cols]) stores chunk c of row k at c ^ (k & 7). Either
//   way the 8 row addresses of one ldmatrix 8x8 matrix fall in 8 distinct
//   bank groups. Fragments come from ldmatrix.x4 (K-major tiles) or
//   ldmatrix.x4.trans (M/N-major tiles), so all four transpose combinations
//   run at the same speed. Needs 16-byte aligned rows (ld % 8 == 0, aligned
//   bases and batch strides); anything else takes the SIMT kernel.
//   With R > 0 it is the fused LoRA kernel (lora.cu): every K tile also
//   brings the [R, 32] tile of `a`, the warps accumulate t = x·aᵀ [BM, R]
//   from the x fragments they already hold, and the epilogue adds
//   scale·t·b_tileᵀ with two more MMAs per fragment (t split into bf16
//   hi + lo parts, so t is not rounded to bf16) before the shared epilogue.
//
// * simt_kernel (f32 operands, and bf16 operands the tensor-core path cannot
//   take): 128x128x8 CTA tile, 256 threads with 8x8 register micro-tiles (two
//   4x4 blocks 64 apart), shared-memory double buffering with a register
//   prefetch of the next tile, plain FMA in f32 (no TF32). Any layout, any
//   alignment, the transposes decided per K segment at run time. With R > 0
//   the fused LoRA kernel of the f32 path.
//
// Both run the optional second K segment (A2·B2) through the same
// accumulators: the tiles of segment 1 and then those of segment 2 form one
// K-tile sequence; the accumulators are scaled by alpha when the first tile
// of segment 2 arrives (alpha applies to segment 1 only). Then epilogue2:
// (+ beta·C) + bias, activation, + residual, stored as c_dt.
// Batches run on blockIdx.z (chunks of 65535 launches); output tiles are
// visited in groups of 8 tile rows along blockIdx.x for L2 reuse.
#pragma once
#include <cstdint>

#include "common.cuh"
#include "ops.h"

namespace tkc {

// ------------------------------------------------------------------ path-forcing entries (harness)
enum class GemmPath {
  Auto = 0,     // what gemm picks
  TcLarge = 1,  // tensor cores, 128x256x32 tile, 8 warps, 4 stages
  TcSmall = 2,  // tensor cores, 128x128x32 tile, 4 warps, 4 stages
  Simt = 3,     // f32 FMA on 128x128x8 tiles: any layout, any alignment
};
// gemm through `path`; a tensor-core path on arguments it cannot take
// (f32, unaligned rows, second segment with other transposes) fails with
// last_error set. Auto is tkc::gemm.
int gemm_path(GemmPath path, const tk_gemm_params* p);
// The path Auto takes for p (never Auto).
GemmPath gemm_pick(const tk_gemm_params* p);

enum class LoraPath {
  Auto = 0,
  TcLarge = 1,  // fused, tensor cores, 128x256 tile (bf16, r <= 64, aligned rows)
  TcSmall = 2,  // fused, tensor cores, 128x128 tile (r <= 32; r > 32 runs the 128x256 tile)
  Simt = 3,     // fused, f32 FMA (any alignment, r <= 64)
  Unfused = 4,  // gemm calls: xa = x·aᵀ; t = scale·x·aᵀ (dt); y = x·wᵀ + t·bᵀ + bias
};
int lora_forward_path(LoraPath path, const tk_lora_params* p);
LoraPath lora_pick(const tk_lora_params* p);

namespace gemm_detail {

// ------------------------------------------------------------------ kernel parameters
struct Seg {  // one K segment: C += opA(A)·opB(B)
  const void* A;
  const void* B;
  int64_t lda, ldb, sa, sb;  // leading dims and batch strides (elements)
  int64_t K;
  int ta, tb;
};

struct Epi {
  void* C;
  int64_t ldc, sc;
  float beta;
  const void* bias;
  const void* residual;
  int act;
  int vec2;  // C, residual and bias take paired accesses at even n (aligned, even ldc and sc)
};

struct Params {
  int64_t M, N;
  int64_t batch0;  // the batch of blockIdx.z == 0 (launches in chunks of 65535)
  int tiles_m, tiles_n;
  Seg s1, s2;
  int has2;
  float alpha;  // of segment 1
  Epi e;
  // fused LoRA (R > 0 kernels): C = y, s1 = (x, w); a [r, K], b [N, r]
  const void* la;
  const void* lb;
  int64_t r;
  float lscale;
  float* xa;
  int lb_async;  // b rows 16-byte aligned (r % 8 == 0): cp.async for the b tile
};

constexpr int kGroupM = 8;  // tile rows per raster group

// (tm, tn) of the linear tile index pid: groups of kGroupM tile rows, column by column
__device__ __forceinline__ void tile_coords(int pid, int tiles_m, int tiles_n, int& tm, int& tn) {
  const int per_group = kGroupM * tiles_n;
  const int group = pid / per_group;
  const int first_m = group * kGroupM;
  const int rest = tiles_m - first_m;
  const int gsize = rest < kGroupM ? rest : kGroupM;
  const int in_group = pid - group * per_group;
  tm = first_m + in_group % gsize;
  tn = in_group / gsize;
}

// ------------------------------------------------------------------ epilogue
// The activations of native/cpu/vecmath.inc (vgelu, relu, silu, vgelu_erf).
__device__ __forceinline__ float activate(float x, int act) {
  switch (act) {
    case TK_ACT_GELU: {
      const float u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
      return x / (1.0f + expf(-2.0f * u));
    }
    case TK_ACT_RELU:
      return x > 0.0f ? x : 0.0f;
    case TK_ACT_SILU:
      return x / (1.0f + expf(-x));
    case TK_ACT_GELU_ERF:
      return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    default:
      return x;
  }
}

template <class T> __device__ __forceinline__ void ld2(const T* p, bool two, bool vec, float (&v)[2]);
template <> __device__ __forceinline__ void ld2<float>(const float* p, bool two, bool vec, float (&v)[2]) {
  if (vec) {
    const float2 q = *reinterpret_cast<const float2*>(p);
    v[0] = q.x;
    v[1] = q.y;
  } else {
    v[0] = p[0];
    v[1] = two ? p[1] : 0.0f;
  }
}
template <> __device__ __forceinline__ void ld2<bf16>(const bf16* p, bool two, bool vec, float (&v)[2]) {
  if (vec) {
    const float2 q = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p));
    v[0] = q.x;
    v[1] = q.y;
  } else {
    v[0] = __bfloat162float(p[0]);
    v[1] = two ? __bfloat162float(p[1]) : 0.0f;
  }
}
template <class T> __device__ __forceinline__ void st2(T* p, bool two, bool vec, const float (&v)[2]);
template <> __device__ __forceinline__ void st2<float>(float* p, bool two, bool vec, const float (&v)[2]) {
  if (vec) {
    *reinterpret_cast<float2*>(p) = make_float2(v[0], v[1]);
  } else {
    p[0] = v[0];
    if (two) p[1] = v[1];
  }
}
template <> __device__ __forceinline__ void st2<bf16>(bf16* p, bool two, bool vec, const float (&v)[2]) {
  if (vec) {
    *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(v[0], v[1]);
  } else {
    p[0] = __float2bfloat16_rn(v[0]);
    if (two) p[1] = __float2bfloat16_rn(v[1]);
  }
}

// The one epilogue of every path: the outputs (m, n) and (m, n + 1) of the
// batch whose C starts at element coff, v0 and v1 the finished products
// (alpha and the second segment included); n is even. Columns past N and
// rows past M are skipped.
template <class TC>
__device__ __forceinline__ void epilogue2(const Epi& e, int64_t M, int64_t N, int64_t coff, int64_t m, int64_t n,
                                          float v0, float v1) {
  if (m >= M || n >= N) return;
  const bool two = n + 1 < N;
  const bool vec = two && e.vec2;
  const int64_t off = coff + m * e.ldc + n;
  TC* C = static_cast<TC*>(e.C);
  float v[2] = {v0, v1};
  if (e.beta != 0.0f) {
    float c[2];
    ld2<TC>(C + off, two, vec, c);
    v[0] = fmaf(e.beta, c[0], v[0]);
    v[1] = fmaf(e.beta, c[1], v[1]);
  }
  if (e.bias) {
    float b[2];
    ld2<TC>(static_cast<const TC*>(e.bias) + n, two, vec, b);
    v[0] += b[0];
    v[1] += b[1];
  }
  if (e.act != TK_ACT_NONE) {
    v[0] = activate(v[0], e.act);
    v[1] = activate(v[1], e.act);
  }
  if (e.residual) {
    float r[2];
    ld2<TC>(static_cast<const TC*>(e.residual) + off, two, vec, r);
    v[0] += r[0];
    v[1] += r[1];
  }
  st2<TC>(C + off, two, vec, v);
}

// ------------------------------------------------------------------ PTX helpers (sm_80+)
__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
// 16 bytes global → shared; the first `bytes` (0..16) come from src, the rest are zeros
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, int bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
// D += A·B: A 16x16 bf16 (row), B 16x8 bf16 (col), D 16x8 f32
__device__ __forceinline__ void mma_bf16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);  // .x (low 16 bits) = lo
  return *reinterpret_cast<uint32_t*>(&h);
}

// ------------------------------------------------------------------ tensor-core tiles
constexpr int kBK = 32;  // K per tile: 64-byte rows in K-major tiles

// element offset of 16-byte chunk c (0..3) of row r in a K-major [rows][32] tile
__host__ __device__ __forceinline__ int kmaj_off(int r, int c) { return r * kBK + ((c ^ ((r >> 1) & 3)) << 3); }
// element offset of 16-byte chunk c of row k in an M/N-major [32][COLS] tile (COLS >= 64)
template <int COLS> __host__ __device__ __forceinline__ int mnmaj_off(int k, int c) {
  return k * COLS + ((c ^ (k & 7)) << 3);
}

// The row address `lane` gives to ldmatrix.x4 (an element offset in the tile) for the fragments at
// k step kk (0 or 16) of the 16 rows (A: m) or 16 columns (B: n) that start at `base`:
// A, K-major [rows][32], no .trans: matrices (m 0-7, k 0-7), (m 8-15, k 0-7), (m 0-7, k 8-15), (m 8-15, k 8-15)
//   = a0..a3 of one m16 tile;
__host__ __device__ __forceinline__ int ldsm_a_kmaj(int base, int lane, int kk) {
  return kmaj_off(base + (lane & 15), (kk >> 3) + (lane >> 4));
}
// A, M-major [32][BM], .trans: stored rows are k; matrices (k 0-7, m 0-7), (k 0-7, m 8-15), (k 8-15, m 0-7),
//   (k 8-15, m 8-15) = a0..a3;
template <int BM> __host__ __device__ __forceinline__ int ldsm_a_mmaj(int base, int lane, int kk) {
  return mnmaj_off<BM>(kk + (lane & 7) + ((lane >> 4) << 3), (base >> 3) + ((lane >> 3) & 1));
}
// B, K-major [rows][32] (rows are n), no .trans: matrices (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7),
//   (n 8-15, k 8-15) = b0, b1 of n8 tile 0, b0, b1 of n8 tile 1;
__host__ __device__ __forceinline__ int ldsm_b_kmaj(int base, int lane, int kk) {
  return kmaj_off(base + (lane & 7) + ((lane >> 4) << 3), (kk >> 3) + ((lane >> 3) & 1));
}
// B, N-major [32][BN], .trans: matrices (k 0-7, n 0-7), (k 8-15, n 0-7), (k 0-7, n 8-15), (k 8-15, n 8-15).
template <int BN> __host__ __device__ __forceinline__ int ldsm_b_nmaj(int base, int lane, int kk) {
  return mnmaj_off<BN>(kk + (lane & 7) + (((lane >> 3) & 1) << 3), (base >> 3) + (lane >> 4));
}

// rows [row0, row0 + ROWS) x k [k0, k0 + 32) of a K-major operand (row r at g + r·ld) into a K-major tile
template <int ROWS, int THREADS>
__device__ __forceinline__ void cp_kmajor(uint32_t s, const bf16* g, int64_t ld, int64_t row0, int64_t rows,
                                          int64_t k0, int64_t K, int tid) {
  constexpr int CH = kBK / 8, TOTAL = ROWS * CH, ITER = (TOTAL + THREADS - 1) / THREADS;
#pragma unroll
  for (int it = 0; it < ITER; ++it) {
    const int i = tid + it * THREADS;
    if (TOTAL % THREADS == 0 || i < TOTAL) {
      const int r = i / CH, c = i % CH;
      const int64_t gr = row0 + r, gk = k0 + c * 8;
      const bf16* src = g;
      int bytes = 0;
      if (gr < rows && gk < K) {
        const int64_t rem = K - gk;
        bytes = rem >= 8 ? 16 : static_cast<int>(rem) * 2;
        src = g + gr * ld + gk;
      }
      cp_async16(s + 2 * kmaj_off(r, c), src, bytes);
    }
  }
}
// k [k0, k0 + 32) x columns [col0, col0 + COLS) of an M/N-major operand (k row at g + k·ld) into an M/N-major tile
template <int COLS, int THREADS>
__device__ __forceinline__ void cp_mnmajor(uint32_t s, const bf16* g, int64_t ld, int64_t col0, int64_t cols,
                                           int64_t k0, int64_t K, int tid) {
  constexpr int CPR = COLS / 8, TOTAL = kBK * CPR, ITER = (TOTAL + THREADS - 1) / THREADS;
#pragma unroll
  for (int it = 0; it < ITER; ++it) {
    const int i = tid + it * THREADS;
    if (TOTAL % THREADS == 0 || i < TOTAL) {
      const int k = i / CPR, c = i % CPR;
      const int64_t gk = k0 + k, gc = col0 + c * 8;
      const bf16* src = g;
      int bytes = 0;
      if (gk < K && gc < cols) {
        const int64_t rem = cols - gc;
        bytes = rem >= 8 ? 16 : static_cast<int>(rem) * 2;
        src = g + gk * ld + gc;
      }
      cp_async16(s + 2 * mnmaj_off<COLS>(k, c), src, bytes);
    }
  }
}

template <int BM_, int BN_, int WARPS_M_, int WARPS_N_, int STAGES_, int MINB_> struct MmaCfg {
  static constexpr int BM = BM_, BN = BN_, WARPS_M = WARPS_M_, WARPS_N = WARPS_N_, STAGES = STAGES_, MINB = MINB_;
  static constexpr int THREADS = 32 * WARPS_M * WARPS_N;
  static constexpr int WM = BM / WARPS_M, WN = BN / WARPS_N;  // warp tile
  static constexpr int MI = WM / 16, NI = WN / 8;            // mma tiles per warp
  static_assert(WM % 16 == 0 && WN % 16 == 0, "warp tile");
  static_assert(BM >= 64 && BN >= 64, "M/N-major tiles need 8 chunks per row");
  // LoRA: m16 tiles of t per warp (the warps of one warp row split its MI tiles)
  static constexpr int MIW = MI / WARPS_N > 0 ? MI / WARPS_N : 1;
  static_assert(MI % WARPS_N == 0, "lora t split");
  static constexpr int stage_bytes(int R) { return (BM + BN + R) * kBK * 2; }
  static constexpr int lb_bytes(int R) { return R > 0 ? BN * (R + 8) * 2 : 0; }
  static constexpr int ts_bytes(int R) { return R > 0 ? BM * (R + 4) * 4 : 0; }
  static constexpr int smem_bytes(int R) {
    return (STAGES * stage_bytes(R) > ts_bytes(R) ? STAGES * stage_bytes(R) : ts_bytes(R)) + lb_bytes(R);
  }
};
using CfgLarge = MmaCfg<128, 256, 2, 4, 4, 1>;
using CfgSmall = MmaCfg<128, 128, 2, 2, 4, 2>;

// A fragments (16x16, row) of the warp's MI m16 tiles at k step kk of a stage
template <class Cfg, bool TA>
__device__ __forceinline__ void frag_a(uint32_t (&af)[Cfg::MI][4], uint32_t sA, int wm, int lane, int kk) {
#pragma unroll
  for (int mi = 0; mi < Cfg::MI; ++mi) {
    const int base = wm * Cfg::WM + mi * 16;
    if constexpr (!TA)
      ldsm_x4(af[mi], sA + 2 * ldsm_a_kmaj(base, lane, kk));
    else
      ldsm_x4_t(af[mi], sA + 2 * ldsm_a_mmaj<Cfg::BM>(base, lane, kk));
  }
}
// B fragments (16x8, col) of the warp's NI n8 tiles at k step kk; one x4 gives two n8 tiles
template <class Cfg, bool TB>
__device__ __forceinline__ void frag_b(uint32_t (&bf)[Cfg::NI][2], uint32_t sB, int wn, int lane, int kk) {
#pragma unroll
  for (int nj = 0; nj < Cfg::NI / 2; ++nj) {
    uint32_t r[4];
    const int base = wn * Cfg::WN + nj * 16;
    if constexpr (TB)
      ldsm_x4(r, sB + 2 * ldsm_b_kmaj(base, lane, kk));
    else
      ldsm_x4_t(r, sB + 2 * ldsm_b_nmaj<Cfg::BN>(base, lane, kk));
    bf[2 * nj][0] = r[0];
    bf[2 * nj][1] = r[1];
    bf[2 * nj + 1][0] = r[2];
    bf[2 * nj + 1][1] = r[3];
  }
}

// C tile (BM x BN) of batch blockIdx.z: see the top of the file. R > 0: fused LoRA (TA = 0, TB = 1,
// no second segment), R = 16, 32 or 64 >= r.
template <class Cfg, bool TA, bool TB, class TC, int R>
__global__ void __launch_bounds__(Cfg::THREADS, Cfg::MINB) mma_kernel(const Params p) {
  constexpr int BM = Cfg::BM, BN = Cfg::BN, STAGES = Cfg::STAGES, THREADS = Cfg::THREADS;
  constexpr int MI = Cfg::MI, NI = Cfg::NI, MIW = Cfg::MIW;
  constexpr int RP = R > 0 ? R : 16;  // (array sizes when R == 0)
  constexpr int STAGE = Cfg::stage_bytes(R);
  static_assert(R == 0 || (!TA && TB), "fused LoRA is x [N, in] · w [out, in]ᵀ");
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t sbase = smem_u32(smem);

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp / Cfg::WARPS_N, wn = warp % Cfg::WARPS_N;
  int tm, tn;
  tile_coords(blockIdx.x, p.tiles_m, p.tiles_n, tm, tn);
  const int64_t bz = p.batch0 + blockIdx.z;
  const int64_t M = p.M, N = p.N;
  const int64_t m0 = static_cast<int64_t>(tm) * BM, n0 = static_cast<int64_t>(tn) * BN;

  const bf16* A1 = static_cast<const bf16*>(p.s1.A) + bz * p.s1.sa;
  const bf16* B1 = static_cast<const bf16*>(p.s1.B) + bz * p.s1.sb;
  const bf16* A2 = p.has2 ? static_cast<const bf16*>(p.s2.A) + bz * p.s2.sa : A1;
  const bf16* B2 = p.has2 ? static_cast<const bf16*>(p.s2.B) + bz * p.s2.sb : B1;
  const int KT1 = static_cast<int>((p.s1.K + kBK - 1) / kBK);
  const int KT2 = p.has2 ? static_cast<int>((p.s2.K + kBK - 1) / kBK) : 0;
  const int KT = KT1 + KT2;

  // LoRA: the b tile [BN][RP + 8] after the stages, loaded with the first group when rows are aligned
  const uint32_t sLb = sbase + (STAGES * STAGE > Cfg::ts_bytes(R) ? STAGES * STAGE : Cfg::ts_bytes(R));
  if constexpr (R > 0) {
    if (p.lb_async) {
      constexpr int CH = RP / 8, TOTAL = BN * CH;
      const bf16* lb = static_cast<const bf16*>(p.lb);
      for (int i = tid; i < TOTAL; i += THREADS) {
        const int row = i / CH, c = i % CH;
        const int64_t gn = n0 + row;
        const int64_t gc = static_cast<int64_t>(c) * 8;
        const bf16* src = lb;
        int bytes = 0;
        if (gn < N && gc < p.r) {
          const int64_t rem = p.r - gc;
          bytes = rem >= 8 ? 16 : static_cast<int>(rem) * 2;
          src = lb + gn * p.r + gc;
        }
        cp_async16(sLb + 2 * (row * (RP + 8) + c * 8), src, bytes);
      }
    }
  }

  auto load_tile = [&](int t, int stage) {
    const uint32_t sA = sbase + stage * STAGE, sB = sA + BM * kBK * 2;
    const bf16 *a, *b;
    int64_t lda, ldb, K, k0;
    if (t < KT1) {
      a = A1, b = B1, lda = p.s1.lda, ldb = p.s1.ldb, K = p.s1.K, k0 = static_cast<int64_t>(t) * kBK;
    } else {
      a = A2, b = B2, lda = p.s2.lda, ldb = p.s2.ldb, K = p.s2.K, k0 = static_cast<int64_t>(t - KT1) * kBK;
    }
    if constexpr (!TA)
      cp_kmajor<BM, THREADS>(sA, a, lda, m0, M, k0, K, tid);
    else
      cp_mnmajor<BM, THREADS>(sA, a, lda, m0, M, k0, K, tid);
    if constexpr (TB)
      cp_kmajor<BN, THREADS>(sB, b, ldb, n0, N, k0, K, tid);
    else
      cp_mnmajor<BN, THREADS>(sB, b, ldb, n0, N, k0, K, tid);
    if constexpr (R > 0)  // a [r, K]: rows of K elements, like x
      cp_kmajor<RP, THREADS>(sB + BN * kBK * 2, static_cast<const bf16*>(p.la), p.s1.K, 0, p.r, k0, K, tid);
  };

  float acc[MI][NI][4];
#pragma unroll
  for (int i = 0; i < MI; ++i)
#pragma unroll
    for (int j = 0; j < NI; ++j)
#pragma unroll
      for (int q = 0; q < 4; ++q) acc[i][j][q] = 0.0f;
  float tacc[MIW][RP / 8][4];
#pragma unroll
  for (int i = 0; i < MIW; ++i)
#pragma unroll
    for (int j = 0; j < RP / 8; ++j)
#pragma unroll
      for (int q = 0; q < 4; ++q) tacc[i][j][q] = 0.0f;

#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < KT) load_tile(s, s);
    cp_async_commit();
  }

  for (int t = 0; t < KT; ++t) {
    cp_async_wait<STAGES - 2>();  // tile t has landed (this thread's copies) ...
    __syncthreads();              // ... everyone's; and every warp is done with tile t - 1
    {
      const int tn_ = t + STAGES - 1;
      if (tn_ < KT) load_tile(tn_, tn_ % STAGES);
      cp_async_commit();
    }
    if (p.has2 && t == KT1) {  // segment 2 starts: alpha applies to segment 1 only
#pragma unroll
      for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int j = 0; j < NI; ++j)
#pragma unroll
          for (int q = 0; q < 4; ++q) acc[i][j][q] *= p.alpha;
    }
    const uint32_t sA = sbase + (t % STAGES) * STAGE, sB = sA + BM * kBK * 2;
#pragma unroll
    for (int kk = 0; kk < kBK; kk += 16) {
      uint32_t af[MI][4], bfr[NI][2];
      frag_a<Cfg, TA>(af, sA, wm, lane, kk);
      frag_b<Cfg, TB>(bfr, sB, wn, lane, kk);
      if constexpr (R > 0) {
        // t rows: the m16 tiles wn*MIW .. wn*MIW + MIW - 1 of this warp row, whose x fragments af holds
        const uint32_t sL = sB + BN * kBK * 2;
#pragma unroll
        for (int rj = 0; rj < RP / 16; ++rj) {
          uint32_t r4[4];
          ldsm_x4(r4, sL + 2 * ldsm_b_kmaj(rj * 16, lane, kk));
          const uint32_t b0[2] = {r4[0], r4[1]}, b1[2] = {r4[2], r4[3]};
#pragma unroll
          for (int mi = 0; mi < MI; ++mi) {
            if (mi / MIW == wn) {
              mma_bf16(tacc[mi % MIW][2 * rj], af[mi], b0);
              mma_bf16(tacc[mi % MIW][2 * rj + 1], af[mi], b1);
            }
          }
        }
      }
#pragma unroll
      for (int mi = 0; mi < MI; ++mi)
#pragma unroll
        for (int ni = 0; ni < NI; ++ni) mma_bf16(acc[mi][ni], af[mi], bfr[ni]);
    }
  }
  cp_async_wait<0>();

  const int g = lane >> 2, tig = lane & 3;
  if constexpr (R > 0) {
    __syncthreads();  // the stages are free: t goes there
    constexpr int TS = RP + 4, LS = RP + 8;
    float* ts = reinterpret_cast<float*>(smem);  // [BM][TS]
    bf16* lbs = reinterpret_cast<bf16*>(smem + (sLb - sbase));
#pragma unroll
    for (int j = 0; j < MIW; ++j) {
      const int row = wm * Cfg::WM + (wn * MIW + j) * 16 + g;
#pragma unroll
      for (int rj = 0; rj < RP / 8; ++rj) {
        const int col = rj * 8 + tig * 2;
        *reinterpret_cast<float2*>(ts + row * TS + col) = make_float2(tacc[j][rj][0], tacc[j][rj][1]);
        *reinterpret_cast<float2*>(ts + (row + 8) * TS + col) = make_float2(tacc[j][rj][2], tacc[j][rj][3]);
      }
    }
    if (!p.lb_async) {  // b rows not 16-byte aligned: plain loads
      const bf16* lb = static_cast<const bf16*>(p.lb);
      for (int i = tid; i < BN * RP; i += THREADS) {
        const int row = i / RP, c = i % RP;
        const int64_t gn = n0 + row;
        lbs[row * LS + c] = (gn < N && c < p.r) ? lb[gn * p.r + c] : __float2bfloat16_rn(0.0f);
      }
    }
    __syncthreads();
    if (p.xa && tn == 0) {  // x·aᵀ for the backward, once per row tile
      const int r = static_cast<int>(p.r);
      for (int i = tid; i < BM * r; i += THREADS) {
        const int row = i / r, c = i - row * r;
        if (m0 + row < M) p.xa[(m0 + row) * p.r + c] = ts[row * TS + c];
      }
    }
    // acc += (scale·t)·b_tileᵀ, scale·t = hi + lo in bf16
    const float sc = p.lscale;
#pragma unroll
    for (int kr = 0; kr < RP / 16; ++kr) {
      uint32_t bq[NI][2];
#pragma unroll
      for (int ni = 0; ni < NI; ++ni) {
        const bf16* bp = lbs + (wn * Cfg::WN + ni * 8 + g) * LS + kr * 16 + tig * 2;
        bq[ni][0] = *reinterpret_cast<const uint32_t*>(bp);
        bq[ni][1] = *reinterpret_cast<const uint32_t*>(bp + 8);
      }
#pragma unroll
      for (int mi = 0; mi < MI; ++mi) {
        const int row = wm * Cfg::WM + mi * 16 + g;
        const int col = kr * 16 + tig * 2;
        float2 q[4];
        q[0] = *reinterpret_cast<const float2*>(ts + row * TS + col);
        q[1] = *reinterpret_cast<const float2*>(ts + (row + 8) * TS + col);
        q[2] = *reinterpret_cast<const float2*>(ts + row * TS + col + 8);
        q[3] = *reinterpret_cast<const float2*>(ts + (row + 8) * TS + col + 8);
        uint32_t hi[4], lo[4];
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const float x0 = sc * q[j].x, x1 = sc * q[j].y;
          const float h0 = __bfloat162float(__float2bfloat16_rn(x0));
          const float h1 = __bfloat162float(__float2bfloat16_rn(x1));
          hi[j] = pack_bf16(h0, h1);
          lo[j] = pack_bf16(x0 - h0, x1 - h1);
        }
#pragma unroll
        for (int ni = 0; ni < NI; ++ni) {
          mma_bf16(acc[mi][ni], hi, bq[ni]);
          mma_bf16(acc[mi][ni], lo, bq[ni]);
        }
      }
    }
  }

  const float alpha_f = p.has2 ? 1.0f : p.alpha;
  const int64_t coff = bz * p.e.sc;
#pragma unroll
  for (int mi = 0; mi < MI; ++mi) {
    const int64_t m = m0 + wm * Cfg::WM + mi * 16 + g;
#pragma unroll
    for (int ni = 0; ni < NI; ++ni) {
      const int64_t n = n0 + wn * Cfg::WN + ni * 8 + tig * 2;
      epilogue2<TC>(p.e, M, N, coff, m, n, alpha_f * acc[mi][ni][0], alpha_f * acc[mi][ni][1]);
      epilogue2<TC>(p.e, M, N, coff, m + 8, n, alpha_f * acc[mi][ni][2], alpha_f * acc[mi][ni][3]);
    }
  }
}

// ------------------------------------------------------------------ SIMT tiles
namespace simt {
constexpr int BM = 128, BN = 128, BK = 8, THREADS = 256, LDS = BM + 4;  // LDS: padded row of a [BK][BM] tile
static_assert(BM == BN, "one padded row length for both tiles");
constexpr int pipe_floats(int R) { return 4 * BK * LDS + 2 * BK * R; }
constexpr int epi_floats(int R) { return R > 0 ? (R + 16) * LDS : 0; }
constexpr int smem_floats(int R) { return pipe_floats(R) > epi_floats(R) ? pipe_floats(R) : epi_floats(R); }
}  // namespace simt

template <class T> __device__ __forceinline__ float ldg_f32(const T* p) { return to_f32<T>(p[0]); }

// C tile (128 x 128) of batch blockIdx.z. T: operand type, TC: output type. R > 0: fused LoRA
// (s1 = x [N, K] and w [out, K] stored [N, K] with trans_b), R = 16, 32 or 64 >= r.
template <class T, class TC, int R>
__global__ void __launch_bounds__(simt::THREADS, R > 0 ? 1 : 2) simt_kernel(const Params p) {
  using namespace simt;
  constexpr int RP = R > 0 ? R : 16;
  constexpr int LPT = R > 0 ? (BK * R + THREADS - 1) / THREADS : 1;  // a-tile elements per thread
  __shared__ __align__(16) float sm[smem_floats(R)];
  float* As = sm;                 // [2][BK][LDS]: As[k][m]
  float* Bs = sm + 2 * BK * LDS;  // [2][BK][LDS]: Bs[k][n]
  float* Ls = sm + 4 * BK * LDS;  // [2][BK][RP]: Ls[k][c] = a(c, k)  (R > 0)

  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  int tm, tn;
  tile_coords(blockIdx.x, p.tiles_m, p.tiles_n, tm, tn);
  const int64_t bz = p.batch0 + blockIdx.z;
  const int64_t M = p.M, N = p.N;
  const int64_t m0 = static_cast<int64_t>(tm) * BM, n0 = static_cast<int64_t>(tn) * BN;
  const T* A1 = static_cast<const T*>(p.s1.A) + bz * p.s1.sa;
  const T* B1 = static_cast<const T*>(p.s1.B) + bz * p.s1.sb;
  const T* A2 = p.has2 ? static_cast<const T*>(p.s2.A) + bz * p.s2.sa : A1;
  const T* B2 = p.has2 ? static_cast<const T*>(p.s2.B) + bz * p.s2.sb : B1;
  const int KT1 = static_cast<int>((p.s1.K + BK - 1) / BK);
  const int KT2 = p.has2 ? static_cast<int>((p.s2.K + BK - 1) / BK) : 0;
  const int KT = KT1 + KT2;

  float ra[4], rb[4], rl[LPT];
  // tile t into registers: 4 elements of A, 4 of B (and of a), coalesced along the stored rows
  auto gload = [&](int t) {
    const T *a, *b;
    int64_t lda, ldb, K, k0;
    int ta, tb;
    if (t < KT1) {
      a = A1, b = B1, lda = p.s1.lda, ldb = p.s1.ldb, K = p.s1.K, ta = p.s1.ta, tb = p.s1.tb;
      k0 = static_cast<int64_t>(t) * BK;
    } else {
      a = A2, b = B2, lda = p.s2.lda, ldb = p.s2.ldb, K = p.s2.K, ta = p.s2.ta, tb = p.s2.tb;
      k0 = static_cast<int64_t>(t - KT1) * BK;
    }
    // element (m, k) of A at m·ars + k·aks; (k, n) of B at k·bks + n·bns
    const int64_t ars = ta ? 1 : lda, aks = ta ? lda : 1, bns = tb ? ldb : 1, bks = tb ? 1 : ldb;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int idx = tid + i * THREADS;
      const int mm = ta ? idx % BM : idx / BK, kk = ta ? idx / BM : idx % BK;
      const int64_t gm = m0 + mm, gk = k0 + kk;
      ra[i] = (gm < M && gk < K) ? ldg_f32(a + gm * ars + gk * aks) : 0.0f;
      const int nn = tb ? idx / BK : idx % BN, kb = tb ? idx % BK : idx / BN;
      const int64_t gn = n0 + nn, gkb = k0 + kb;
      rb[i] = (gn < N && gkb < K) ? ldg_f32(b + gkb * bks + gn * bns) : 0.0f;
    }
    if constexpr (R > 0) {
      if (t < KT1) {
        const T* la = static_cast<const T*>(p.la);
#pragma unroll
        for (int i = 0; i < LPT; ++i) {
          const int idx = tid + i * THREADS;
          const int c = idx / BK, kk = idx % BK;
          const int64_t gk = k0 + kk;
          rl[i] = (idx < BK * R && c < p.r && gk < K) ? ldg_f32(la + c * p.s1.K + gk) : 0.0f;
        }
      }
    }
  };
  auto sstore = [&](int t, int stage) {
    const int ta = t < KT1 ? p.s1.ta : p.s2.ta, tb = t < KT1 ? p.s1.tb : p.s2.tb;
    float* as = As + stage * BK * LDS;
    float* bs = Bs + stage * BK * LDS;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int idx = tid + i * THREADS;
      const int mm = ta ? idx % BM : idx / BK, kk = ta ? idx / BM : idx % BK;
      as[kk * LDS + mm] = ra[i];
      const int nn = tb ? idx / BK : idx % BN, kb = tb ? idx % BK : idx / BN;
      bs[kb * LDS + nn] = rb[i];
    }
    if constexpr (R > 0) {
      if (t < KT1) {
        float* ls = Ls + stage * BK * R;
#pragma unroll
        for (int i = 0; i < LPT; ++i) {
          const int idx = tid + i * THREADS;
          if (idx < BK * R) ls[(idx % BK) * R + idx / BK] = rl[i];
        }
      }
    }
  };

  float acc[8][8];
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[i][j] = 0.0f;
  float tacc[RP / 2];  // LoRA: t(row tid / 2, columns (tid & 1)·R/2 ..)
#pragma unroll
  for (int j = 0; j < RP / 2; ++j) tacc[j] = 0.0f;

  if (KT > 0) {
    gload(0);
    sstore(0, 0);
  }
  __syncthreads();
  for (int t = 0; t < KT; ++t) {
    if (t + 1 < KT) gload(t + 1);
    if (p.has2 && t == KT1) {
#pragma unroll
      for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] *= p.alpha;
    }
    const float* as = As + (t & 1) * BK * LDS;
    const float* bs = Bs + (t & 1) * BK * LDS;
    // fragments of step k + 1 are read while step k multiplies
    float4 fa[2][2], fb[2][2];
    fa[0][0] = *reinterpret_cast<const float4*>(as + ty * 4);
    fa[0][1] = *reinterpret_cast<const float4*>(as + 64 + ty * 4);
    fb[0][0] = *reinterpret_cast<const float4*>(bs + tx * 4);
    fb[0][1] = *reinterpret_cast<const float4*>(bs + 64 + tx * 4);
#pragma unroll
    for (int k = 0; k < BK; ++k) {
      const int cur = k & 1, nxt = cur ^ 1;
      if (k + 1 < BK) {
        fa[nxt][0] = *reinterpret_cast<const float4*>(as + (k + 1) * LDS + ty * 4);
        fa[nxt][1] = *reinterpret_cast<const float4*>(as + (k + 1) * LDS + 64 + ty * 4);
        fb[nxt][0] = *reinterpret_cast<const float4*>(bs + (k + 1) * LDS + tx * 4);
        fb[nxt][1] = *reinterpret_cast<const float4*>(bs + (k + 1) * LDS + 64 + tx * 4);
      }
      const float av[8] = {fa[cur][0].x, fa[cur][0].y, fa[cur][0].z, fa[cur][0].w,
                           fa[cur][1].x, fa[cur][1].y, fa[cur][1].z, fa[cur][1].w};
      const float bv[8] = {fb[cur][0].x, fb[cur][0].y, fb[cur][0].z, fb[cur][0].w,
                           fb[cur][1].x, fb[cur][1].y, fb[cur][1].z, fb[cur][1].w};
#pragma unroll
      for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
    }
    if constexpr (R > 0) {
      if (t < KT1) {
        const float* ls = Ls + (t & 1) * BK * R + (tid & 1) * (R / 2);
#pragma unroll
        for (int k = 0; k < BK; ++k) {
          const float xv = as[k * LDS + (tid >> 1)];
#pragma unroll
          for (int c = 0; c < R / 2; c += 4) {
            const float4 l = *reinterpret_cast<const float4*>(ls + k * R + c);
            tacc[c] = fmaf(xv, l.x, tacc[c]);
            tacc[c + 1] = fmaf(xv, l.y, tacc[c + 1]);
            tacc[c + 2] = fmaf(xv, l.z, tacc[c + 2]);
            tacc[c + 3] = fmaf(xv, l.w, tacc[c + 3]);
          }
        }
      }
    }
    if (t + 1 < KT) sstore(t + 1, (t + 1) & 1);
    __syncthreads();
  }

  if constexpr (R > 0) {
    // (the loop ended on a barrier, or never ran) t → Tt[c][m]; b in chunks of 16 columns → Bt[c][n]
    float* Tt = sm;             // [R][LDS]
    float* Bt = sm + R * LDS;   // [16][LDS]
    const int row = tid >> 1, cb = (tid & 1) * (R / 2);
#pragma unroll
    for (int c = 0; c < R / 2; ++c) Tt[(cb + c) * LDS + row] = tacc[c];
    __syncthreads();
    if (p.xa && tn == 0) {
      const int r = static_cast<int>(p.r);
      for (int i = tid; i < BM * r; i += THREADS) {
        const int mm = i / r, c = i - mm * r;
        if (m0 + mm < M) p.xa[(m0 + mm) * p.r + c] = Tt[c * LDS + mm];
      }
    }
    const T* lb = static_cast<const T*>(p.lb);
    const float sc = p.lscale;
    for (int c0 = 0; c0 < R; c0 += 16) {
      for (int i = tid; i < 16 * BN; i += THREADS) {
        const int c = i & 15, nn = i >> 4;
        const int64_t gn = n0 + nn;
        Bt[c * LDS + nn] = (gn < N && c0 + c < p.r) ? ldg_f32(lb + gn * p.r + c0 + c) : 0.0f;
      }
      __syncthreads();
#pragma unroll 4
      for (int c = 0; c < 16; ++c) {
        const float4 a0 = *reinterpret_cast<const float4*>(Tt + (c0 + c) * LDS + ty * 4);
        const float4 a1 = *reinterpret_cast<const float4*>(Tt + (c0 + c) * LDS + 64 + ty * 4);
        const float4 b0 = *reinterpret_cast<const float4*>(Bt + c * LDS + tx * 4);
        const float4 b1 = *reinterpret_cast<const float4*>(Bt + c * LDS + 64 + tx * 4);
        const float av[8] = {sc * a0.x, sc * a0.y, sc * a0.z, sc * a0.w, sc * a1.x, sc * a1.y, sc * a1.z, sc * a1.w};
        const float bv[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
        for (int i = 0; i < 8; ++i)
#pragma unroll
          for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
      }
      __syncthreads();
    }
  }

  const float alpha_f = p.has2 ? 1.0f : p.alpha;
  const int64_t coff = bz * p.e.sc;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int64_t m = m0 + (i < 4 ? ty * 4 + i : 64 + ty * 4 + i - 4);
#pragma unroll
    for (int j = 0; j < 8; j += 2) {
      const int64_t n = n0 + (j < 4 ? tx * 4 + j : 64 + tx * 4 + j - 4);
      epilogue2<TC>(p.e, M, N, coff, m, n, alpha_f * acc[i][j], alpha_f * acc[i][j + 1]);
    }
  }
}

// ------------------------------------------------------------------ host helpers
inline bool aligned16(const void* q) { return (reinterpret_cast<uintptr_t>(q) & 15u) == 0; }

// the device's opt-in shared memory per block (bytes)
int optin_smem();

// Launches Kernel over the tiles of p (batch in chunks of 65535 on grid z).
template <auto Kernel>
int launch_tiles(Params p, int64_t batch, int bm, int bn, int threads, int smem, const char* op) {
  const int64_t tiles_m = ceil_div(p.M, bm), tiles_n = ceil_div(p.N, bn);
  if (p.M > 0x3fffffffLL || p.N > 0x3fffffffLL || tiles_m * tiles_n > 0x7fffffffLL)
    return fail("%s: [%lld, %lld] output is too large", op, (long long)p.M, (long long)p.N);
  p.tiles_m = static_cast<int>(tiles_m);
  p.tiles_n = static_cast<int>(tiles_n);
  if (smem > 48 * 1024) {
    static int configured = 0;  // per kernel: its shared memory size never changes
    if (!configured) {
      const cudaError_t e = cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
      if (e != cudaSuccess) return fail("%s: %d bytes of shared memory: %s", op, smem, cudaGetErrorString(e));
      configured = 1;
    }
  }
  for (int64_t b0 = 0; b0 < batch; b0 += 65535) {
    const int64_t nb = batch - b0 < 65535 ? batch - b0 : 65535;
    p.batch0 = b0;
    Kernel<<<dim3(static_cast<unsigned>(tiles_m * tiles_n), 1, static_cast<unsigned>(nb)), threads, smem, stream()>>>(p);
    if (const int rc = launched(op)) return rc;
  }
  return 0;
}

}  // namespace gemm_detail
}  // namespace tkc
