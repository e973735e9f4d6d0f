// INT8 kernels: per-row absmax quantization and the int8 GEMM with int32
// accumulation and a dequantizing epilogue (the contracts of
// quantize_rows_int8 / int8_gemm in native/include/tunekit/backend.h).
//
// quantize_rows_int8 follows the CPU rule exactly (native/napi/ops_fused.cc,
// QuantizeInt8, and tests/ops/fused/reference.ts): amax = max |row|,
// scale = float32(amax / 127), q = round-half-to-even of the exact quotient
// x·127/amax. The exact quotient is decided in f32 first: t = x·RN(127/amax)
// differs from the quotient by at most 127·2^-23 < 1.6e-5, so when t is more
// than 1e-4 away from a half-integer, rint(t) is the answer; otherwise (rare,
// and every exact tie) the quotient is recomputed in f64, where x·127 is exact
// and the division correctly rounded (a correctly rounded quotient of f32
// operands lands on a half-integer only when it is one). A zero row gives
// scale 0 and q 0; a row holding NaN or ±inf gives scale NaN and q 0 (the CPU
// int8Linear activation rule; quantizeInt8 rejects such input before).
//
// int8_gemm: y[M, N] = (qx[M, K]·qw[N, K]ᵀ in i32)·sx[m]·sw[n] + bias[n] (+ y).
// Both operands are K-major, which is the row.col layout of
// mma.sync.m16n8k32.s8, so A and B tiles are loaded the same way:
//   global --cp.async 16 B (zero-fill past M, N, K)--> shared, 128 bytes of K
//   per tile row, the 16-byte chunk c of row r stored at chunk c ^ (r & 7)
//   (ldmatrix's 8 row addresses of one 8x8 matrix then hit 8 distinct bank
//   groups, and so do the cp.async writes) --ldmatrix.x4--> registers --mma.
// A multi-stage cp.async ring (one __syncthreads per 128-byte K tile) overlaps
// the loads with the MMAs; the fragments of the next k32 step are loaded
// while the current one multiplies. The epilogue converts the i32 sums, scales
// by sx[m]·sw[n], adds bias (and y) and stores straight from the registers.
// K % 16 != 0 (rows not 16-byte aligned) or misaligned operands take a simple
// dp4a kernel on shared-memory tiles instead.
#include <cfloat>
#include <cmath>

#include "common.cuh"
#include "int8.cuh"
#include "ops.h"

namespace tkc {
namespace {

// ------------------------------------------------------------------ quantize

__device__ __forceinline__ float abs_or_inf(float v) {
  float a = fabsf(v);
  return a <= FLT_MAX ? a : INFINITY;  // NaN and ±inf mark the row non-finite
}

// q of one element; m is the row's finite absmax > 0, inv = RN(127 / m),
// fast = inv is finite (m ≥ 1e-36).
__device__ __forceinline__ int quant_one(float v, float m, float inv, bool fast) {
  if (fast) {
    float t = __fmul_rn(v, inv);
    float r = rintf(t);
    if (fabsf(t - r) < 0.4999f) return static_cast<int>(fminf(fmaxf(r, -127.0f), 127.0f));
  }
  double r = rint(static_cast<double>(v) * 127.0 / static_cast<double>(m));
  r = fmin(fmax(r, -127.0), 127.0);
  return static_cast<int>(r);
}

template <class T, int VEC> struct VecIO;
template <> struct VecIO<float, 1> {
  static __device__ __forceinline__ void load(const float* p, float* v) { v[0] = p[0]; }
  static __device__ __forceinline__ void store(int8_t* q, const int* v) { q[0] = static_cast<int8_t>(v[0]); }
};
template <> struct VecIO<bf16, 1> {
  static __device__ __forceinline__ void load(const bf16* p, float* v) { v[0] = __bfloat162float(p[0]); }
  static __device__ __forceinline__ void store(int8_t* q, const int* v) { q[0] = static_cast<int8_t>(v[0]); }
};
template <> struct VecIO<float, 4> {
  static __device__ __forceinline__ void load(const float* p, float* v) {
    float4 f = __ldg(reinterpret_cast<const float4*>(p));
    v[0] = f.x, v[1] = f.y, v[2] = f.z, v[3] = f.w;
  }
  static __device__ __forceinline__ void store(int8_t* q, const int* v) {
    uint32_t w = (v[0] & 0xff) | ((v[1] & 0xff) << 8) | ((v[2] & 0xff) << 16) | (uint32_t(v[3] & 0xff) << 24);
    *reinterpret_cast<uint32_t*>(q) = w;
  }
};
template <> struct VecIO<bf16, 8> {
  static __device__ __forceinline__ void load(const bf16* p, float* v) {
    uint4 u = __ldg(reinterpret_cast<const uint4*>(p));
    const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      v[2 * i] = __uint_as_float(w[i] << 16);
      v[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    }
  }
  static __device__ __forceinline__ void store(int8_t* q, const int* v) {
    uint32_t lo = (v[0] & 0xff) | ((v[1] & 0xff) << 8) | ((v[2] & 0xff) << 16) | (uint32_t(v[3] & 0xff) << 24);
    uint32_t hi = (v[4] & 0xff) | ((v[5] & 0xff) << 8) | ((v[6] & 0xff) << 16) | (uint32_t(v[7] & 0xff) << 24);
    *reinterpret_cast<uint2*>(q) = make_uint2(lo, hi);
  }
};

// One block per row (grid-stride over rows): absmax, then quantize. VEC > 1
// needs cols % VEC == 0, x 16-byte aligned and q VEC-byte aligned.
template <class T, int VEC>
__global__ void __launch_bounds__(256) quantize_rows_kernel(const T* __restrict__ x, int64_t rows, int64_t cols,
                                                            int8_t* __restrict__ q, float* __restrict__ scale) {
  __shared__ float red[32];
  const int64_t nv = cols / VEC;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * cols;
    int8_t* qr = q + row * cols;
    float m = 0.0f;
    for (int64_t i = threadIdx.x; i < nv; i += blockDim.x) {
      float v[VEC];
      VecIO<T, VEC>::load(xr + i * VEC, v);
#pragma unroll
      for (int j = 0; j < VEC; ++j) m = fmaxf(m, abs_or_inf(v[j]));
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    if (lane == 0) red[warp] = m;
    __syncthreads();
    m = red[0];
    for (int w = 1; w < nwarps; ++w) m = fmaxf(m, red[w]);
    __syncthreads();  // red is reused by the next row
    const bool finite = m <= FLT_MAX;
    if (threadIdx.x == 0) scale[row] = finite ? m / 127.0f : NAN;
    const bool zero = !(m > 0.0f) || !finite;
    const bool fast = m >= 1e-36f;  // 127 / m finite
    const float inv = fast && !zero ? 127.0f / m : 0.0f;
    for (int64_t i = threadIdx.x; i < nv; i += blockDim.x) {
      int r[VEC];
      if (zero) {
#pragma unroll
        for (int j = 0; j < VEC; ++j) r[j] = 0;
      } else {
        float v[VEC];
        VecIO<T, VEC>::load(xr + i * VEC, v);
#pragma unroll
        for (int j = 0; j < VEC; ++j) r[j] = quant_one(v[j], m, inv, fast);
      }
      VecIO<T, VEC>::store(qr + i * VEC, r);
    }
  }
}

template <class T, int VEC>
void launch_quantize(const T* x, int64_t rows, int64_t cols, int8_t* q, float* scale) {
  int64_t per = ceil_div(ceil_div(cols, VEC), 4);  // at least 4 vectors a thread
  int threads = static_cast<int>(ceil_div(per < 32 ? 32 : per, 32) * 32);
  if (threads > 256) threads = 256;
  unsigned grid = static_cast<unsigned>(rows < 0x7fffffff ? rows : 0x7fffffff);
  quantize_rows_kernel<T, VEC><<<grid, threads, 0, stream()>>>(x, rows, cols, q, scale);
}

// ------------------------------------------------------------------ PTX helpers

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
// 16 bytes global → shared; bytes = 0 writes 16 zero bytes and reads nothing
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, int bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void ldsm_x4(uint32_t addr, uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(addr));
}
// D += A·B: A 16x32 s8 (row), B 32x8 s8 (col), D 16x8 s32
__device__ __forceinline__ void mma_s8(int (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

__device__ __forceinline__ void store2(float* p, float a, float b) { *reinterpret_cast<float2*>(p) = make_float2(a, b); }
__device__ __forceinline__ void store2(bf16* p, float a, float b) {
  *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(a, b);
}
__device__ __forceinline__ float2 load2(const float* p) { return *reinterpret_cast<const float2*>(p); }
__device__ __forceinline__ float2 load2(const bf16* p) {
  return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p));
}

// ------------------------------------------------------------------ tensor-core GEMM

constexpr int kBK = 128;  // bytes (= int8 elements) of K per tile: one 128-byte shared row

template <int BM, int BN, int WARPS_M, int WARPS_N, int STAGES> struct TcCfg {
  static constexpr int kThreads = 32 * WARPS_M * WARPS_N;
  static constexpr int kWTM = BM / WARPS_M, kWTN = BN / WARPS_N;  // warp tile
  static constexpr int kMI = kWTM / 16, kNJ = kWTN / 8;           // mma tiles per warp
  static constexpr int kABytes = BM * kBK, kBBytes = BN * kBK;
  static constexpr int kStageBytes = kABytes + kBBytes;
  static constexpr int kSmem = STAGES * kStageBytes;
  static constexpr int kRowStep = kThreads / 8;  // tile rows covered by one pass of 16-byte chunks
  static constexpr int kAIters = BM / kRowStep, kBIters = BN / kRowStep;
  static_assert(kWTM % 16 == 0 && kWTN % 16 == 0, "warp tile");
  static_assert(BM % kRowStep == 0 && BN % kRowStep == 0 && kRowStep % 8 == 0, "loader");
  static_assert(STAGES >= 2, "stages");
};

template <class T, int BM, int BN, int WARPS_M, int WARPS_N, int STAGES>
__global__ void __launch_bounds__(32 * WARPS_M* WARPS_N, 1)
    int8_gemm_tc(const int8_t* __restrict__ qx, const float* __restrict__ sx, const int8_t* __restrict__ qw,
                 const float* __restrict__ sw, const T* __restrict__ bias, int M, int N, int K, T* __restrict__ y,
                 int accumulate, int vec2, int tiles_m, int tiles_n) {
  using C = TcCfg<BM, BN, WARPS_M, WARPS_N, STAGES>;
  extern __shared__ __align__(1024) uint8_t smem[];
  const uint32_t sbase = smem_u32(smem);

  // grouped rasterization: 8 row tiles share their column tiles in L2
  constexpr int kGroup = 8;
  const int pid = blockIdx.x;
  const int width = kGroup * tiles_n;
  const int first_m = (pid / width) * kGroup;
  const int gsz = min(tiles_m - first_m, kGroup);
  const int tm = first_m + (pid % width) % gsz;
  const int tn = (pid % width) / gsz;
  const int m0 = tm * BM, n0 = tn * BN;

  const int tid = threadIdx.x;
  const int lane = tid & 31, warp = tid >> 5;
  const int warp_m = warp % WARPS_M, warp_n = warp / WARPS_M;

  // ---- loader: thread tid copies chunk (tid & 7) of rows (tid >> 3) + i·kRowStep
  const int lrow = tid >> 3, lchunk = tid & 7;
  const uint32_t st_off = lrow * kBK + ((lchunk ^ (lrow & 7)) << 4);
  const int8_t* gA = qx + static_cast<int64_t>(m0 + lrow) * K + lchunk * 16;
  const int8_t* gB = qw + static_cast<int64_t>(n0 + lrow) * K + lchunk * 16;
  const int64_t rstep = static_cast<int64_t>(C::kRowStep) * K;
  const int ktiles = (K + kBK - 1) / kBK;

  auto load_tile = [&](int stage, int kt) {
    const int k = kt * kBK;
    const bool kok = k + lchunk * 16 < K;  // K % 16 == 0: a chunk is all in or all out
    const uint32_t sa = sbase + stage * C::kStageBytes + st_off;
#pragma unroll
    for (int i = 0; i < C::kAIters; ++i) {
      const bool ok = kok && m0 + lrow + i * C::kRowStep < M;
      cp_async16(sa + i * C::kRowStep * kBK, ok ? gA + i * rstep + k : qx, ok ? 16 : 0);
    }
    const uint32_t sb = sa + C::kABytes;
#pragma unroll
    for (int i = 0; i < C::kBIters; ++i) {
      const bool ok = kok && n0 + lrow + i * C::kRowStep < N;
      cp_async16(sb + i * C::kRowStep * kBK, ok ? gB + i * rstep + k : qw, ok ? 16 : 0);
    }
  };

  // ---- fragment addresses (see the swizzle above): A x4 = rows 0-15 × k 0-31 of an m16 tile,
  // B x4 = n rows 0-15 (two n8 tiles) × k 0-31
  const int x7 = lane & 7;
  const uint32_t a_row = (warp_m * C::kWTM + (lane & 15)) * kBK;
  const int a_hi = lane >> 4;
  const uint32_t b_row = (warp_n * C::kWTN + (lane & 7) + ((lane >> 4) << 3)) * kBK;
  const int b_hi = (lane >> 3) & 1;

  int acc[C::kMI][C::kNJ][4];
#pragma unroll
  for (int i = 0; i < C::kMI; ++i)
#pragma unroll
    for (int j = 0; j < C::kNJ; ++j)
#pragma unroll
      for (int r = 0; r < 4; ++r) acc[i][j][r] = 0;

  uint32_t af[2][C::kMI][4], bfr[2][C::kNJ][2];
  auto load_frags = [&](int buf, uint32_t sa, uint32_t sb, int ks) {
    const uint32_t ca = ((ks * 2 + a_hi) ^ x7) << 4;
    const uint32_t cb = ((ks * 2 + b_hi) ^ x7) << 4;
#pragma unroll
    for (int i = 0; i < C::kMI; ++i)
      ldsm_x4(sa + a_row + i * 16 * kBK + ca, af[buf][i][0], af[buf][i][1], af[buf][i][2], af[buf][i][3]);
#pragma unroll
    for (int p = 0; p < C::kNJ / 2; ++p)
      ldsm_x4(sb + b_row + p * 16 * kBK + cb, bfr[buf][2 * p][0], bfr[buf][2 * p][1], bfr[buf][2 * p + 1][0],
              bfr[buf][2 * p + 1][1]);
  };

  // ---- pipeline: tiles 0 .. STAGES-2 in flight before the loop
#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < ktiles) load_tile(s, s);
    cp_async_commit();
  }
  for (int kt = 0; kt < ktiles; ++kt) {
    cp_async_wait<STAGES - 2>();  // tile kt has landed (this thread's copies) ...
    __syncthreads();              // ... and everyone's; stage (kt-1) % STAGES is free
    {
      const int nk = kt + STAGES - 1;
      if (nk < ktiles) load_tile(nk % STAGES, nk);
      cp_async_commit();  // an empty group keeps the count
    }
    const uint32_t sa = sbase + (kt % STAGES) * C::kStageBytes;
    const uint32_t sb = sa + C::kABytes;
    load_frags(0, sa, sb, 0);
#pragma unroll
    for (int ks = 0; ks < kBK / 32; ++ks) {
      if (ks + 1 < kBK / 32) load_frags((ks + 1) & 1, sa, sb, ks + 1);
#pragma unroll
      for (int i = 0; i < C::kMI; ++i)
#pragma unroll
        for (int j = 0; j < C::kNJ; ++j) {
          // serpentine over j keeps one B fragment live across consecutive MMAs
          const int jj = (i & 1) ? C::kNJ - 1 - j : j;
          mma_s8(acc[i][jj], af[ks & 1][i], bfr[ks & 1][jj]);
        }
    }
  }
  cp_async_wait<0>();  // nothing real is left in flight; keep the exit clean

  // ---- epilogue: c0,c1 at (row g, cols 2t, 2t+1), c2,c3 at row g+8
  const int g = lane >> 2, t = lane & 3;
  const int row0 = m0 + warp_m * C::kWTM + g;
  const int col0 = n0 + warp_n * C::kWTN + 2 * t;
  float swv[C::kNJ][2], bv[C::kNJ][2];
#pragma unroll
  for (int j = 0; j < C::kNJ; ++j)
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int c = col0 + j * 8 + e;
      swv[j][e] = c < N ? __ldg(sw + c) : 0.0f;
      bv[j][e] = (bias != nullptr && c < N) ? to_f32<T>(bias[c]) : 0.0f;
    }
#pragma unroll
  for (int i = 0; i < C::kMI; ++i)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = row0 + i * 16 + h * 8;
      if (r >= M) continue;
      const float s = __ldg(sx + r);
      T* yr = y + static_cast<int64_t>(r) * N;
#pragma unroll
      for (int j = 0; j < C::kNJ; ++j) {
        const int c = col0 + j * 8;
        float v0 = static_cast<float>(acc[i][j][2 * h]) * s * swv[j][0] + bv[j][0];
        float v1 = static_cast<float>(acc[i][j][2 * h + 1]) * s * swv[j][1] + bv[j][1];
        if (vec2 && c + 1 < N) {
          if (accumulate) {
            const float2 o = load2(yr + c);
            v0 = o.x + v0;
            v1 = o.y + v1;
          }
          store2(yr + c, v0, v1);
        } else {
          if (c < N) yr[c] = from_f32<T>(accumulate ? to_f32<T>(yr[c]) + v0 : v0);
          if (c + 1 < N) yr[c + 1] = from_f32<T>(accumulate ? to_f32<T>(yr[c + 1]) + v1 : v1);
        }
      }
    }
}

template <class T, int BM, int BN, int WARPS_M, int WARPS_N, int STAGES>
int launch_tc(const int8_t* qx, const float* sx, const int8_t* qw, const float* sw, const T* bias, int64_t M,
              int64_t N, int64_t K, T* y, int accumulate) {
  using C = TcCfg<BM, BN, WARPS_M, WARPS_N, STAGES>;
  auto kernel = int8_gemm_tc<T, BM, BN, WARPS_M, WARPS_N, STAGES>;
  static const cudaError_t attr =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, C::kSmem);
  if (attr != cudaSuccess)
    return fail("int8_gemm: %d bytes of shared memory for the %dx%d tile: %s", C::kSmem, BM, BN,
                cudaGetErrorString(attr));
  const int64_t tiles_m = ceil_div(M, BM), tiles_n = ceil_div(N, BN);
  if (tiles_m * tiles_n > 0x7fffffffLL || M > 0x7fffffffLL || N > 0x7fffffffLL || K > 0x7fffffffLL)
    return fail("int8_gemm: [%lld, %lld] x [%lld] is too large", (long long)M, (long long)N, (long long)K);
  const int vec2 = (N % 2 == 0) && (reinterpret_cast<uintptr_t>(y) % (2 * sizeof(T)) == 0);
  kernel<<<static_cast<unsigned>(tiles_m * tiles_n), C::kThreads, C::kSmem, stream()>>>(
      qx, sx, qw, sw, bias, int(M), int(N), int(K), y, accumulate, vec2, int(tiles_m), int(tiles_n));
  return launched("int8_gemm");
}

// ------------------------------------------------------------------ simple GEMM (any K, any alignment)

constexpr int kSimpleTile = 64, kSimpleK = 32;

template <class T>
__global__ void __launch_bounds__(256) int8_gemm_simple(const int8_t* __restrict__ qx, const float* __restrict__ sx,
                                                        const int8_t* __restrict__ qw, const float* __restrict__ sw,
                                                        const T* __restrict__ bias, int64_t M, int64_t N, int64_t K,
                                                        T* __restrict__ y, int accumulate, int64_t tiles_n) {
  // 64 rows × 32 bytes of K per operand, one int (4 bytes of K) per entry, +1 against bank conflicts
  __shared__ int As[kSimpleTile][kSimpleK / 4 + 1];
  __shared__ int Bs[kSimpleTile][kSimpleK / 4 + 1];
  const int64_t m0 = (static_cast<int64_t>(blockIdx.x) / tiles_n) * kSimpleTile;
  const int64_t n0 = (static_cast<int64_t>(blockIdx.x) % tiles_n) * kSimpleTile;
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  int acc[4][4] = {};
  for (int64_t k0 = 0; k0 < K; k0 += kSimpleK) {
#pragma unroll
    for (int it = 0; it < kSimpleTile * kSimpleK / 256; ++it) {
      const int idx = tid + it * 256;
      const int r = idx / kSimpleK, c = idx % kSimpleK;
      const int64_t k = k0 + c;
      const int8_t a = (m0 + r < M && k < K) ? qx[(m0 + r) * K + k] : int8_t(0);
      const int8_t b = (n0 + r < N && k < K) ? qw[(n0 + r) * K + k] : int8_t(0);
      reinterpret_cast<int8_t*>(&As[r][0])[c] = a;
      reinterpret_cast<int8_t*>(&Bs[r][0])[c] = b;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kSimpleK / 4; ++kk) {
      int a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = As[ty + 16 * i][kk], b[i] = Bs[tx + 16 * i][kk];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = __dp4a(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t m = m0 + ty + 16 * i;
    if (m >= M) continue;
    const float s = sx[m];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t n = n0 + tx + 16 * j;
      if (n >= N) continue;
      float v = static_cast<float>(acc[i][j]) * s * sw[n] + (bias ? to_f32<T>(bias[n]) : 0.0f);
      T* p = y + m * N + n;
      *p = from_f32<T>(accumulate ? to_f32<T>(*p) + v : v);
    }
  }
}

template <class T>
int launch_simple(const int8_t* qx, const float* sx, const int8_t* qw, const float* sw, const T* bias, int64_t M,
                  int64_t N, int64_t K, T* y, int accumulate) {
  const int64_t tiles_n = ceil_div(N, kSimpleTile);
  const int64_t blocks = ceil_div(M, kSimpleTile) * tiles_n;
  if (blocks > 0x7fffffffLL) return fail("int8_gemm: [%lld, %lld] is too large", (long long)M, (long long)N);
  int8_gemm_simple<T><<<static_cast<unsigned>(blocks), 256, 0, stream()>>>(qx, sx, qw, sw, bias, M, N, K, y,
                                                                         accumulate, tiles_n);
  return launched("int8_gemm");
}

// ------------------------------------------------------------------ path choice

// Large: 128x256 tile, 8 warps of 64x64; Small: 64x128 tile, 4 warps of 32x64.
using LargeCfg4 = TcCfg<128, 256, 2, 4, 4>;
using LargeCfg3 = TcCfg<128, 256, 2, 4, 3>;
using SmallCfg = TcCfg<64, 128, 2, 2, 4>;

int optin_smem() {
  static const int v = [] {
    int dev = 0, bytes = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
    return bytes;
  }();
  return v;
}

bool tc_ok(const int8_t* qx, const int8_t* qw, int64_t K) {
  return K % 16 == 0 && reinterpret_cast<uintptr_t>(qx) % 16 == 0 && reinterpret_cast<uintptr_t>(qw) % 16 == 0;
}

template <class T>
int run_path(Int8Path path, const int8_t* qx, const float* sx, const int8_t* qw, const float* sw, const T* bias,
             int64_t M, int64_t N, int64_t K, T* y, int accumulate) {
  if (path != Int8Path::Simple && !tc_ok(qx, qw, K))
    return fail("int8_gemm: the tensor-core path needs K %% 16 == 0 and 16-byte aligned operands");
  const int smem = optin_smem();
  switch (path) {
    case Int8Path::Large:
      if (smem >= LargeCfg4::kSmem)
        return launch_tc<T, 128, 256, 2, 4, 4>(qx, sx, qw, sw, bias, M, N, K, y, accumulate);
      [[fallthrough]];
    case Int8Path::Large3:
      if (smem < LargeCfg3::kSmem) return fail("int8_gemm: %d bytes of shared memory per block, %d needed", smem, LargeCfg3::kSmem);
      return launch_tc<T, 128, 256, 2, 4, 3>(qx, sx, qw, sw, bias, M, N, K, y, accumulate);
    case Int8Path::Small:
      if (smem < SmallCfg::kSmem) return fail("int8_gemm: %d bytes of shared memory per block, %d needed", smem, SmallCfg::kSmem);
      return launch_tc<T, 64, 128, 2, 2, 4>(qx, sx, qw, sw, bias, M, N, K, y, accumulate);
    case Int8Path::Simple:
      return launch_simple<T>(qx, sx, qw, sw, bias, M, N, K, y, accumulate);
    default:
      return fail("int8_gemm: unknown path %d", int(path));
  }
}

}  // namespace

Int8Path int8_gemm_pick(const int8_t* qx, const int8_t* qw, int64_t M, int64_t N, int64_t K) {
  if (!tc_ok(qx, qw, K)) return Int8Path::Simple;
  const int smem = optin_smem();
  const bool large = smem >= LargeCfg3::kSmem, small = smem >= SmallCfg::kSmem;
  if (!small) return Int8Path::Simple;
  // the large tile once it fills the device at least once; the small one below
  if (large && ceil_div(M, 128) * ceil_div(N, 256) >= sm_count()) return Int8Path::Large;
  return Int8Path::Small;
}

int int8_gemm_path(Int8Path path, tk_dtype dt, const int8_t* qx, const float* sx, const int8_t* qw, const float* sw,
                   const void* bias, int64_t M, int64_t N, int64_t K, void* y, int accumulate) {
  if (dt != TK_F32 && dt != TK_BF16) return fail("int8_gemm: dtype %d is not supported on CUDA (f32 or bf16)", int(dt));
  if (M <= 0 || N <= 0) return 0;
  if (path == Int8Path::Auto) path = int8_gemm_pick(qx, qw, M, N, K);
  TK_DISPATCH_FLOAT("int8_gemm", dt, {
    return run_path<T>(path, qx, sx, qw, sw, static_cast<const T*>(bias), M, N, K, static_cast<T*>(y),
                       accumulate ? 1 : 0);
  });
  return 0;
}

int int8_gemm(tk_dtype dt, const int8_t* qx, const float* sx, const int8_t* qw, const float* sw, const void* bias,
              int64_t M, int64_t N, int64_t K, void* y, int accumulate) {
  return int8_gemm_path(Int8Path::Auto, dt, qx, sx, qw, sw, bias, M, N, K, y, accumulate);
}

int quantize_rows_int8(tk_dtype dt, const void* x, int64_t rows, int64_t cols, int8_t* q, float* scale) {
  if (dt != TK_F32 && dt != TK_BF16)
    return fail("quantize_rows_int8: dtype %d is not supported on CUDA (f32 or bf16)", int(dt));
  if (rows <= 0) return 0;
  if (cols <= 0) return fill(scale, TK_F32, rows, 0.0);  // empty rows: amax 0, scale 0
  TK_DISPATCH_FLOAT("quantize_rows_int8", dt, {
    constexpr int kVec = sizeof(T) == 4 ? 4 : 8;
    const bool vec = cols % kVec == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
                     reinterpret_cast<uintptr_t>(q) % kVec == 0;
    if (vec)
      launch_quantize<T, kVec>(static_cast<const T*>(x), rows, cols, q, scale);
    else
      launch_quantize<T, 1>(static_cast<const T*>(x), rows, cols, q, scale);
  });
  return launched("quantize_rows_int8");
}

}  // namespace tkc
