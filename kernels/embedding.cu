// Embedding lookup and its backward (scatter-add), and the rotary position
// embedding (rotate-half, as the CPU's rope in native/cpu/kernels_impl.inc).
#include "common.cuh"
#include "ops.h"
#include "reduce_util.cuh"

namespace tkc {
namespace {

// ---------------------------------------------------------------- embedding
// y [n, w] = table[ids[i], :] as raw words E (w = the row in words); an id
// outside [0, vocab) gives a zero row. One warp (w ≤ 1024) or block per row.
template <class E, bool WARP>
__global__ void embedding_fwd(const E* __restrict__ table, const int32_t* __restrict__ ids, int64_t n, int64_t vocab,
                              int64_t w, E* __restrict__ y) {
  const RowGroup<WARP> g;
  for (int64_t i = g.first; i < n; i += g.step) {
    const int64_t id = ids[i];
    E* yr = y + i * w;
    if (id < 0 || id >= vocab) {
      for (int64_t c = g.tid; c < w; c += g.size) yr[c] = E{};
    } else {
      const E* tr = table + id * w;
      for (int64_t c = g.tid; c < w; c += g.size) yr[c] = tr[c];
    }
  }
}

template <class E>
int launch_embedding_fwd(const void* table, const int32_t* ids, int64_t n, int64_t vocab, int64_t w, void* y) {
  const E* t = static_cast<const E*>(table);
  E* o = static_cast<E*>(y);
  if (w <= kWarpRowMax)
    embedding_fwd<E, true><<<row_grid(n, true), kRowThreads, 0, stream()>>>(t, ids, n, vocab, w, o);
  else
    embedding_fwd<E, false><<<row_grid(n, false), kRowThreads, 0, stream()>>>(t, ids, n, vocab, w, o);
  return launched("embedding_forward");
}

// gtable [vocab, dim] (f32, zeroed before) += gy[i, :] at row ids[i] (atomics:
// the order of the additions into a row that several ids share is not fixed)
template <class T, bool WARP>
__global__ void embedding_bwd(const T* __restrict__ gy, const int32_t* __restrict__ ids, int64_t n, int64_t vocab,
                              int64_t dim, float* __restrict__ gtable) {
  const RowGroup<WARP> g;
  for (int64_t i = g.first; i < n; i += g.step) {
    const int64_t id = ids[i];
    if (id < 0 || id >= vocab) continue;  // out of range: dropped (the forward gave a zero row)
    const T* gr = gy + i * dim;
    float* tr = gtable + id * dim;
    for (int64_t c = g.tid; c < dim; c += g.size) atomicAdd(tr + c, to_f32<T>(gr[c]));
  }
}

// ---------------------------------------------------------------- rope
// The CPU's table: cs, sn [T, half] with, in double,
//   inv_freq = theta^(−2 d / D), a = positions[t] · inv_freq,
//   cs = float(cos a), sn = float(±sin a)  (− for the inverse)
// (CUDA's double pow / sin / cos are within 2 ulp in double: the floats agree
// with the CPU's but in rare last-bit cases)
__global__ void rope_table(const int32_t* __restrict__ positions, int64_t T, int64_t D, double theta, bool inverse,
                           float* __restrict__ cs, float* __restrict__ sn) {
  const int64_t half = D / 2;
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < T * half; k += int64_t(gridDim.x) * blockDim.x) {
    int64_t t, d;
    divmod(k, half, t, d);
    const double inv_freq = pow(theta, __ddiv_rn(-2.0 * static_cast<double>(d), static_cast<double>(D)));
    const double a = __dmul_rn(static_cast<double>(positions[t]), inv_freq);
    double s, c;
    sincos(a, &s, &c);
    cs[k] = static_cast<float>(c);
    sn[k] = static_cast<float>(inverse ? -s : s);
  }
}

// x, y [BH, T, D] (y may be x): for d < half,
//   y[d] = x[d] · c − x[d + half] · s,  y[d + half] = x[d + half] · c + x[d] · s
template <class T, bool WARP>
__global__ void rope_apply(const T* x, const float* __restrict__ cs, const float* __restrict__ sn, int64_t rows,
                           int64_t Tn, int64_t D, T* y) {
  const RowGroup<WARP> g;
  const int64_t half = D / 2;
  for (int64_t r = g.first; r < rows; r += g.step) {
    const int64_t t = r % Tn;
    const T* xr = x + r * D;
    T* yr = y + r * D;
    const float* c = cs + t * half;
    const float* s = sn + t * half;
    for (int64_t d = g.tid; d < half; d += g.size) {
      const float x1 = to_f32<T>(xr[d]), x2 = to_f32<T>(xr[d + half]);
      yr[d] = from_f32<T>(x1 * c[d] - x2 * s[d]);
      yr[d + half] = from_f32<T>(x2 * c[d] + x1 * s[d]);
    }
  }
}

}  // namespace

int embedding_forward(tk_dtype dt, const void* table, const int32_t* ids, int64_t n, int64_t vocab, int64_t dim,
                      void* y) {
  if (n <= 0 || dim <= 0) return 0;
  if (dt != TK_F32 && dt != TK_BF16)
    return fail("embedding_forward: dtype %d is not supported on CUDA (f32 or bf16)", int(dt));
  // a row copy needs no conversion: move the widest words the row and the pointers allow
  const size_t row = size_t(dim) * (dt == TK_BF16 ? 2 : 4);
  const uintptr_t a = reinterpret_cast<uintptr_t>(table) | reinterpret_cast<uintptr_t>(y);
  if (row % 16 == 0 && a % 16 == 0) return launch_embedding_fwd<uint4>(table, ids, n, vocab, int64_t(row / 16), y);
  if (row % 8 == 0 && a % 8 == 0) return launch_embedding_fwd<uint2>(table, ids, n, vocab, int64_t(row / 8), y);
  if (row % 4 == 0 && a % 4 == 0) return launch_embedding_fwd<uint32_t>(table, ids, n, vocab, int64_t(row / 4), y);
  return launch_embedding_fwd<uint16_t>(table, ids, n, vocab, int64_t(row / 2), y);
}

int embedding_backward(tk_dtype dt, const void* gy, const int32_t* ids, int64_t n, int64_t vocab, int64_t dim,
                       float* gtable) {
  if (vocab <= 0 || dim <= 0) return 0;
  if (dt != TK_F32 && dt != TK_BF16)
    return fail("embedding_backward: dtype %d is not supported on CUDA (f32 or bf16)", int(dt));
  cudaError_t e = cudaMemsetAsync(gtable, 0, size_t(vocab) * size_t(dim) * sizeof(float), stream());
  if (e != cudaSuccess) {
    cudaGetLastError();
    return fail("embedding_backward: %s", cudaGetErrorString(e));
  }
  if (n <= 0) return launched("embedding_backward");
  TK_DISPATCH_FLOAT("embedding_backward", dt, {
    const T* g = static_cast<const T*>(gy);
    if (dim <= kWarpRowMax)
      embedding_bwd<T, true><<<row_grid(n, true), kRowThreads, 0, stream()>>>(g, ids, n, vocab, dim, gtable);
    else
      embedding_bwd<T, false><<<row_grid(n, false), kRowThreads, 0, stream()>>>(g, ids, n, vocab, dim, gtable);
  });
  return launched("embedding_backward");
}

int rope(tk_dtype dt, const void* x, const int32_t* positions, int64_t BH, int64_t T, int64_t D, float theta,
         int inverse, void* y) {
  const int64_t half = D / 2, steps = T;  // (T is the dtype inside TK_DISPATCH_FLOAT)
  if (BH <= 0 || steps <= 0 || half <= 0) return 0;
  if (dt != TK_F32 && dt != TK_BF16) return fail("rope: dtype %d is not supported on CUDA (f32 or bf16)", int(dt));
  float* cs = static_cast<float*>(scratch_alloc(size_t(steps) * size_t(half) * 2 * sizeof(float)));
  if (!cs) return -1;  // the allocator wrote "CUDA out of memory: ..."
  float* sn = cs + steps * half;
  rope_table<<<grid_for(steps * half, 256), 256, 0, stream()>>>(positions, steps, D, static_cast<double>(theta),
                                                                inverse != 0, cs, sn);
  int rc = launched("rope");
  if (rc == 0) {
    const int64_t rows = BH * steps;
    if (dt == TK_F32) {
      if (half <= kWarpRowMax)
        rope_apply<float, true><<<row_grid(rows, true), kRowThreads, 0, stream()>>>(
            static_cast<const float*>(x), cs, sn, rows, steps, D, static_cast<float*>(y));
      else
        rope_apply<float, false><<<row_grid(rows, false), kRowThreads, 0, stream()>>>(
            static_cast<const float*>(x), cs, sn, rows, steps, D, static_cast<float*>(y));
    } else {
      if (half <= kWarpRowMax)
        rope_apply<bf16, true><<<row_grid(rows, true), kRowThreads, 0, stream()>>>(
            static_cast<const bf16*>(x), cs, sn, rows, steps, D, static_cast<bf16*>(y));
      else
        rope_apply<bf16, false><<<row_grid(rows, false), kRowThreads, 0, stream()>>>(
            static_cast<const bf16*>(x), cs, sn, rows, steps, D, static_cast<bf16*>(y));
    }
    rc = launched("rope");
  }
  scratch_free(cs);  // stream-ordered: reused only by work enqueued after the kernels
  return rc;
}

}  // namespace tkc
