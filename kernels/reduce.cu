// Reductions over the middle axis of x viewed as [outer, n, inner] (sum, mean,
// max with the first index), the backward of max, softmax / logSoftmax forward
// and backward over the middle axis, and the sum of squares (gradient norm).
//
// Sums: each thread adds float runs of 32 terms into a double (strided_sum),
// threads and blocks combine in double; the CPU sums float blocks of 1024 into
// double, so both stay within a few float ulps of the exact sum whatever n is.
// Max: NaN wins (its first index), otherwise the first index of the maximum,
// as the CPU; every combination goes through MaxIdxOp, so the result does not
// depend on the launch shape.
#include "common.cuh"
#include "ops.h"
#include "reduce_util.cuh"

namespace tkc {
namespace {

constexpr int kThreads = 256;
constexpr int kColX = 32, kColY = 8;  // column kernels: 32 columns x 8 rows of threads

__device__ __forceinline__ float finish_sum(double s, int64_t n, bool mean) {
  return static_cast<float>(mean ? s / static_cast<double>(n) : s);
}
__device__ __forceinline__ int32_t finish_idx(const MaxIdx& m) {
  return static_cast<int32_t>(m.i == INT64_MAX ? 0 : m.i);  // (an empty axis: index 0)
}

// ---------------------------------------------------------------- reduce_axis, inner == 1
// x [outer, n], one warp per row (n ≤ kWarpRowMax); y, idx [outer]
template <class T, bool MAX>
__global__ void row_reduce_warp(const T* __restrict__ x, int64_t outer, int64_t n, bool mean, T* __restrict__ y,
                                int32_t* __restrict__ idx) {
  const RowGroup<true> g;
  for (int64_t r = g.first; r < outer; r += g.step) {
    const T* xr = x + r * n;
    if constexpr (MAX) {
      MaxIdx m = max_idx_identity();
      for (int64_t j = g.tid; j < n; j += g.size) m = MaxIdxOp{}(m, MaxIdx{to_f32<T>(xr[j]), j});
      m = warp_reduce(m, MaxIdxOp{});
      if (g.tid == 0) {
        y[r] = from_f32<T>(m.v);
        if (idx) idx[r] = finish_idx(m);
      }
    } else {
      double s = strided_sum(g.tid, n, g.size, [&](int64_t j) { return to_f32<T>(xr[j]); });
      s = warp_reduce(s, SumOp{});
      if (g.tid == 0) y[r] = from_f32<T>(finish_sum(s, n, mean));
    }
  }
}

// x [outer, n]: work item it = (row r, segment s) of `splits` segments of
// `seg` elements, one block each. splits == 1: y / idx directly; otherwise the
// partial goes to part[s · outer + r] (finished by reduce_finish).
template <class T, bool MAX>
__global__ void row_reduce_block(const T* __restrict__ x, int64_t outer, int64_t n, int64_t splits, int64_t seg,
                                 bool mean, T* __restrict__ y, int32_t* __restrict__ idx, double* __restrict__ part_s,
                                 MaxIdx* __restrict__ part_m) {
  for (int64_t it = blockIdx.x; it < outer * splits; it += gridDim.x) {
    const int64_t r = it / splits, s = it % splits;
    const int64_t j0 = s * seg, j1 = j0 + seg < n ? j0 + seg : n;
    const T* xr = x + r * n;
    if constexpr (MAX) {
      MaxIdx m = max_idx_identity();
      for (int64_t j = j0 + threadIdx.x; j < j1; j += blockDim.x) m = MaxIdxOp{}(m, MaxIdx{to_f32<T>(xr[j]), j});
      m = block_allreduce(m, MaxIdxOp{}, max_idx_identity());
      if (threadIdx.x == 0) {
        if (splits == 1) {
          y[r] = from_f32<T>(m.v);
          if (idx) idx[r] = finish_idx(m);
        } else {
          part_m[s * outer + r] = m;
        }
      }
    } else {
      double sum = strided_sum(j0 + threadIdx.x, j1, blockDim.x, [&](int64_t j) { return to_f32<T>(xr[j]); });
      sum = block_allreduce(sum, SumOp{}, 0.0);
      if (threadIdx.x == 0) {
        if (splits == 1) y[r] = from_f32<T>(finish_sum(sum, n, mean));
        else part_s[s * outer + r] = sum;
      }
    }
  }
}

// ---------------------------------------------------------------- reduce_axis, inner > 1
// x [outer, n, inner], block (32, 8): threadIdx.x along inner (coalesced),
// threadIdx.y along n. Work item = (o, tile of 32 columns, segment s of the
// axis); the 8 row-threads combine in shared memory in a fixed order. Output
// index out = o · inner + i; partials at part[s · outer · inner + out].
template <class T, bool MAX>
__global__ void col_reduce(const T* __restrict__ x, int64_t outer, int64_t n, int64_t inner, int64_t splits,
                           int64_t seg, bool mean, T* __restrict__ y, int32_t* __restrict__ idx,
                           double* __restrict__ part_s, MaxIdx* __restrict__ part_m) {
  __shared__ double sh_s[kColY][kColX];
  __shared__ MaxIdx sh_m[kColY][kColX];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t tiles = (inner + kColX - 1) / kColX, outputs = outer * inner;
  for (int64_t it = blockIdx.x; it < outer * tiles * splits; it += gridDim.x) {
    const int64_t s = it % splits, t = it / splits, o = t / tiles, i = (t % tiles) * kColX + tx;
    const int64_t j0 = s * seg, j1 = j0 + seg < n ? j0 + seg : n;
    const bool ok = i < inner;
    const T* base = x + o * n * inner + i;
    if constexpr (MAX) {
      MaxIdx m = max_idx_identity();
      if (ok)
        for (int64_t j = j0 + ty; j < j1; j += kColY) m = MaxIdxOp{}(m, MaxIdx{to_f32<T>(base[j * inner]), j});
      sh_m[ty][tx] = m;
      __syncthreads();
      if (ty == 0 && ok) {
        for (int k = 1; k < kColY; ++k) m = MaxIdxOp{}(m, sh_m[k][tx]);
        const int64_t out = o * inner + i;
        if (splits == 1) {
          y[out] = from_f32<T>(m.v);
          if (idx) idx[out] = finish_idx(m);
        } else {
          part_m[s * outputs + out] = m;
        }
      }
    } else {
      double sum = ok ? strided_sum(j0 + ty, j1, kColY, [&](int64_t j) { return to_f32<T>(base[j * inner]); }) : 0.0;
      sh_s[ty][tx] = sum;
      __syncthreads();
      if (ty == 0 && ok) {
        for (int k = 1; k < kColY; ++k) sum += sh_s[k][tx];
        const int64_t out = o * inner + i;
        if (splits == 1) y[out] = from_f32<T>(finish_sum(sum, n, mean));
        else part_s[s * outputs + out] = sum;
      }
    }
    __syncthreads();  // the shared slots are rewritten by the next item
  }
}

// y, idx [outputs] from part [splits, outputs], splits in order
template <class T, bool MAX>
__global__ void reduce_finish(int64_t outputs, int64_t splits, int64_t n, bool mean, const double* __restrict__ part_s,
                              const MaxIdx* __restrict__ part_m, T* __restrict__ y, int32_t* __restrict__ idx) {
  for (int64_t out = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; out < outputs;
       out += int64_t(gridDim.x) * blockDim.x) {
    if constexpr (MAX) {
      MaxIdx m = part_m[out];
      for (int64_t s = 1; s < splits; ++s) m = MaxIdxOp{}(m, part_m[s * outputs + out]);
      y[out] = from_f32<T>(m.v);
      if (idx) idx[out] = finish_idx(m);
    } else {
      double sum = 0.0;
      for (int64_t s = 0; s < splits; ++s) sum += part_s[s * outputs + out];
      y[out] = from_f32<T>(finish_sum(sum, n, mean));
    }
  }
}

// blocks that fill the device once (8 blocks of 256 threads per SM)
inline int64_t wave_blocks() { return int64_t(sm_count() > 0 ? sm_count() : 1) * 8; }

template <class T, bool MAX>
int reduce_impl(const T* x, int64_t outer, int64_t n, int64_t inner, bool mean, T* y, int32_t* idx) {
  const int64_t outputs = outer * inner, target = wave_blocks();
  if (inner == 1 && n <= kWarpRowMax) {
    row_reduce_warp<T, MAX><<<row_grid(outer, true), kRowThreads, 0, stream()>>>(x, outer, n, mean, y, idx);
    return launched("reduce_axis");
  }
  // segments of the axis: more blocks only while the device is not full, each
  // segment long enough (≥ 4096 elements of a row, ≥ 64 rows of a column tile)
  const int64_t items = inner == 1 ? outer : outer * ceil_div(inner, kColX);
  const int64_t min_seg = inner == 1 ? 4096 : 64;
  int64_t splits = 1;
  if (items < target && n > min_seg) {
    splits = ceil_div(target, items);
    const int64_t most = ceil_div(n, min_seg);
    splits = splits < most ? splits : most;
  }
  const int64_t seg = n > 0 ? ceil_div(n, splits) : 1;
  if (n > 0) splits = ceil_div(n, seg);  // no empty segment
  double* part_s = nullptr;
  MaxIdx* part_m = nullptr;
  if (splits > 1) {
    void* p = scratch_alloc(size_t(splits) * size_t(outputs) * (MAX ? sizeof(MaxIdx) : sizeof(double)));
    if (!p) return -1;  // the allocator wrote "CUDA out of memory: ..."
    if (MAX) part_m = static_cast<MaxIdx*>(p);
    else part_s = static_cast<double*>(p);
  }
  if (inner == 1)
    row_reduce_block<T, MAX><<<grid_for(outer * splits, 1), kThreads, 0, stream()>>>(x, outer, n, splits, seg, mean, y,
                                                                                     idx, part_s, part_m);
  else
    col_reduce<T, MAX><<<grid_for(items * splits, 1), dim3(kColX, kColY), 0, stream()>>>(
        x, outer, n, inner, splits, seg, mean, y, idx, part_s, part_m);
  int rc = launched("reduce_axis");
  if (rc == 0 && splits > 1) {
    reduce_finish<T, MAX><<<grid_for(outputs, kThreads), kThreads, 0, stream()>>>(outputs, splits, n, mean, part_s,
                                                                                   part_m, y, idx);
    rc = launched("reduce_axis");
  }
  if (splits > 1) scratch_free(part_s ? static_cast<void*>(part_s) : static_cast<void*>(part_m));
  return rc;
}

// ---------------------------------------------------------------- max_backward
// gx [outer, n, inner] = gy[o, i] where j == idx[o, i], else 0 (one pass, no memset)
template <class T>
__global__ void max_backward_kernel(const T* __restrict__ gy, const int32_t* __restrict__ idx, int64_t outer,
                                    int64_t n, int64_t inner, T* __restrict__ gx) {
  const int64_t total = outer * n * inner;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    int64_t row, i, o, j;
    divmod(e, inner, row, i);
    divmod(row, n, o, j);
    const int64_t k = o * inner + i;
    gx[e] = idx[k] == j ? gy[k] : from_f32<T>(0.0f);
  }
}

// ---------------------------------------------------------------- softmax
// x, y [rows, n] (inner == 1), one warp or block per row: online max / sum of
// exp in one pass, then the outputs, as the CPU's row path:
//   softmax:    y = exp(x − m) · (1 / Σ exp(x − m))
//   logSoftmax: y = x − (m + log Σ exp(x − m))
// with m = 0 for an all -inf row (whose outputs are then NaN, as on the CPU).
template <class T, bool WARP>
__global__ void softmax_rows(const T* __restrict__ x, T* __restrict__ y, int64_t rows, int64_t n, bool log) {
  const RowGroup<WARP> g;
  for (int64_t r = g.first; r < rows; r += g.step) {
    const T* xr = x + r * n;
    T* yr = y + r * n;
    SoftAcc a = soft_identity();
    for (int64_t j = g.tid; j < n; j += g.size) soft_add(a, to_f32<T>(xr[j]));
    a = soft_finish(g.reduce(a, SoftOp{}, soft_identity()));
    if (log) {
      const float lse = a.m + logf(a.s);
      for (int64_t j = g.tid; j < n; j += g.size) yr[j] = from_f32<T>(to_f32<T>(xr[j]) - lse);
    } else {
      const float inv = 1.0f / a.s;
      for (int64_t j = g.tid; j < n; j += g.size) yr[j] = from_f32<T>(expf(to_f32<T>(xr[j]) - a.m) * inv);
    }
  }
}

// x, y [outer, n, inner] (inner > 1): one thread per column (o, i), as the
// CPU's strided path: y = exp(x − m) / Σ or (x − m) − log Σ
template <class T>
__global__ void softmax_cols(const T* __restrict__ x, T* __restrict__ y, int64_t outer, int64_t n, int64_t inner,
                             bool log) {
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < outer * inner;
       c += int64_t(gridDim.x) * blockDim.x) {
    int64_t o, i;
    divmod(c, inner, o, i);
    const T* xb = x + o * n * inner + i;
    T* yb = y + o * n * inner + i;
    SoftAcc a = soft_identity();
    for (int64_t j = 0; j < n; ++j) soft_add(a, to_f32<T>(xb[j * inner]));
    a = soft_finish(a);
    const float ls = logf(a.s);
    for (int64_t j = 0; j < n; ++j) {
      const float v = to_f32<T>(xb[j * inner]) - a.m;
      yb[j * inner] = from_f32<T>(log ? v - ls : expf(v) / a.s);
    }
  }
}

// softmax:    gx = y · (gy − Σ gy · y)
// logSoftmax: gx = gy − exp(y) · Σ gy
template <class T, bool WARP>
__global__ void softmax_back_rows(const T* __restrict__ y, const T* __restrict__ gy, T* __restrict__ gx, int64_t rows,
                                  int64_t n, bool log) {
  const RowGroup<WARP> g;
  for (int64_t r = g.first; r < rows; r += g.step) {
    const T* yr = y + r * n;
    const T* gr = gy + r * n;
    T* xr = gx + r * n;
    float s = 0.0f;
    if (log)
      for (int64_t j = g.tid; j < n; j += g.size) s += to_f32<T>(gr[j]);
    else
      for (int64_t j = g.tid; j < n; j += g.size) s += to_f32<T>(gr[j]) * to_f32<T>(yr[j]);
    s = g.reduce(s, SumOp{}, 0.0f);
    for (int64_t j = g.tid; j < n; j += g.size) {
      const float yv = to_f32<T>(yr[j]), gv = to_f32<T>(gr[j]);
      xr[j] = from_f32<T>(log ? gv - expf(yv) * s : yv * (gv - s));
    }
  }
}

template <class T>
__global__ void softmax_back_cols(const T* __restrict__ y, const T* __restrict__ gy, T* __restrict__ gx, int64_t outer,
                                  int64_t n, int64_t inner, bool log) {
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < outer * inner;
       c += int64_t(gridDim.x) * blockDim.x) {
    int64_t o, i;
    divmod(c, inner, o, i);
    const int64_t base = o * n * inner + i;
    float s = 0.0f;
    for (int64_t j = 0; j < n; ++j) {
      const int64_t k = base + j * inner;
      s += log ? to_f32<T>(gy[k]) : to_f32<T>(gy[k]) * to_f32<T>(y[k]);
    }
    for (int64_t j = 0; j < n; ++j) {
      const int64_t k = base + j * inner;
      const float yv = to_f32<T>(y[k]), gv = to_f32<T>(gy[k]);
      gx[k] = from_f32<T>(log ? gv - expf(yv) * s : yv * (gv - s));
    }
  }
}

// ---------------------------------------------------------------- sum of squares
// *acc += Σ x², one atomicAdd per block (the order of the block partials is
// not fixed: the last bits may differ between runs)
template <class T>
__global__ void sum_squares_kernel(const T* __restrict__ x, int64_t n, float* acc) {
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x, stride = int64_t(gridDim.x) * blockDim.x;
  double s = strided_sum(tid, n, stride, [&](int64_t i) {
    const float v = to_f32<T>(x[i]);
    return v * v;
  });
  s = block_allreduce(s, SumOp{}, 0.0);
  if (threadIdx.x == 0) atomicAdd(acc, static_cast<float>(s));
}

}  // namespace

// ---------------------------------------------------------------- entries
int reduce_axis(tk_reduce_op op, tk_dtype dt, const void* x, int64_t outer, int64_t n, int64_t inner, void* y,
                int32_t* idx) {
  if (outer <= 0 || inner <= 0 || n < 0) return 0;  // no output (n == 0 still writes the empty sum / max)
  if (op != TK_SUM && op != TK_MEAN && op != TK_MAX) return fail("reduce_axis: unknown op %d", int(op));
  TK_DISPATCH_FLOAT("reduce_axis", dt, {
    const T* xt = static_cast<const T*>(x);
    T* yt = static_cast<T*>(y);
    if (op == TK_MAX) return reduce_impl<T, true>(xt, outer, n, inner, false, yt, idx);
    return reduce_impl<T, false>(xt, outer, n, inner, op == TK_MEAN, yt, nullptr);
  });
  return 0;
}

int max_backward(tk_dtype dt, const void* gy, const int32_t* idx, int64_t outer, int64_t n, int64_t inner, void* gx) {
  if (outer <= 0 || n <= 0 || inner <= 0) return 0;
  TK_DISPATCH_FLOAT("max_backward", dt, {
    max_backward_kernel<T><<<grid_for(outer * n * inner, kThreads), kThreads, 0, stream()>>>(
        static_cast<const T*>(gy), idx, outer, n, inner, static_cast<T*>(gx));
  });
  return launched("max_backward");
}

int softmax_forward(tk_dtype dt, const void* x, void* y, int64_t outer, int64_t n, int64_t inner, int log) {
  if (outer <= 0 || n <= 0 || inner <= 0) return 0;
  TK_DISPATCH_FLOAT("softmax_forward", dt, {
    const T* xt = static_cast<const T*>(x);
    T* yt = static_cast<T*>(y);
    if (inner > 1)
      softmax_cols<T><<<grid_for(outer * inner, kThreads), kThreads, 0, stream()>>>(xt, yt, outer, n, inner, log != 0);
    else if (n <= kWarpRowMax)
      softmax_rows<T, true><<<row_grid(outer, true), kRowThreads, 0, stream()>>>(xt, yt, outer, n, log != 0);
    else
      softmax_rows<T, false><<<row_grid(outer, false), kRowThreads, 0, stream()>>>(xt, yt, outer, n, log != 0);
  });
  return launched("softmax_forward");
}

int softmax_backward(tk_dtype dt, const void* y, const void* gy, void* gx, int64_t outer, int64_t n, int64_t inner,
                     int log) {
  if (outer <= 0 || n <= 0 || inner <= 0) return 0;
  TK_DISPATCH_FLOAT("softmax_backward", dt, {
    const T* yt = static_cast<const T*>(y);
    const T* gt = static_cast<const T*>(gy);
    T* xt = static_cast<T*>(gx);
    if (inner > 1)
      softmax_back_cols<T><<<grid_for(outer * inner, kThreads), kThreads, 0, stream()>>>(yt, gt, xt, outer, n, inner,
                                                                                        log != 0);
    else if (n <= kWarpRowMax)
      softmax_back_rows<T, true><<<row_grid(outer, true), kRowThreads, 0, stream()>>>(yt, gt, xt, outer, n, log != 0);
    else
      softmax_back_rows<T, false><<<row_grid(outer, false), kRowThreads, 0, stream()>>>(yt, gt, xt, outer, n, log != 0);
  });
  return launched("softmax_backward");
}

int sum_squares(tk_dtype dt, const void* x, int64_t n, float* acc) {
  if (n <= 0) return 0;
  TK_DISPATCH_FLOAT("sum_squares", dt, {
    sum_squares_kernel<T><<<grid_for(n, kThreads, wave_blocks()), kThreads, 0, stream()>>>(static_cast<const T*>(x), n,
                                                                                          acc);
  });
  return launched("sum_squares");
}

}  // namespace tkc
