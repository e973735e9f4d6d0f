// Elementwise ops: unary forward / backward (the 11 tk_unary_op), broadcasting
// binary ops and where, dropout and in-place scaling. Every op loads its
// dtype, computes in f32 with the formulas of native/cpu/kernels_impl.inc
// (and vecmath.inc, through the act_* helpers of reduce_util.cuh) and stores.
#include <type_traits>

#include "common.cuh"
#include "ops.h"
#include "reduce_util.cuh"

namespace tkc {
namespace {

constexpr int kThreads = 256;

// ---------------------------------------------------------------- the contiguous elementwise kernel
// y[i] = f(v, i) for i < n, v[k] = in[k][i] in f32 (0 where in[k] is NULL: an
// input the op does not read). With vec, every pointer is 16-byte aligned and
// the body moves 16-byte packs; the tail goes element by element. y may alias
// an input (each element is read and written by the same thread).
template <class T, int NIN>
struct EwPtrs {
  const T* in[NIN];
  T* out;
};

template <class T, int NIN, class F>
__global__ void ew_kernel(EwPtrs<T, NIN> a, int64_t n, F f, bool vec) {
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x, stride = int64_t(gridDim.x) * blockDim.x;
  int64_t done = 0;
  if (vec) {
    constexpr int W = Pack<T>::N;
    const int64_t nv = n / W;
    for (int64_t p = tid; p < nv; p += stride) {
      Pack<T> in[NIN];
#pragma unroll
      for (int k = 0; k < NIN; ++k)
        if (a.in[k]) in[k] = reinterpret_cast<const Pack<T>*>(a.in[k])[p];
      Pack<T> o;
#pragma unroll
      for (int j = 0; j < W; ++j) {
        float v[NIN];
#pragma unroll
        for (int k = 0; k < NIN; ++k) v[k] = a.in[k] ? to_f32<T>(in[k].v[j]) : 0.0f;
        o.v[j] = from_f32<T>(f(v, p * W + j));
      }
      reinterpret_cast<Pack<T>*>(a.out)[p] = o;
    }
    done = nv * W;
  }
  for (int64_t i = done + tid; i < n; i += stride) {
    float v[NIN];
#pragma unroll
    for (int k = 0; k < NIN; ++k) v[k] = a.in[k] ? to_f32<T>(a.in[k][i]) : 0.0f;
    a.out[i] = from_f32<T>(f(v, i));
  }
}

template <class T, int NIN, class F>
void launch_ew(EwPtrs<T, NIN> a, int64_t n, F f) {
  bool vec = aligned16(a.out);
  for (int k = 0; k < NIN; ++k) vec = vec && (!a.in[k] || aligned16(a.in[k]));
  const int64_t work = vec ? ceil_div(n, Pack<T>::N) : n;
  ew_kernel<T, NIN, F><<<grid_for(work, kThreads), kThreads, 0, stream()>>>(a, n, f, vec);
}

// ---------------------------------------------------------------- pow, as the CPU's pow_loop
// x^k by square-and-multiply in the CPU's order (bit-exact with it), 1 / x^k for k < 0
__device__ __forceinline__ float pow_int(float x, int k, bool neg) {
  float acc = 1.0f, base = x;
  for (int bit = k; bit; bit >>= 1) {
    if (bit & 1) acc *= base;
    if (bit > 1) base *= base;
  }
  return neg ? 1.0f / acc : acc;
}
// pow_loop: 3, 4 and −2 by products; other integers with |p| ≤ 64 by
// square-and-multiply (any sign of x; p = 0 gives 1); everything else as
// exp(p log x) for x ≥ 0 (0^p = 0 for p > 0, inf for p < 0) and NaN for x < 0.
__device__ __forceinline__ float pow_cpu(float x, float p) {
  if (p == 3.0f) return x * x * x;
  if (p == 4.0f) {
    const float x2 = x * x;
    return x2 * x2;
  }
  if (p == -2.0f) return 1.0f / (x * x);
  if (p == floorf(p) && fabsf(p) <= 64.0f) return pow_int(x, static_cast<int>(fabsf(p)), p < 0.0f);
  const float r = expf(p * logf(x));
  return x < 0.0f ? NAN : r;
}

// ---------------------------------------------------------------- unary functors; v = {x}
template <int OP>
struct UnaryFwd {
  float p;
  __device__ __forceinline__ float operator()(const float (&v)[1], int64_t) const {
    const float x = v[0];
    switch (OP) {
      case TK_NEG: return -x;
      case TK_EXP: return expf(x);
      case TK_LOG: return logf(x);
      case TK_SQRT: return sqrtf(x);
      case TK_SCALE: return x * p;
      case TK_POW:  // the forward's own special cases first (unary_forward), then pow_loop
        if (p == 2.0f) return x * x;
        if (p == 1.0f) return x;
        if (p == 0.5f) return sqrtf(x);
        if (p == -1.0f) return 1.0f / x;
        return pow_cpu(x, p);
      case TK_GELU: return act_gelu(x);
      case TK_SILU: return act_silu(x);
      case TK_RELU: return act_relu(x);
      case TK_TANH: return tanhf(x);
      case TK_GELU_ERF: return act_gelu_erf(x);
    }
    return NAN;
  }
};

// v = {x, y, gy}: gx = gy · dy/dx (x or y NULL when the op does not read it)
template <int OP>
struct UnaryBwd {
  float p;
  __device__ __forceinline__ float operator()(const float (&v)[3], int64_t) const {
    const float x = v[0], y = v[1], g = v[2];
    switch (OP) {
      case TK_NEG: return -g;
      case TK_EXP: return g * y;
      case TK_LOG: return g / x;
      case TK_SQRT: return g * 0.5f / y;  // 1 / (2 sqrt x) from the output
      case TK_SCALE: return g * p;
      case TK_POW:
        if (p == 2.0f) return g * 2.0f * x;
        if (p == 1.0f) return g;
        if (p == 0.0f) return 0.0f * g;
        return g * p * pow_cpu(x, p - 1.0f);
      case TK_GELU: return g * act_gelu_grad(x);
      case TK_SILU: {
        const float s = act_sigmoid(x);
        return g * s * (1.0f + x * (1.0f - s));
      }
      case TK_RELU: return x > 0.0f ? g : 0.0f;
      case TK_TANH: return g * (1.0f - y * y);  // 1 − tanh²
      case TK_GELU_ERF: return g * act_gelu_erf_grad(x);
    }
    return NAN;
  }
};
// which of x (1) and y (2) the backward of op reads
constexpr int bwd_reads(int op) {
  return op == TK_EXP || op == TK_SQRT || op == TK_TANH ? 2 : (op == TK_NEG || op == TK_SCALE ? 0 : 1);
}

template <class T, int OP>
void launch_unary_fwd(const void* x, void* y, int64_t n, float p) {
  launch_ew<T, 1>(EwPtrs<T, 1>{{static_cast<const T*>(x)}, static_cast<T*>(y)}, n, UnaryFwd<OP>{p});
}
template <class T, int OP>
void launch_unary_bwd(const void* x, const void* y, const void* gy, void* gx, int64_t n, float p) {
  constexpr int r = bwd_reads(OP);
  EwPtrs<T, 3> a{{r == 1 ? static_cast<const T*>(x) : nullptr, r == 2 ? static_cast<const T*>(y) : nullptr,
                  static_cast<const T*>(gy)},
                 static_cast<T*>(gx)};
  launch_ew<T, 3>(a, n, UnaryBwd<OP>{p});
}

// calls body(std::integral_constant<int, OP>{}) with the op as a compile-time constant
template <class B>
bool with_unary_op(tk_unary_op op, B&& body) {
  switch (op) {
    case TK_NEG: body(std::integral_constant<int, TK_NEG>{}); return true;
    case TK_EXP: body(std::integral_constant<int, TK_EXP>{}); return true;
    case TK_LOG: body(std::integral_constant<int, TK_LOG>{}); return true;
    case TK_SQRT: body(std::integral_constant<int, TK_SQRT>{}); return true;
    case TK_SCALE: body(std::integral_constant<int, TK_SCALE>{}); return true;
    case TK_POW: body(std::integral_constant<int, TK_POW>{}); return true;
    case TK_GELU: body(std::integral_constant<int, TK_GELU>{}); return true;
    case TK_SILU: body(std::integral_constant<int, TK_SILU>{}); return true;
    case TK_RELU: body(std::integral_constant<int, TK_RELU>{}); return true;
    case TK_TANH: body(std::integral_constant<int, TK_TANH>{}); return true;
    case TK_GELU_ERF: body(std::integral_constant<int, TK_GELU_ERF>{}); return true;
  }
  return false;
}

// ---------------------------------------------------------------- binary, where
template <int OP>
struct BinaryF {
  __device__ __forceinline__ float operator()(float a, float b) const {
    switch (OP) {
      case TK_ADD: return a + b;
      case TK_SUB: return a - b;
      case TK_MUL: return a * b;
      case TK_DIV: return a / b;
    }
    return NAN;
  }
  __device__ __forceinline__ float operator()(const float (&v)[2], int64_t) const { return (*this)(v[0], v[1]); }
};

// y [numel] contiguous = a op b; plan operands: 0 = a, 1 = b
template <class T, class F>
__global__ void binary_nd_kernel(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ y, NdPlan p,
                                 F f) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < p.numel; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[2];
    nd_offsets<2>(p, i, off);
    y[i] = from_f32<T>(f(to_f32<T>(a[off[0]]), to_f32<T>(b[off[1]])));
  }
}

template <class C> __device__ __forceinline__ bool truthy(C c) { return c != C(0); }  // f32: NaN is true, as the CPU

// y [numel] contiguous = cond != 0 ? a : b; plan operands: 0 = cond, 1 = a, 2 = b
template <class C, class T>
__global__ void where_nd_kernel(const C* __restrict__ cond, const T* __restrict__ a, const T* __restrict__ b,
                                T* __restrict__ y, NdPlan p) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < p.numel; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[3];
    nd_offsets<3>(p, i, off);
    y[i] = truthy(cond[off[0]]) ? a[off[1]] : b[off[2]];
  }
}

// ---------------------------------------------------------------- dropout, scale
// y = keep ? x · scale : 0, keep = uniform01(seed, i) ≥ p (the CPU's dropout);
// scale = 1 / (1 − p), 0 for p ≥ 1 (then nothing is kept anyway: u < 1)
struct DropoutF {
  uint64_t seed;
  float p, keep_scale;
  __device__ __forceinline__ float operator()(const float (&v)[1], int64_t i) const {
    return uniform01(seed, static_cast<uint64_t>(i)) >= p ? v[0] * keep_scale : 0.0f;
  }
};
struct ScaleF {
  float s;
  __device__ __forceinline__ float operator()(const float (&v)[1], int64_t) const { return v[0] * s; }
};

}  // namespace

// ---------------------------------------------------------------- entries
int unary_forward(tk_unary_op op, tk_dtype dt, const void* x, void* y, int64_t n, float p) {
  if (n <= 0) return 0;
  bool known = true;
  TK_DISPATCH_FLOAT("unary_forward", dt, {
    known = with_unary_op(op, [&](auto opc) { launch_unary_fwd<T, decltype(opc)::value>(x, y, n, p); });
  });
  if (!known) return fail("unary_forward: unknown op %d", int(op));
  return launched("unary_forward");
}

int unary_backward(tk_unary_op op, tk_dtype dt, const void* x, const void* y, const void* gy, void* gx, int64_t n,
                   float p) {
  if (n <= 0) return 0;
  bool known = true;
  TK_DISPATCH_FLOAT("unary_backward", dt, {
    known = with_unary_op(op, [&](auto opc) { launch_unary_bwd<T, decltype(opc)::value>(x, y, gy, gx, n, p); });
  });
  if (!known) return fail("unary_backward: unknown op %d", int(op));
  return launched("unary_backward");
}

int binary(tk_binary_op op, tk_dtype dt, const void* a, const int64_t* a_strides, const void* b,
           const int64_t* b_strides, void* y, int ndim, const int64_t* sizes) {
  if (ndim < 0 || ndim > TK_MAX_DIMS) return fail("binary: %d dimensions (at most %d)", ndim, TK_MAX_DIMS);
  for (int k = 0; k < ndim; ++k)
    if (sizes[k] <= 0) return 0;
  if (op < TK_ADD || op > TK_DIV) return fail("binary: unknown op %d", int(op));
  const int64_t* strides[2] = {a_strides, b_strides};
  const NdPlan p = make_nd_plan(ndim, sizes, 2, strides);
  // both contiguous (same shape): the 16-byte elementwise kernel
  const bool contig = p.nd == 1 && p.st[0][0] == 1 && p.st[1][0] == 1;
  auto go = [&](auto f) {
    TK_DISPATCH_FLOAT("binary", dt, {
      if (contig)
        launch_ew<T, 2>(EwPtrs<T, 2>{{static_cast<const T*>(a), static_cast<const T*>(b)}, static_cast<T*>(y)},
                        p.numel, f);
      else
        binary_nd_kernel<T><<<grid_for(p.numel, kThreads), kThreads, 0, stream()>>>(
            static_cast<const T*>(a), static_cast<const T*>(b), static_cast<T*>(y), p, f);
    });
    return launched("binary");
  };
  switch (op) {
    case TK_ADD: return go(BinaryF<TK_ADD>{});
    case TK_SUB: return go(BinaryF<TK_SUB>{});
    case TK_MUL: return go(BinaryF<TK_MUL>{});
    case TK_DIV: return go(BinaryF<TK_DIV>{});
  }
  return fail("binary: unknown op %d", int(op));
}

int where(const void* cond, tk_dtype cdt, const int64_t* c_strides, const void* a, const int64_t* a_strides,
          const void* b, const int64_t* b_strides, tk_dtype dt, void* y, int ndim, const int64_t* sizes) {
  if (ndim < 0 || ndim > TK_MAX_DIMS) return fail("where: %d dimensions (at most %d)", ndim, TK_MAX_DIMS);
  for (int k = 0; k < ndim; ++k)
    if (sizes[k] <= 0) return 0;
  const int64_t* strides[3] = {c_strides, a_strides, b_strides};
  const NdPlan p = make_nd_plan(ndim, sizes, 3, strides);
  auto go = [&](auto ctag) {
    using C = decltype(ctag);
    TK_DISPATCH_FLOAT("where", dt, {
      where_nd_kernel<C, T><<<grid_for(p.numel, kThreads), kThreads, 0, stream()>>>(
          static_cast<const C*>(cond), static_cast<const T*>(a), static_cast<const T*>(b), static_cast<T*>(y), p);
    });
    return launched("where");
  };
  switch (cdt) {
    case TK_F32: return go(float{});
    case TK_I32: return go(int32_t{});
    case TK_I8: return go(int8_t{});
    default: return fail("where: cond dtype %d is not supported (f32, i32 or i8)", int(cdt));
  }
}

int dropout(tk_dtype dt, const void* x, void* y, int64_t n, float p, uint64_t seed) {
  if (n <= 0) return 0;
  const float keep_scale = p >= 1.0f ? 0.0f : 1.0f / (1.0f - p);
  TK_DISPATCH_FLOAT("dropout", dt, {
    launch_ew<T, 1>(EwPtrs<T, 1>{{static_cast<const T*>(x)}, static_cast<T*>(y)}, n, DropoutF{seed, p, keep_scale});
  });
  return launched("dropout");
}

int scale_inplace(tk_dtype dt, void* x, int64_t n, float s) {
  if (n <= 0) return 0;
  TK_DISPATCH_FLOAT("scale_inplace", dt, {
    launch_ew<T, 1>(EwPtrs<T, 1>{{static_cast<const T*>(x)}, static_cast<T*>(x)}, n, ScaleF{s});
  });
  return launched("scale_inplace");
}

}  // namespace tkc
