// LayerNorm and RMSNorm over the last axis: x, y, gy, gx [rows, C]; w, b, gw,
// gb [C] (of dt); mean, rstd [rows] f32. The formulas of the CPU
// (native/cpu/kernels_impl.inc), eps inside the square root:
//   layerNorm: mu = Σx / C, var = Σ(x − mu)² / C (two passes, not Welford),
//              rstd = 1 / sqrt(var + eps), y = (x − mu) · rstd · w + b
//   rmsNorm:   rstd = 1 / sqrt(Σx² / C + eps), y = x · rstd · w
// Backward (mean NULL for rmsNorm), xhat = (x − mu) · rstd, dxhat = gy · w:
//   gx = rstd · (dxhat − mean(dxhat) − xhat · mean(dxhat · xhat))   (no mean(dxhat) term for rmsNorm)
//   gw = Σ_rows gy · xhat, gb = Σ_rows gy
// gw / gb are deterministic: column sums over fixed chunks of rows, the chunk
// partials added in chunk order in double.
#include "common.cuh"
#include "ops.h"
#include "reduce_util.cuh"

namespace tkc {
namespace {

constexpr int kColX = 32, kColY = 8;  // column kernel: 32 columns x 8 rows of threads

// ---------------------------------------------------------------- forward, one warp or block per row
template <class T, bool WARP>
__global__ void layer_norm_fwd(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b, int64_t rows,
                               int64_t C, float eps, T* __restrict__ y, float* __restrict__ mean,
                               float* __restrict__ rstd) {
  const RowGroup<WARP> g;
  const float fC = static_cast<float>(C);
  for (int64_t r = g.first; r < rows; r += g.step) {
    const T* xr = x + r * C;
    T* yr = y + r * C;
    float s = 0.0f;
    for (int64_t j = g.tid; j < C; j += g.size) s += to_f32<T>(xr[j]);
    const float mu = g.reduce(s, SumOp{}, 0.0f) / fC;
    float v = 0.0f;
    for (int64_t j = g.tid; j < C; j += g.size) {
      const float d = to_f32<T>(xr[j]) - mu;
      v += d * d;
    }
    const float rs = 1.0f / sqrtf(g.reduce(v, SumOp{}, 0.0f) / fC + eps);
    if (g.tid == 0) {
      mean[r] = mu;
      rstd[r] = rs;
    }
    for (int64_t j = g.tid; j < C; j += g.size) {
      float o = (to_f32<T>(xr[j]) - mu) * rs * to_f32<T>(w[j]);
      if (b) o += to_f32<T>(b[j]);
      yr[j] = from_f32<T>(o);
    }
  }
}

template <class T, bool WARP>
__global__ void rms_norm_fwd(const T* __restrict__ x, const T* __restrict__ w, int64_t rows, int64_t C, float eps,
                             T* __restrict__ y, float* __restrict__ rstd) {
  const RowGroup<WARP> g;
  const float fC = static_cast<float>(C);
  for (int64_t r = g.first; r < rows; r += g.step) {
    const T* xr = x + r * C;
    T* yr = y + r * C;
    float s = 0.0f;
    for (int64_t j = g.tid; j < C; j += g.size) {
      const float v = to_f32<T>(xr[j]);
      s += v * v;
    }
    const float rs = 1.0f / sqrtf(g.reduce(s, SumOp{}, 0.0f) / fC + eps);
    if (g.tid == 0) rstd[r] = rs;
    for (int64_t j = g.tid; j < C; j += g.size) yr[j] = from_f32<T>(to_f32<T>(xr[j]) * rs * to_f32<T>(w[j]));
  }
}

// ---------------------------------------------------------------- backward
// gx, one warp or block per row; mean NULL: rmsNorm
template <class T, bool WARP>
__global__ void norm_bwd_rows(const T* __restrict__ x, const T* __restrict__ w, const float* __restrict__ mean,
                              const float* __restrict__ rstd, const T* __restrict__ gy, int64_t rows, int64_t C,
                              T* __restrict__ gx) {
  const RowGroup<WARP> g;
  const float invC = 1.0f / static_cast<float>(C);
  for (int64_t r = g.first; r < rows; r += g.step) {
    const T* xr = x + r * C;
    const T* gr = gy + r * C;
    T* o = gx + r * C;
    const float mu = mean ? mean[r] : 0.0f, rs = rstd[r];
    float2 s = make_float2(0.0f, 0.0f);  // Σ dxhat, Σ dxhat · xhat
    for (int64_t j = g.tid; j < C; j += g.size) {
      const float dxh = to_f32<T>(gr[j]) * to_f32<T>(w[j]);
      s.x += dxh;
      s.y += dxh * ((to_f32<T>(xr[j]) - mu) * rs);
    }
    s = g.reduce(s, SumOp{}, make_float2(0.0f, 0.0f));
    const float m1 = mean ? s.x * invC : 0.0f, m2 = s.y * invC;
    for (int64_t j = g.tid; j < C; j += g.size)
      o[j] = from_f32<T>(rs * (to_f32<T>(gr[j]) * to_f32<T>(w[j]) - m1 - (to_f32<T>(xr[j]) - mu) * rs * m2));
  }
}

// gw / gb column sums: block (32, 8), work item = (chunk of `chunk` rows, tile
// of 32 columns). Each thread adds its rows (ty, ty + 8, ...) in float runs of
// 32 into doubles; the 8 row-threads combine in order. nchunks == 1: gw / gb
// directly; otherwise the partials pw / pb [nchunks, C] (finished by norm_bwd_finish).
template <class T>
__global__ void norm_bwd_cols(const T* __restrict__ x, const float* __restrict__ mean, const float* __restrict__ rstd,
                              const T* __restrict__ gy, int64_t rows, int64_t C, int64_t chunk, int64_t nchunks,
                              double* __restrict__ pw, double* __restrict__ pb, T* __restrict__ gw,
                              T* __restrict__ gb) {
  __shared__ double sw[kColY][kColX], sb[kColY][kColX];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t tiles = (C + kColX - 1) / kColX;
  for (int64_t it = blockIdx.x; it < nchunks * tiles; it += gridDim.x) {
    const int64_t ch = it / tiles, c = (it % tiles) * kColX + tx;
    const int64_t r0 = ch * chunk, r1 = r0 + chunk < rows ? r0 + chunk : rows;
    double aw = 0.0, ab = 0.0;
    if (c < C) {
      int64_t r = r0 + ty;
      while (r < r1) {
        float rw = 0.0f, rb = 0.0f;
        for (int k = 0; k < 32 && r < r1; ++k, r += kColY) {
          const float gv = to_f32<T>(gy[r * C + c]);
          const float mu = mean ? mean[r] : 0.0f;
          rw += gv * ((to_f32<T>(x[r * C + c]) - mu) * rstd[r]);
          rb += gv;
        }
        aw += rw;
        ab += rb;
      }
    }
    sw[ty][tx] = aw;
    sb[ty][tx] = ab;
    __syncthreads();
    if (ty == 0 && c < C) {
      for (int k = 1; k < kColY; ++k) {
        aw += sw[k][tx];
        ab += sb[k][tx];
      }
      if (nchunks == 1) {
        if (gw) gw[c] = from_f32<T>(static_cast<float>(aw));
        if (gb) gb[c] = from_f32<T>(static_cast<float>(ab));
      } else {
        if (pw) pw[ch * C + c] = aw;
        if (pb) pb[ch * C + c] = ab;
      }
    }
    __syncthreads();  // the shared slots are rewritten by the next item
  }
}

template <class T>
__global__ void norm_bwd_finish(int64_t C, int64_t nchunks, const double* __restrict__ pw,
                                const double* __restrict__ pb, T* __restrict__ gw, T* __restrict__ gb) {
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < C; c += int64_t(gridDim.x) * blockDim.x) {
    double aw = 0.0, ab = 0.0;
    for (int64_t ch = 0; ch < nchunks; ++ch) {
      if (pw) aw += pw[ch * C + c];
      if (pb) ab += pb[ch * C + c];
    }
    if (gw) gw[c] = from_f32<T>(static_cast<float>(aw));
    if (gb) gb[c] = from_f32<T>(static_cast<float>(ab));
  }
}

template <class T>
int norm_backward(const char* op, const T* x, const T* w, const float* mean, const float* rstd, const T* gy,
                  int64_t rows, int64_t C, T* gx, T* gw, T* gb) {
  if (C <= 0) return 0;
  if (rows <= 0) {  // Σ over no rows: gw = gb = 0
    cudaError_t e = cudaSuccess;
    if (gw) e = cudaMemsetAsync(gw, 0, size_t(C) * sizeof(T), stream());
    if (gb && e == cudaSuccess) e = cudaMemsetAsync(gb, 0, size_t(C) * sizeof(T), stream());
    if (e != cudaSuccess) {
      cudaGetLastError();
      return fail("%s: %s", op, cudaGetErrorString(e));
    }
    return launched(op);
  }
  if (C <= kWarpRowMax)
    norm_bwd_rows<T, true><<<row_grid(rows, true), kRowThreads, 0, stream()>>>(x, w, mean, rstd, gy, rows, C, gx);
  else
    norm_bwd_rows<T, false><<<row_grid(rows, false), kRowThreads, 0, stream()>>>(x, w, mean, rstd, gy, rows, C, gx);
  if (int rc = launched(op)) return rc;
  if (!gw && !gb) return 0;
  // chunks of rows: enough blocks to fill the device, at least 64 rows each
  const int64_t tiles = (C + kColX - 1) / kColX, target = int64_t(sm_count() > 0 ? sm_count() : 1) * 8;
  int64_t nchunks = 1;
  if (tiles < target && rows > 64) {
    nchunks = ceil_div(target, tiles);
    const int64_t most = ceil_div(rows, 64);
    nchunks = nchunks < most ? nchunks : most;
  }
  const int64_t chunk = ceil_div(rows, nchunks);
  nchunks = ceil_div(rows, chunk);
  double *pw = nullptr, *pb = nullptr;
  void* scratch = nullptr;
  if (nchunks > 1) {
    const size_t each = size_t(nchunks) * size_t(C);
    scratch = scratch_alloc(each * sizeof(double) * ((gw ? 1 : 0) + (gb ? 1 : 0)));
    if (!scratch) return -1;  // the allocator wrote "CUDA out of memory: ..."
    double* p = static_cast<double*>(scratch);
    if (gw) pw = p, p += each;
    if (gb) pb = p;
  }
  norm_bwd_cols<T><<<grid_for(nchunks * tiles, 1), dim3(kColX, kColY), 0, stream()>>>(x, mean, rstd, gy, rows, C, chunk,
                                                                                     nchunks, pw, pb, gw, gb);
  int rc = launched(op);
  if (rc == 0 && nchunks > 1) {
    norm_bwd_finish<T><<<grid_for(C, 256), 256, 0, stream()>>>(C, nchunks, pw, pb, gw, gb);
    rc = launched(op);
  }
  if (scratch) scratch_free(scratch);
  return rc;
}

}  // namespace

int layer_norm_forward(tk_dtype dt, const void* x, const void* w, const void* b, int64_t rows, int64_t C, float eps,
                       void* y, float* mean, float* rstd) {
  if (rows <= 0 || C <= 0) return 0;
  TK_DISPATCH_FLOAT("layer_norm_forward", dt, {
    const T *xt = static_cast<const T*>(x), *wt = static_cast<const T*>(w), *bt = static_cast<const T*>(b);
    T* yt = static_cast<T*>(y);
    if (C <= kWarpRowMax)
      layer_norm_fwd<T, true><<<row_grid(rows, true), kRowThreads, 0, stream()>>>(xt, wt, bt, rows, C, eps, yt, mean,
                                                                                  rstd);
    else
      layer_norm_fwd<T, false><<<row_grid(rows, false), kRowThreads, 0, stream()>>>(xt, wt, bt, rows, C, eps, yt, mean,
                                                                                   rstd);
  });
  return launched("layer_norm_forward");
}

int layer_norm_backward(tk_dtype dt, const void* x, const void* w, const float* mean, const float* rstd,
                        const void* gy, int64_t rows, int64_t C, void* gx, void* gw, void* gb) {
  TK_DISPATCH_FLOAT("layer_norm_backward", dt, {
    return norm_backward<T>("layer_norm_backward", static_cast<const T*>(x), static_cast<const T*>(w), mean, rstd,
                            static_cast<const T*>(gy), rows, C, static_cast<T*>(gx), static_cast<T*>(gw),
                            static_cast<T*>(gb));
  });
  return 0;
}

int rms_norm_forward(tk_dtype dt, const void* x, const void* w, int64_t rows, int64_t C, float eps, void* y,
                     float* rstd) {
  if (rows <= 0 || C <= 0) return 0;
  TK_DISPATCH_FLOAT("rms_norm_forward", dt, {
    const T *xt = static_cast<const T*>(x), *wt = static_cast<const T*>(w);
    T* yt = static_cast<T*>(y);
    if (C <= kWarpRowMax)
      rms_norm_fwd<T, true><<<row_grid(rows, true), kRowThreads, 0, stream()>>>(xt, wt, rows, C, eps, yt, rstd);
    else
      rms_norm_fwd<T, false><<<row_grid(rows, false), kRowThreads, 0, stream()>>>(xt, wt, rows, C, eps, yt, rstd);
  });
  return launched("rms_norm_forward");
}

int rms_norm_backward(tk_dtype dt, const void* x, const void* w, const float* rstd, const void* gy, int64_t rows,
                      int64_t C, void* gx, void* gw) {
  TK_DISPATCH_FLOAT("rms_norm_backward", dt, {
    return norm_backward<T>("rms_norm_backward", static_cast<const T*>(x), static_cast<const T*>(w), nullptr, rstd,
                            static_cast<const T*>(gy), rows, C, static_cast<T*>(gx), static_cast<T*>(gw), nullptr);
  });
  return 0;
}

}  // namespace tkc
