// Cross entropy over rows of logits [N, V] (the CPU's cross_entropy_forward /
// backward of native/cpu/kernels_impl.inc):
//   lse[i]  = m + log Σ_j exp(logits[i, j] − m)   (m the row max; 0 for an all -inf row)
//   loss[i] = lse[i] − logits[i, t_i], 0 where t_i == ignore_index
//   gx[i,:] = g_row[i] · (exp(logits[i, :] − lse[i]) − onehot(t_i)), 0 where ignored
// A target outside [0, V) that is not ignore_index (the addon cannot check
// device targets) gives a NaN loss and a NaN gradient row instead of an
// out-of-bounds read.
#include "common.cuh"
#include "ops.h"
#include "reduce_util.cuh"

namespace tkc {
namespace {

// logits [N, V] of T, targets [N]; loss, lse [N] f32. One warp (V ≤ 1024) or one block per row.
template <class T, bool WARP>
__global__ void ce_forward_kernel(const T* __restrict__ logits, const int32_t* __restrict__ targets, int64_t N,
                                  int64_t V, int32_t ignore_index, float* __restrict__ loss, float* __restrict__ lse) {
  const RowGroup<WARP> g;
  for (int64_t r = g.first; r < N; r += g.step) {
    const T* xr = logits + r * V;
    SoftAcc a = soft_identity();
    for (int64_t j = g.tid; j < V; j += g.size) soft_add(a, to_f32<T>(xr[j]));
    a = soft_finish(g.reduce(a, SoftOp{}, soft_identity()));
    if (g.tid == 0) {
      const float l = a.m + logf(a.s);
      const int32_t t = targets[r];
      lse[r] = l;
      if (t == ignore_index) loss[r] = 0.0f;
      else if (t < 0 || t >= V) loss[r] = NAN;
      else loss[r] = l - to_f32<T>(xr[t]);
    }
  }
}

// gx [N, V] of T; lse, g_row [N] f32
template <class T, bool WARP>
__global__ void ce_backward_kernel(const T* __restrict__ logits, const float* __restrict__ lse,
                                   const int32_t* __restrict__ targets, const float* __restrict__ g_row, int64_t N,
                                   int64_t V, int32_t ignore_index, T* __restrict__ gx) {
  const RowGroup<WARP> g;
  for (int64_t r = g.first; r < N; r += g.step) {
    const T* xr = logits + r * V;
    T* o = gx + r * V;
    const int32_t t = targets[r];
    if (t == ignore_index) {
      for (int64_t j = g.tid; j < V; j += g.size) o[j] = from_f32<T>(0.0f);
      continue;
    }
    const bool bad = t < 0 || t >= V;
    const float gr = g_row[r], l = lse[r];
    for (int64_t j = g.tid; j < V; j += g.size) {
      float v = gr * expf(to_f32<T>(xr[j]) - l);
      if (j == t) v -= gr;
      o[j] = from_f32<T>(bad ? NAN : v);
    }
  }
}

}  // namespace

int cross_entropy_forward(tk_dtype dt, const void* logits, const int32_t* targets, int64_t N, int64_t V,
                          int32_t ignore_index, float* loss, float* lse) {
  if (N <= 0) return 0;
  const bool warp = V <= kWarpRowMax;
  TK_DISPATCH_FLOAT("cross_entropy_forward", dt, {
    const T* x = static_cast<const T*>(logits);
    if (warp)
      ce_forward_kernel<T, true><<<row_grid(N, true), kRowThreads, 0, stream()>>>(x, targets, N, V, ignore_index, loss,
                                                                                 lse);
    else
      ce_forward_kernel<T, false><<<row_grid(N, false), kRowThreads, 0, stream()>>>(x, targets, N, V, ignore_index,
                                                                                   loss, lse);
  });
  return launched("cross_entropy_forward");
}

int cross_entropy_backward(tk_dtype dt, const void* logits, const float* lse, const int32_t* targets,
                           const float* g_row, int64_t N, int64_t V, int32_t ignore_index, void* gx) {
  if (N <= 0 || V <= 0) return 0;
  const bool warp = V <= kWarpRowMax;
  TK_DISPATCH_FLOAT("cross_entropy_backward", dt, {
    const T* x = static_cast<const T*>(logits);
    T* o = static_cast<T*>(gx);
    if (warp)
      ce_backward_kernel<T, true><<<row_grid(N, true), kRowThreads, 0, stream()>>>(x, lse, targets, g_row, N, V,
                                                                                  ignore_index, o);
    else
      ce_backward_kernel<T, false><<<row_grid(N, false), kRowThreads, 0, stream()>>>(x, lse, targets, g_row, N, V,
                                                                                    ignore_index, o);
  });
  return launched("cross_entropy_backward");
}

}  // namespace tkc
