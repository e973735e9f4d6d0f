// The backend's runtime: one device, one non-blocking stream, the caching
// allocator, copies, synchronization and the error text of the last failure.
#include <cstdarg>
#include <cstring>
#include <mutex>
#include <string>

#include "caching_allocator.h"
#include "common.cuh"
#include "ops.h"

namespace tkc {
namespace {

thread_local char t_error[1024] = "";
int g_device = -1;
cudaStream_t g_stream = nullptr;
int g_sm_count = 0;
bool g_sync_mode = false;
std::mutex g_init_mu;

void* raw_alloc(size_t bytes) {
  void* p = nullptr;
  if (cudaMalloc(&p, bytes) != cudaSuccess) {
    cudaGetLastError();  // an out-of-memory error is not sticky: clear it
    return nullptr;
  }
  return p;
}
void raw_free(void* p) { cudaFree(p); }
void raw_sync() {
  if (g_stream) cudaStreamSynchronize(g_stream);
}

CachingAllocator& allocator() {
  static CachingAllocator* a = new CachingAllocator({raw_alloc, raw_free, raw_sync});  // never destroyed: outlives exit-time frees
  return *a;
}

int cuda_fail(cudaError_t e, const char* what) {
  return fail("%s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
}

}  // namespace

int fail(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(t_error, sizeof(t_error), fmt, ap);
  va_end(ap);
  return -1;
}

const char* last_error() { return t_error; }

cudaStream_t stream() { return g_stream; }
int sm_count() { return g_sm_count; }

int launched(const char* op) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return fail("%s: kernel launch failed: %s", op, cudaGetErrorString(e));
  if (g_sync_mode) {
    e = cudaStreamSynchronize(g_stream);
    if (e != cudaSuccess) return fail("%s: kernel failed: %s (%s)", op, cudaGetErrorString(e), cudaGetErrorName(e));
  }
  return 0;
}

int init(int device) {
  std::lock_guard<std::mutex> lock(g_init_mu);
  if (g_stream) return device == g_device ? 0 : fail("init: the backend already runs on device %d", g_device);
  cudaError_t e = cudaSetDevice(device);
  if (e != cudaSuccess) return cuda_fail(e, "init: cudaSetDevice");
  e = cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking);
  if (e != cudaSuccess) {
    g_stream = nullptr;
    return cuda_fail(e, "init: cudaStreamCreate");
  }
  cudaDeviceGetAttribute(&g_sm_count, cudaDevAttrMultiProcessorCount, device);
  g_device = device;
  return 0;
}

void* alloc(size_t bytes) {
  if (!g_stream) {
    fail("alloc: the CUDA backend is not initialized");
    return nullptr;
  }
  void* p = allocator().allocate(bytes ? bytes : 1);
  if (!p) {
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    fail("CUDA out of memory: tried to allocate %zu bytes (%zu free of %zu)", bytes, free_b, total_b);
  }
  return p;
}

void release(void* p) { allocator().release(p); }

void* scratch_alloc(size_t bytes) { return alloc(bytes); }
void scratch_free(void* p) { release(p); }

void memory_stats(tk_memory_stats* out) {
  AllocatorStats s = allocator().stats();
  std::memset(out, 0, sizeof(*out));
  out->allocated_bytes = s.allocated_bytes;
  out->reserved_bytes = s.reserved_bytes;
  out->peak_bytes = s.peak_bytes;
  out->alloc_count = s.alloc_count;
  out->device_alloc_count = s.device_alloc_count;
  size_t free_b = 0, total_b = 0;
  if (g_stream && cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) {
    out->free_bytes = free_b;
    out->total_bytes = total_b;
  }
}

void reset_peak() { allocator().reset_peak(); }
void empty_cache() { allocator().empty_cache(); }
void set_sync_mode(int on) { g_sync_mode = on != 0; }

int synchronize() {
  if (!g_stream) return 0;
  cudaError_t e = cudaStreamSynchronize(g_stream);
  if (e != cudaSuccess)
    return fail("a CUDA kernel failed: %s (%s); the error may come from any op since the last synchronization "
                "(TUNEKIT_CUDA_SYNC=1 checks after every op)",
                cudaGetErrorString(e), cudaGetErrorName(e));
  return 0;
}

int memcpy_h2d(void* dst, const void* src, size_t bytes) {
  if (!bytes) return 0;
  cudaError_t e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, g_stream);
  if (e != cudaSuccess) return cuda_fail(e, "copy to the GPU");
  // the source is pageable host memory that the caller may reuse on return
  e = cudaStreamSynchronize(g_stream);
  if (e != cudaSuccess) return cuda_fail(e, "copy to the GPU");
  return 0;
}

int memcpy_d2h(void* dst, const void* src, size_t bytes) {
  if (bytes) {
    cudaError_t e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, g_stream);
    if (e != cudaSuccess) return cuda_fail(e, "copy from the GPU");
  }
  return synchronize();
}

int memcpy_d2d(void* dst, const void* src, size_t bytes) {
  if (!bytes) return 0;
  cudaError_t e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, g_stream);
  if (e != cudaSuccess) return cuda_fail(e, "copy on the GPU");
  return launched("copy");
}

}  // namespace tkc
