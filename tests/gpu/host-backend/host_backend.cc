// A test double of the CUDA backend library for machines without a GPU: it
// implements the runtime half of the C ABI (native/include/tunekit/backend.h)
// over host memory, with the backend's own caching allocator
// (kernels/caching_allocator.h) and a capacity set by TUNEKIT_TEST_DEVICE_BYTES,
// plus fill, copy_strided and binary in plain loops (f32 only). That is enough
// to test the addon's device plumbing (tensor.to('cuda'), device checks,
// dispose and the garbage-collector sweep, memory statistics, out of memory,
// errors surfacing at synchronization) in CI. Every other kernel entry fails
// with a message that names this library. It is built by tests/gpu/plumbing.test.ts
// and loaded only through TUNEKIT_CUDA_LIB; it is never shipped or found by default.
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "../../../kernels/caching_allocator.h"
#include "tunekit/backend.h"

namespace {

thread_local char g_err[512] = "";
size_t g_capacity = 64u << 20, g_used = 0;
int g_pending_fault = 0;  // TUNEKIT_TEST_FAULT_AFTER: fail the n-th synchronize-visible op

int fail(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(g_err, sizeof(g_err), fmt, ap);
  va_end(ap);
  return -1;
}

void* raw_alloc(size_t b) {
  if (g_used + b > g_capacity) return nullptr;
  void* p = std::aligned_alloc(256, (b + 255) / 256 * 256);
  if (p) g_used += b;
  return p;
}
std::unordered_map<void*, size_t>& raw_sizes() {
  static auto* m = new std::unordered_map<void*, size_t>();
  return *m;
}
void* raw_alloc_tracked(size_t b) {
  void* p = raw_alloc(b);
  if (p) raw_sizes()[p] = b;
  return p;
}
void raw_free(void* p) {
  g_used -= raw_sizes()[p];
  raw_sizes().erase(p);
  std::free(p);
}
void raw_sync() {}

tkc::CachingAllocator& alloc_() {
  static auto* a = new tkc::CachingAllocator({raw_alloc_tracked, raw_free, raw_sync});
  return *a;
}

int device_count(char*, size_t) { return 1; }
int device_info(int, tk_device_info* out) {
  std::memset(out, 0, sizeof(*out));
  std::snprintf(out->name, sizeof(out->name), "tunekit host test backend");
  out->cc_major = 0;
  out->cc_minor = 0;
  out->memory_bytes = g_capacity;
  return 0;
}
const char* last_error() { return g_err; }
int init(int) {
  if (const char* c = std::getenv("TUNEKIT_TEST_DEVICE_BYTES")) g_capacity = std::strtoull(c, nullptr, 10);
  return 0;
}
void* alloc(size_t bytes) {
  void* p = alloc_().allocate(bytes ? bytes : 1);
  if (!p) fail("CUDA out of memory: tried to allocate %zu bytes (%zu free of %zu)", bytes, g_capacity - g_used, g_capacity);
  return p;
}
void release(void* p) { alloc_().release(p); }
void memory_stats(tk_memory_stats* out) {
  tkc::AllocatorStats s = alloc_().stats();
  std::memset(out, 0, sizeof(*out));
  out->allocated_bytes = s.allocated_bytes;
  out->reserved_bytes = s.reserved_bytes;
  out->peak_bytes = s.peak_bytes;
  out->alloc_count = s.alloc_count;
  out->device_alloc_count = s.device_alloc_count;
  out->free_bytes = g_capacity - g_used;
  out->total_bytes = g_capacity;
}
void reset_peak() { alloc_().reset_peak(); }
void empty_cache() { alloc_().empty_cache(); }
void set_sync_mode(int) {}
// A fault "inside a kernel" that surfaces at the next synchronization, as on a GPU.
int synchronize() {
  if (g_pending_fault) {
    g_pending_fault = 0;
    return fail("a CUDA kernel failed: an illegal memory access was encountered (cudaErrorIllegalAddress)");
  }
  return 0;
}
int memcpy_h2d(void* d, const void* s, size_t b) {
  std::memcpy(d, s, b);
  return 0;
}
int memcpy_d2h(void* d, const void* s, size_t b) {
  std::memcpy(d, s, b);
  return synchronize();
}
int memcpy_d2d(void* d, const void* s, size_t b) {
  std::memmove(d, s, b);
  return 0;
}

size_t dsize(tk_dtype d) { return d == TK_I8 ? 1 : (d == TK_BF16 || d == TK_F16) ? 2 : 4; }

int fill(void* y, tk_dtype dt, int64_t n, double v) {
  if (dt != TK_F32 && dt != TK_I32) return fail("fill: the host test backend fills f32 and i32 only");
  // a NaN fill of f32 schedules a fault: the tests' way to inject one
  if (dt == TK_F32 && v != v && std::getenv("TUNEKIT_TEST_FAULT_ON_NAN_FILL")) g_pending_fault = 1;
  for (int64_t i = 0; i < n; ++i) {
    if (dt == TK_F32) static_cast<float*>(y)[i] = float(v);
    else static_cast<int32_t*>(y)[i] = int32_t(v);
  }
  return 0;
}

// the offset of flat index i over sizes, with strides
int64_t offset(int64_t i, int ndim, const int64_t* sizes, const int64_t* strides) {
  int64_t off = 0;
  for (int k = ndim - 1; k >= 0; --k) {
    off += (i % sizes[k]) * strides[k];
    i /= sizes[k];
  }
  return off;
}

int copy_strided(void* y, tk_dtype ydt, const int64_t* ys, const void* x, tk_dtype xdt, const int64_t* xs, int ndim,
                 const int64_t* sizes) {
  if (ydt != xdt) return fail("copy_strided: the host test backend does not convert dtypes");
  int64_t n = 1;
  for (int k = 0; k < ndim; ++k) n *= sizes[k];
  size_t es = dsize(ydt);
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(static_cast<char*>(y) + offset(i, ndim, sizes, ys) * es,
                static_cast<const char*>(x) + offset(i, ndim, sizes, xs) * es, es);
  return 0;
}

int binary(tk_binary_op op, tk_dtype dt, const void* a, const int64_t* as, const void* b, const int64_t* bs, void* y,
           int ndim, const int64_t* sizes) {
  if (dt != TK_F32) return fail("binary: the host test backend computes f32 only");
  int64_t n = 1;
  for (int k = 0; k < ndim; ++k) n *= sizes[k];
  for (int64_t i = 0; i < n; ++i) {
    float u = static_cast<const float*>(a)[offset(i, ndim, sizes, as)];
    float v = static_cast<const float*>(b)[offset(i, ndim, sizes, bs)];
    static_cast<float*>(y)[i] = op == TK_ADD ? u + v : op == TK_SUB ? u - v : op == TK_MUL ? u * v : u / v;
  }
  return 0;
}

tk_backend_api make() {
  tk_backend_api a;
  std::memset(&a, 0, sizeof(a));
  a.abi_version = TK_BACKEND_ABI_VERSION;
  a.device_count = device_count;
  a.device_info = device_info;
  a.last_error = last_error;
  a.init = init;
  a.alloc = alloc;
  a.free = release;
  a.memory_stats = memory_stats;
  a.reset_peak = reset_peak;
  a.empty_cache = empty_cache;
  a.set_sync_mode = set_sync_mode;
  a.synchronize = synchronize;
  a.memcpy_h2d = memcpy_h2d;
  a.memcpy_d2h = memcpy_d2h;
  a.memcpy_d2d = memcpy_d2d;
  a.fill = fill;
  a.copy_strided = copy_strided;
  a.binary = binary;
  return a;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) const tk_backend_api* tk_backend_get_api(int v) {
  static tk_backend_api api = make();
  return v == TK_BACKEND_ABI_VERSION ? &api : nullptr;
}
