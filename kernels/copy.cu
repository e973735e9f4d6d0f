// Creation and copies: fill, random (rand / randn with the CPU's values) and
// the general N-d strided copy with dtype conversion.
#include <cuda_fp16.h>

#include <cmath>
#include <cstring>
#include <type_traits>

#include "common.cuh"
#include "ops.h"
#include "reduce_util.cuh"

namespace tkc {
namespace {

constexpr int kThreads = 256;

// ---------------------------------------------------------------- dtype conversions
// Every dtype of the ABI as a storage type, for the generic copy.
template <class F>
int with_dtype(tk_dtype dt, const char* op, F&& f) {
  switch (dt) {
    case TK_F32: return f(float{});
    case TK_BF16: return f(bf16{});
    case TK_F16: return f(__half{});
    case TK_I8: return f(int8_t{});
    case TK_I32: return f(int32_t{});
  }
  return fail("%s: unknown dtype %d", op, int(dt));
}
inline size_t dtype_bytes(tk_dtype dt) { return dt == TK_I8 ? 1 : (dt == TK_BF16 || dt == TK_F16) ? 2 : 4; }

template <class X> __device__ __forceinline__ float any_to_f32(X x) {
  if constexpr (std::is_same_v<X, float>) return x;
  else if constexpr (std::is_same_v<X, bf16>) return __bfloat162float(x);
  else if constexpr (std::is_same_v<X, __half>) return __half2float(x);
  else return static_cast<float>(x);  // i8 exact, i32 rounded to nearest even (the CPU's cast)
}
// float -> Y as the CPU's cast (ops_tensor.cc Cast): floats round to nearest
// even; integers take NaN to 0, saturate ([-2^31, 2^31 - 128] for i32, the
// largest floats in range) and truncate toward zero.
template <class Y> __device__ __forceinline__ Y f32_to_any(float f) {
  if constexpr (std::is_same_v<Y, float>) return f;
  else if constexpr (std::is_same_v<Y, bf16>) return __float2bfloat16_rn(f);
  else if constexpr (std::is_same_v<Y, __half>) return __float2half_rn(f);
  else if constexpr (std::is_same_v<Y, int32_t>) {
    if (f != f) return 0;
    f = fminf(fmaxf(f, -2147483648.0f), 2147483520.0f);
    return static_cast<int32_t>(truncf(f));
  } else {
    if (f != f) return 0;
    f = fminf(fmaxf(f, -128.0f), 127.0f);
    return static_cast<int8_t>(truncf(f));
  }
}
template <class Y, class X> __device__ __forceinline__ Y convert(X x) {
  if constexpr (std::is_same_v<Y, X>) return x;  // bit copy (NaN payloads kept)
  else if constexpr (std::is_same_v<Y, int32_t> && std::is_same_v<X, int8_t>) return static_cast<int32_t>(x);
  else if constexpr (std::is_same_v<Y, int8_t> && std::is_same_v<X, int32_t>)
    return static_cast<int8_t>(x < -128 ? -128 : (x > 127 ? 127 : x));  // = via float, saturated
  else return f32_to_any<Y>(any_to_f32(x));
}

// ---------------------------------------------------------------- fill
// host replicas of the CPU's conversions of a fill value (ops_tensor.cc Fill)
// double -> float with round-to-odd, so that float -> bf16 / f16 (to nearest
// even) afterwards is the correct rounding of the double.
float narrow_round_odd(double d) {
  float f = static_cast<float>(d);
  if (!std::isfinite(f) || static_cast<double>(f) == d) return f;
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 1u) == 0) {
    bool up = (static_cast<double>(f) < d) == (f > 0.0f || (f == 0.0f && d > 0.0));
    u = up ? u + 1 : u - 1;
    if (f == 0.0f) u = (d > 0.0 ? 0u : 0x80000000u) | 1u;
    std::memcpy(&f, &u, 4);
  }
  return f;
}
uint16_t host_f32_to_bf16(float f) {  // tk::f32_to_bf16 (baseline.cc)
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

// y[0, n) = v; y aligned to E. With vec, y is 16-byte aligned: 16-byte stores.
template <class E>
__global__ void fill_kernel(E* y, int64_t n, E v, bool vec) {
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x, stride = int64_t(gridDim.x) * blockDim.x;
  int64_t done = 0;
  if (vec) {
    Pack<E> pk;
#pragma unroll
    for (int j = 0; j < Pack<E>::N; ++j) pk.v[j] = v;
    const int64_t nv = n / Pack<E>::N;
    for (int64_t p = tid; p < nv; p += stride) reinterpret_cast<Pack<E>*>(y)[p] = pk;
    done = nv * Pack<E>::N;
  }
  for (int64_t i = done + tid; i < n; i += stride) y[i] = v;
}

template <class E>
int fill_pattern(void* y, int64_t n, E v) {
  // one repeated byte (0, -1, ...): cudaMemset
  unsigned char b[sizeof(E)];
  std::memcpy(b, &v, sizeof(E));
  bool same = true;
  for (size_t k = 1; k < sizeof(E); ++k) same = same && b[k] == b[0];
  if (same) {
    cudaError_t e = cudaMemsetAsync(y, b[0], size_t(n) * sizeof(E), stream());
    if (e != cudaSuccess) {
      cudaGetLastError();
      return fail("fill: %s", cudaGetErrorString(e));
    }
    return launched("fill");
  }
  const bool vec = aligned16(y);
  fill_kernel<E><<<grid_for(vec ? ceil_div(n, Pack<E>::N) : n, kThreads), kThreads, 0, stream()>>>(
      static_cast<E*>(y), n, v, vec);
  return launched("fill");
}

// ---------------------------------------------------------------- random
// uniform: y[i] = lo + (hi − lo) · uniform01(seed, i), as tk::fill_uniform
// (baseline.cc), each operation rounded once (no FMA contraction).
template <class T>
__global__ void uniform_kernel(T* y, int64_t n, uint64_t seed, float lo, float hi) {
  const float span = __fsub_rn(hi, lo);
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = from_f32<T>(__fadd_rn(lo, __fmul_rn(span, uniform01(seed, static_cast<uint64_t>(i)))));
}

// normal: tk::fill_normal (baseline.cc): Box-Muller on the pairs (2i, 2i + 1)
// from 53-bit uniforms in double of mix64(seed · 0xD1B54A32D192ED03 + k) (NOT
// the bits of uniform01), u1 in (0, 1], u2 in [0, 1):
//   z0 = sqrt(−2 ln u1) cos(2π u2), z1 = sqrt(−2 ln u1) sin(2π u2)
//   y[2i] = float(mean + std z0), y[2i + 1] = float(mean + std z1)
// all in double, one rounding per operation as the CPU; the same values up to
// the last bit of CUDA's double log / sin / cos (≤ 2 ulp in double: the floats
// almost always agree).
template <class T>
__global__ void normal_kernel(T* y, int64_t n, uint64_t seed, float mean, float stdev) {
  const int64_t pairs = (n + 1) / 2;
  const double dm = mean, ds = stdev;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < pairs; i += int64_t(gridDim.x) * blockDim.x) {
    const uint64_t base = seed * 0xD1B54A32D192ED03ull + 2 * static_cast<uint64_t>(i);
    const uint64_t r1 = mix64(base), r2 = mix64(base + 1);
    const double u1 = __dmul_rn(static_cast<double>(r1 >> 11) + 1.0, 1.0 / 9007199254740992.0);  // (0, 1]
    const double u2 = __dmul_rn(static_cast<double>(r2 >> 11), 1.0 / 9007199254740992.0);        // [0, 1)
    const double rad = sqrt(__dmul_rn(-2.0, log(u1)));
    double s, c;
    sincos(__dmul_rn(6.283185307179586, u2), &s, &c);
    y[2 * i] = from_f32<T>(static_cast<float>(__dadd_rn(dm, __dmul_rn(ds, __dmul_rn(rad, c)))));
    if (2 * i + 1 < n) y[2 * i + 1] = from_f32<T>(static_cast<float>(__dadd_rn(dm, __dmul_rn(ds, __dmul_rn(rad, s)))));
  }
}

// ---------------------------------------------------------------- strided copy
// y: contiguous 1-d over n, x: contiguous 1-d over n
template <class Y, class X>
__global__ void copy_contig_kernel(Y* __restrict__ y, const X* __restrict__ x, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = convert<Y>(x[i]);
}
// general: operand 0 of the plan is y, operand 1 is x
template <class Y, class X>
__global__ void copy_nd_kernel(Y* __restrict__ y, const X* __restrict__ x, NdPlan p) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < p.numel; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[2];
    nd_offsets<2>(p, i, off);
    y[off[0]] = convert<Y>(x[off[1]]);
  }
}

}  // namespace

// ---------------------------------------------------------------- entries
int fill(void* y, tk_dtype dt, int64_t n, double value) {
  if (n <= 0) return 0;
  switch (dt) {
    case TK_F32: return fill_pattern<uint32_t>(y, n, [&] { float f = static_cast<float>(value); uint32_t u; std::memcpy(&u, &f, 4); return u; }());
    case TK_BF16: return fill_pattern<uint16_t>(y, n, host_f32_to_bf16(narrow_round_odd(value)));
    case TK_F16: {
      __half h = __float2half_rn(narrow_round_odd(value));
      uint16_t u;
      std::memcpy(&u, &h, 2);
      return fill_pattern<uint16_t>(y, n, u);
    }
    case TK_I32: case TK_I8: {
      // the addon passes valid integers; anything else saturates (NaN: 0) like a cast
      const double lo = dt == TK_I32 ? -2147483648.0 : -128.0, hi = dt == TK_I32 ? 2147483647.0 : 127.0;
      double v = value != value ? 0.0 : std::trunc(value < lo ? lo : (value > hi ? hi : value));
      if (dt == TK_I32) return fill_pattern<uint32_t>(y, n, static_cast<uint32_t>(static_cast<int32_t>(v)));
      return fill_pattern<uint8_t>(y, n, static_cast<uint8_t>(static_cast<int8_t>(v)));
    }
  }
  return fail("fill: unknown dtype %d", int(dt));
}

int random(void* y, tk_dtype dt, int64_t n, uint64_t seed, int normal, float a, float b) {
  if (n <= 0) return 0;
  TK_DISPATCH_FLOAT("random", dt, {
    if (normal)
      normal_kernel<T><<<grid_for((n + 1) / 2, kThreads), kThreads, 0, stream()>>>(static_cast<T*>(y), n, seed, a, b);
    else
      uniform_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(static_cast<T*>(y), n, seed, a, b);
  });
  return launched("random");
}

int copy_strided(void* y, tk_dtype ydt, const int64_t* y_strides, const void* x, tk_dtype xdt,
                 const int64_t* x_strides, int ndim, const int64_t* sizes) {
  if (ndim < 0 || ndim > TK_MAX_DIMS) return fail("copy_strided: %d dimensions (at most %d)", ndim, TK_MAX_DIMS);
  for (int k = 0; k < ndim; ++k)
    if (sizes[k] <= 0) return 0;  // empty (negative sizes do not happen: the addon checks)
  const int64_t* strides[2] = {y_strides, x_strides};
  const NdPlan p = make_nd_plan(ndim, sizes, 2, strides);
  // both contiguous over the whole space (a single element counts as contiguous)
  const bool contig = p.nd == 1 && (p.size[0] == 1 || (p.st[0][0] == 1 && p.st[1][0] == 1));
  if (contig && ydt == xdt) {
    cudaError_t e = cudaMemcpyAsync(y, x, size_t(p.numel) * dtype_bytes(ydt), cudaMemcpyDeviceToDevice, stream());
    if (e != cudaSuccess) {
      cudaGetLastError();
      return fail("copy_strided: %s", cudaGetErrorString(e));
    }
    return launched("copy_strided");
  }
  return with_dtype(ydt, "copy_strided", [&](auto yt) {
    return with_dtype(xdt, "copy_strided", [&](auto xt) {
      using Y = decltype(yt);
      using X = decltype(xt);
      if (contig)
        copy_contig_kernel<Y, X><<<grid_for(p.numel, kThreads), kThreads, 0, stream()>>>(
            static_cast<Y*>(y), static_cast<const X*>(x), p.numel);
      else
        copy_nd_kernel<Y, X><<<grid_for(p.numel, kThreads), kThreads, 0, stream()>>>(static_cast<Y*>(y),
                                                                                     static_cast<const X*>(x), p);
      return launched("copy_strided");
    });
  });
}

}  // namespace tkc
