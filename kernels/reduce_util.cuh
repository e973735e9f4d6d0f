// Small device helpers shared by the elementwise, reduction, loss and norm
// kernels: warp and block reductions of plain values and pairs, the row-group
// abstraction (one warp or one block per row), 16-byte packs, and the host-side
// plan of an N-d strided index space with its dimensions merged.
#pragma once
#include <cstdint>

#include "common.cuh"

namespace tkc {

constexpr int kWarp = 32;
constexpr unsigned kFullMask = 0xffffffffu;

// ---------------------------------------------------------------- value types of reductions
// The maximum and the index of its first occurrence; NaN wins (its first index).
struct MaxIdx {
  float v;
  int64_t i;
};
// Online log-sum-exp state: the running maximum m and sum s = Σ exp(x − m).
struct SoftAcc {
  float m, s;
};

// (shuffles of each value type, member by member)
__device__ __forceinline__ float shfl_down(float v, int d) { return __shfl_down_sync(kFullMask, v, d); }
__device__ __forceinline__ double shfl_down(double v, int d) { return __shfl_down_sync(kFullMask, v, d); }
__device__ __forceinline__ float2 shfl_down(float2 v, int d) {
  return make_float2(__shfl_down_sync(kFullMask, v.x, d), __shfl_down_sync(kFullMask, v.y, d));
}
__device__ __forceinline__ MaxIdx shfl_down(MaxIdx v, int d) {
  return MaxIdx{__shfl_down_sync(kFullMask, v.v, d), __shfl_down_sync(kFullMask, v.i, d)};
}
__device__ __forceinline__ SoftAcc shfl_down(SoftAcc v, int d) {
  return SoftAcc{__shfl_down_sync(kFullMask, v.m, d), __shfl_down_sync(kFullMask, v.s, d)};
}
__device__ __forceinline__ float shfl_idx(float v, int src) { return __shfl_sync(kFullMask, v, src); }
__device__ __forceinline__ double shfl_idx(double v, int src) { return __shfl_sync(kFullMask, v, src); }
__device__ __forceinline__ float2 shfl_idx(float2 v, int src) {
  return make_float2(__shfl_sync(kFullMask, v.x, src), __shfl_sync(kFullMask, v.y, src));
}
__device__ __forceinline__ MaxIdx shfl_idx(MaxIdx v, int src) {
  return MaxIdx{__shfl_sync(kFullMask, v.v, src), __shfl_sync(kFullMask, v.i, src)};
}
__device__ __forceinline__ SoftAcc shfl_idx(SoftAcc v, int src) {
  return SoftAcc{__shfl_sync(kFullMask, v.m, src), __shfl_sync(kFullMask, v.s, src)};
}

// ---------------------------------------------------------------- combining rules
struct SumOp {
  template <class V> __device__ __forceinline__ V operator()(V a, V b) const { return a + b; }
  __device__ __forceinline__ float2 operator()(float2 a, float2 b) const { return make_float2(a.x + b.x, a.y + b.y); }
};
struct MaxOp {  // plain maximum (NaN ignored, as fmaxf)
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
// The first index of the maximum; a NaN beats every number (the first NaN wins),
// as the CPU's reduce_axis. Associative and commutative: any tree gives the same.
struct MaxIdxOp {
  __device__ __forceinline__ MaxIdx operator()(MaxIdx a, MaxIdx b) const {
    const bool an = a.v != a.v, bn = b.v != b.v;
    if (an || bn) {
      if (an && bn) return a.i <= b.i ? a : b;
      return an ? a : b;
    }
    if (a.v > b.v) return a;
    if (b.v > a.v) return b;
    return a.i <= b.i ? a : b;
  }
};
__device__ __forceinline__ MaxIdx max_idx_identity() { return MaxIdx{-INFINITY, INT64_MAX}; }

// Online log-sum-exp: add one value. -inf adds nothing (and never produces
// exp(-inf + inf)); NaN poisons s; +inf becomes the maximum with s = 1 and is
// turned into s = NaN by soft_finish, as a two-pass exp(x − max) would.
__device__ __forceinline__ void soft_add(SoftAcc& a, float x) {
  if (x > a.m) {
    a.s = a.s * expf(a.m - x) + 1.0f;  // a.m = -inf: exp(-inf) = 0
    a.m = x;
  } else if (x != -INFINITY) {
    a.s += expf(x - a.m);  // NaN x: NaN
  }
}
struct SoftOp {
  __device__ __forceinline__ SoftAcc operator()(SoftAcc a, SoftAcc b) const {
    const float m = fmaxf(a.m, b.m);
    if (m == -INFINITY) return SoftAcc{m, a.s + b.s};
    // a.m = -inf: a.s = 0 and exp(-inf) = 0; m = +inf from both: exp(NaN), the two-pass NaN
    const float sa = a.m == -INFINITY ? 0.0f : a.s * expf(a.m - m);
    const float sb = b.m == -INFINITY ? 0.0f : b.s * expf(b.m - m);
    return SoftAcc{m, sa + sb};
  }
};
__device__ __forceinline__ SoftAcc soft_identity() { return SoftAcc{-INFINITY, 0.0f}; }
// The row maximum to subtract, as the CPU: an all -inf row (or an empty one)
// uses 0 (then every exp is 0 and the sum 0); a +inf maximum makes the sum NaN
// (the CPU's exp(inf − inf) term).
__device__ __forceinline__ SoftAcc soft_finish(SoftAcc a) {
  if (a.m == -INFINITY) return SoftAcc{0.0f, a.s};
  if (a.m == INFINITY) return SoftAcc{a.m, NAN};
  return a;
}

// ---------------------------------------------------------------- warp and block reductions
// Tree over the warp (shfl_down): lane 0 holds the result. Every lane must call.
template <class V, class F>
__device__ __forceinline__ V warp_reduce(V v, F f) {
#pragma unroll
  for (int d = kWarp / 2; d > 0; d >>= 1) v = f(v, shfl_down(v, d));
  return v;
}
// The same, then lane 0's result handed to every lane (so that every lane
// holds the same bits: no lane-dependent rounding).
template <class V, class F>
__device__ __forceinline__ V warp_allreduce(V v, F f) {
  return shfl_idx(warp_reduce(v, f), 0);
}
// Over a 1-d block whose size is a multiple of 32 (at most 1024); every thread
// must call and every thread gets the result. The slot of the result is apart
// from the warp slots, so that back-to-back calls need no third barrier.
template <class V, class F>
__device__ __forceinline__ V block_allreduce(V v, F f, V identity) {
  __shared__ V buf[kWarp + 1];
  const int lane = threadIdx.x & (kWarp - 1), w = threadIdx.x / kWarp, nw = blockDim.x / kWarp;
  v = warp_reduce(v, f);
  if (lane == 0) buf[w] = v;
  __syncthreads();
  if (w == 0) {
    V t = lane < nw ? buf[lane] : identity;
    t = warp_reduce(t, f);
    if (lane == 0) buf[kWarp] = t;
  }
  __syncthreads();
  return buf[kWarp];
}

// One row per warp (WARP, rows of up to ~1024 elements: 8 rows per 256-thread
// block) or one row per block. Loop: for (r = g.first; r < rows; r += g.step),
// elements j = g.tid, g.tid + g.size, ...; g.reduce is uniform over the group.
template <bool WARP>
struct RowGroup {
  int64_t first, step;
  int tid, size;
  __device__ __forceinline__ RowGroup() {
    if (WARP) {
      const int wpb = blockDim.x / kWarp;
      first = int64_t(blockIdx.x) * wpb + threadIdx.x / kWarp;
      step = int64_t(gridDim.x) * wpb;
      tid = threadIdx.x & (kWarp - 1);
      size = kWarp;
    } else {
      first = blockIdx.x;
      step = gridDim.x;
      tid = threadIdx.x;
      size = blockDim.x;
    }
  }
  template <class V, class F>
  __device__ __forceinline__ V reduce(V v, F f, V identity) const {
    if constexpr (WARP) {
      (void)identity;
      return warp_allreduce(v, f);
    } else {
      return block_allreduce(v, f, identity);
    }
  }
};
constexpr int kRowThreads = 256;        // threads of a row-group block
constexpr int64_t kWarpRowMax = 1024;   // rows up to this length: one warp each
// grid for `rows` rows in the given mode, 256 threads per block
inline unsigned row_grid(int64_t rows, bool warp) {
  return grid_for(warp ? ceil_div(rows, kRowThreads / kWarp) : rows, 1);
}

// q = a / b, r = a % b for a >= 0, b > 0: a 32-bit divide when both fit
__device__ __forceinline__ void divmod(int64_t a, int64_t b, int64_t& q, int64_t& r) {
  if (((static_cast<uint64_t>(a) | static_cast<uint64_t>(b)) >> 32) == 0)
    q = static_cast<uint32_t>(a) / static_cast<uint32_t>(b);
  else
    q = a / b;
  r = a - q * b;
}

// Σ load(j) over j = j0, j0 + step, ... < j1: runs of up to 32 terms summed in
// float, the runs added in double (the error of one short float sum whatever
// the count; one f64 add per 32 terms, cheap even where f64 is slow)
template <class L>
__device__ __forceinline__ double strided_sum(int64_t j0, int64_t j1, int64_t step, L load) {
  double acc = 0.0;
  int64_t j = j0;
  while (j < j1) {
    float run = 0.0f;
    for (int k = 0; k < 32 && j < j1; ++k, j += step) run += load(j);
    acc += run;
  }
  return acc;
}

// ---------------------------------------------------------------- 16-byte packs
template <class T>
struct alignas(16) Pack {
  static constexpr int N = 16 / sizeof(T);
  T v[N];
};
inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// ---------------------------------------------------------------- N-d strided index spaces
// An index space of up to TK_MAX_DIMS dimensions and the strides (in elements)
// of up to 4 operands over it, with dimensions of size 1 dropped and adjacent
// dimensions merged where every operand allows: a contiguous tensor becomes
// one dimension of stride 1. Element i (row-major over size[]) sits at
// Σ c_k · st[op][k] in operand op.
constexpr int kMaxOperands = 4;
struct NdPlan {
  int nd;
  int64_t numel;
  int64_t size[TK_MAX_DIMS];
  int64_t st[kMaxOperands][TK_MAX_DIMS];
};

// strides[op] NULL: that operand is contiguous over `sizes`.
inline NdPlan make_nd_plan(int ndim, const int64_t* sizes, int nops, const int64_t* const* strides) {
  NdPlan p{};
  p.numel = 1;
  for (int k = 0; k < ndim; ++k) p.numel *= sizes[k];
  int64_t contig[TK_MAX_DIMS];  // row-major strides of a contiguous operand
  int64_t run = 1;
  for (int k = ndim - 1; k >= 0; --k) {
    contig[k] = run;
    run *= sizes[k];
  }
  p.nd = 0;
  for (int k = 0; k < ndim; ++k) {
    if (sizes[k] == 1) continue;  // no index moves along it: its strides do not matter
    int64_t s[kMaxOperands];
    for (int op = 0; op < nops; ++op) s[op] = strides[op] ? strides[op][k] : contig[k];
    if (p.nd > 0) {
      bool merge = true;  // the previous (outer) dimension steps over a whole run of this one
      for (int op = 0; op < nops; ++op) merge = merge && p.st[op][p.nd - 1] == s[op] * sizes[k];
      if (merge) {
        p.size[p.nd - 1] *= sizes[k];
        for (int op = 0; op < nops; ++op) p.st[op][p.nd - 1] = s[op];
        continue;
      }
    }
    p.size[p.nd] = sizes[k];
    for (int op = 0; op < nops; ++op) p.st[op][p.nd] = s[op];
    ++p.nd;
  }
  if (p.nd == 0) {  // a single element (or every size 1)
    p.nd = 1;
    p.size[0] = 1;
    for (int op = 0; op < nops; ++op) p.st[op][0] = 0;
  }
  return p;
}

// offsets of element i in the first NOPS operands of the plan
template <int NOPS>
__device__ __forceinline__ void nd_offsets(const NdPlan& p, int64_t i, int64_t (&off)[NOPS]) {
#pragma unroll
  for (int op = 0; op < NOPS; ++op) off[op] = 0;
  for (int k = p.nd - 1; k > 0; --k) {
    const int64_t s = p.size[k];
    int64_t q;
    if (((static_cast<uint64_t>(i) | static_cast<uint64_t>(s)) >> 32) == 0)
      q = static_cast<uint32_t>(i) / static_cast<uint32_t>(s);  // the common case: a 32-bit divide
    else
      q = i / s;
    const int64_t c = i - q * s;
    i = q;
#pragma unroll
    for (int op = 0; op < NOPS; ++op) off[op] += c * p.st[op][k];
  }
#pragma unroll
  for (int op = 0; op < NOPS; ++op) off[op] += i * p.st[op][0];
}

// ---------------------------------------------------------------- activation math
// The formulas of the CPU's vecmath.inc (native/cpu), evaluated with CUDA's
// expf / erff / tanhf instead of the CPU's polynomials (same special values:
// exp overflows to +inf and underflows to 0, NaN propagates). Shared by the
// unary ops and any GEMM epilogue, so that both compute the same function.
//
// GELU, tanh approximation: 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3),
// evaluated as x · sigmoid(2u) = x / (1 + exp(−2u)) as the CPU (no cancellation
// of 1 + tanh(u) for x << 0).
constexpr float kGeluC = 0.7978845608028654f;
__device__ __forceinline__ float act_gelu(float x) {
  const float u = kGeluC * (x + 0.044715f * x * x * x);
  return x / (1.0f + expf(-2.0f * u));
}
// d/dx = s + 2 x s (1 − s) du/dx with s = sigmoid(2u), 1 − s = e s (e = exp(−2u)),
// 1 − s = 1 when e overflows; a saturated s (s (1 − s) = 0) gives s alone (vgelu_grad)
__device__ __forceinline__ float act_gelu_grad(float x) {
  const float u = kGeluC * (x + 0.044715f * x * x * x);
  const float e = expf(-2.0f * u);
  const float s = 1.0f / (1.0f + e);
  const float oms = e < INFINITY ? e * s : 1.0f;
  const float du = kGeluC * (1.0f + 3.0f * 0.044715f * x * x);
  const float sd = s * oms;
  return sd == 0.0f ? s : s + 2.0f * x * sd * du;
}
// exact GELU: x Φ(x) = 0.5 x (1 + erf(x / sqrt 2)) (the CPU uses an A&S erf, |err| < 1.5e-7)
__device__ __forceinline__ float act_gelu_erf(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }
__device__ __forceinline__ float act_gelu_erf_grad(float x) {
  return 0.5f * (1.0f + erff(x * 0.70710678118654752f)) + x * 0.3989422804014327f * expf(-0.5f * x * x);
}
__device__ __forceinline__ float act_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
__device__ __forceinline__ float act_silu(float x) { return x * act_sigmoid(x); }
// relu keeps NaN (x > 0 is false for NaN, and NaN is passed through), as the CPU
__device__ __forceinline__ float act_relu(float x) { return x > 0.0f ? x : (x != x ? x : 0.0f); }

}  // namespace tkc
