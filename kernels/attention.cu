// Flash attention forward and backward (tk_attention_params, backend.h): the
// device execution context and the launches. The kernel bodies and the launch
// plan are in attention.cuh (shared with the CPU emulator of kernels/dev/attention.cu).
#include "attention.cuh"
#include "ops.h"

namespace tkc {
namespace attn {

extern __shared__ __align__(16) char tka_smem[];

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// The device side of the execution context of the bodies in attention.cuh.
struct DevCtx {
  __device__ __forceinline__ int tid() const { return int(threadIdx.x); }
  __device__ __forceinline__ int64_t bid() const { return int64_t(blockIdx.x); }
  __device__ __forceinline__ int64_t grid() const { return int64_t(gridDim.x); }
  __device__ __forceinline__ char* smem() const { return tka_smem; }
  __device__ __forceinline__ void sync() const { __syncthreads(); }
  __device__ __forceinline__ void syncwarp() const { __syncwarp(); }
  __device__ __forceinline__ float shfl_xor(float v, int m) const { return __shfl_xor_sync(0xffffffffu, v, m); }

  // address of p in the shared window (for ldmatrix)
  __device__ __forceinline__ uint32_t saddr(const void* p) const { return smem_u32(p); }
  __device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], uint32_t addr) const {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr)
                 : "memory");
  }
  __device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], uint32_t addr) const {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr)
                 : "memory");
  }
  // c += a · b, m16n8k16, bf16 inputs, f32 accumulation
  __device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) const {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  // 16 bytes global -> shared, zero-filled when !pred (no global read then)
  __device__ __forceinline__ void cp16(void* dst, const void* src, bool pred) const {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(dst)), "l"(src),
                 "r"(pred ? 16 : 0)
                 : "memory");
  }
  __device__ __forceinline__ void cp4(void* dst, const void* src, bool pred) const {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_u32(dst)), "l"(src), "r"(pred ? 4 : 0)
                 : "memory");
  }
  __device__ __forceinline__ void cp_commit() const { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
  __device__ __forceinline__ void cp_wait_all() const { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

  template <class T>
  __device__ __forceinline__ T lds(const T* p) const { return *p; }
  template <class T>
  __device__ __forceinline__ void sts(T* p, T v) const { *p = v; }
  template <class T>
  __device__ __forceinline__ T ldg(const T* p) const { return *p; }
  template <class T>
  __device__ __forceinline__ void stg(T* p, T v) const { *p = v; }
  __device__ __forceinline__ void atomic_add(float* p, float v) const { atomicAdd(p, v); }
  // p[0] += x, p[1] += y (p 8-byte aligned)
  __device__ __forceinline__ void atomic_add2(float* p, float x, float y) const {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("red.global.add.v2.f32 [%0], {%1, %2};\n" ::"l"(p), "f"(x), "f"(y) : "memory");
#else
    atomicAdd(p, x);
    atomicAdd(p + 1, y);
#endif
  }
  __device__ __forceinline__ float ex2(float x) const {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
  }
};

template <class K>
__global__ void __launch_bounds__(K::kThreads, K::kMinBlocks) attn_kernel(const Args a) {
  DevCtx c;
  K::template run<DevCtx>(c, a);
}

struct DevLauncher {
  template <class... A>
  int fail(const char* fmt, A... args) {
    return tkc::fail(fmt, args...);
  }
  template <class K>
  int launch(int64_t grid, const Args& a) {
    if (grid <= 0) return 0;
    if (grid > INT32_MAX) return tkc::fail("attention: grid of %lld blocks is too large", (long long)grid);
    if (K::kSmem > 48 * 1024) {
      // once per kernel: opt in to the dynamic shared memory it needs (-1: the device has too little)
      static int state = 0;
      if (state == 0) {
        int dev = 0, optin = 0;
        cudaGetDevice(&dev);
        cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
        if (optin < K::kSmem) {
          state = -1;
        } else {
          cudaError_t e = cudaFuncSetAttribute(attn_kernel<K>, cudaFuncAttributeMaxDynamicSharedMemorySize, K::kSmem);
          if (e != cudaSuccess) return tkc::fail("attention: cudaFuncSetAttribute: %s", cudaGetErrorString(e));
          state = 1;
        }
      }
      if (state < 0)
        return tkc::fail("attention: the kernel needs %d bytes of shared memory per block, more than this device has",
                         K::kSmem);
    }
    attn_kernel<K><<<unsigned(grid), K::kThreads, K::kSmem, tkc::stream()>>>(a);
    cudaError_t e = cudaPeekAtLastError();
    if (e != cudaSuccess) return tkc::launched("attention");
    return 0;
  }
  int zero(void* p, size_t bytes) {
    cudaError_t e = cudaMemsetAsync(p, 0, bytes, tkc::stream());
    return e == cudaSuccess ? 0 : tkc::fail("attention: cudaMemsetAsync: %s", cudaGetErrorString(e));
  }
  void* scratch(size_t bytes) { return tkc::scratch_alloc(bytes); }
  void release(void* p) { tkc::scratch_free(p); }
  int finish() { return tkc::launched("attention"); }
  int64_t grid_cap(int threads, int64_t work) {
    int64_t g = (work + threads - 1) / threads;
    int64_t cap = int64_t(tkc::sm_count() > 0 ? tkc::sm_count() : 132) * 8;
    return g < 1 ? 1 : g < cap ? g : cap;
  }
};

}  // namespace attn

int attention_forward(const tk_attention_params* p) {
  attn::DevLauncher l;
  return attn::forward_impl(l, p);
}

int attention_backward(const tk_attention_params* p) {
  attn::DevLauncher l;
  return attn::backward_impl(l, p);
}

}  // namespace tkc
