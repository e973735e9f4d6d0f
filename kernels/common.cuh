// Shared helpers of the CUDA backend: errors, the stream, dtype loads and
// stores, launch checks. Every kernel file includes this and ops.h.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>

#include "tunekit/backend.h"

#define TK_EXPORT extern "C" __attribute__((visibility("default")))

// Writes "what: cuda error text" into msg and returns false on failure.
inline bool tk_cuda_ok(cudaError_t e, const char* what, char* msg, size_t len) {
  if (e == cudaSuccess) return true;
  if (msg && len) std::snprintf(msg, len, "%s: %s", what, cudaGetErrorString(e));
  return false;
}

namespace tkc {

using bf16 = __nv_bfloat16;

// ---- runtime (runtime.cu)
cudaStream_t stream();
// Writes the reason (printf-style) to last_error() and returns -1.
int fail(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
// After a launch: -1 naming `op` when the launch failed (or, in sync mode,
// when the kernel faulted); 0 otherwise.
int launched(const char* op);
// Temporary device memory from the caching allocator (stream-ordered: a
// block freed here is reused only by work enqueued later on the stream).
void* scratch_alloc(size_t bytes);
void scratch_free(void* p);
// SM count of the device (for grid sizing).
int sm_count();

// ---- dtype helpers: every kernel computes in f32
template <class T> __device__ __forceinline__ float to_f32(T v);
template <> __device__ __forceinline__ float to_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ float to_f32<bf16>(bf16 v) { return __bfloat162float(v); }
template <class T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ bf16 from_f32<bf16>(float v) { return __float2bfloat16_rn(v); }

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
// A grid of at most `cap` blocks for a grid-stride loop over n items.
inline unsigned grid_for(int64_t n, int threads, int64_t cap = 65535LL * 8) {
  int64_t g = ceil_div(n, threads);
  if (g < 1) g = 1;
  return static_cast<unsigned>(g < cap ? g : cap);
}

// Counter-based random bits, the same as tk::mix64 / tk::uniform01 on the CPU
// (native/cpu/kernels.h), so that a seed gives the same values on both.
__host__ __device__ __forceinline__ uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
__host__ __device__ __forceinline__ float uniform01(uint64_t seed, uint64_t i) {
  return static_cast<float>(mix64(seed * 0x9E3779B97F4A7C15ull + i) >> 40) * (1.0f / 16777216.0f);
}

}  // namespace tkc

// Runs `body` with T = float or T = bf16 according to dt; other dtypes fail
// naming the op. Usage: TK_DISPATCH_FLOAT("softmax", dt, { launch<T>(...); });
#define TK_DISPATCH_FLOAT(OP, DT, ...)                                              \
  do {                                                                              \
    if ((DT) == TK_F32) {                                                           \
      using T = float;                                                              \
      __VA_ARGS__                                                                   \
    } else if ((DT) == TK_BF16) {                                                   \
      using T = ::tkc::bf16;                                                        \
      __VA_ARGS__                                                                   \
    } else {                                                                        \
      return ::tkc::fail("%s: dtype %d is not supported on CUDA (f32 or bf16)", OP, int(DT)); \
    }                                                                               \
  } while (0)
