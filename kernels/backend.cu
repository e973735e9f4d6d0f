// Entry point of the CUDA backend library: device discovery and the table of
// runtime functions and kernels behind the C ABI of
// native/include/tunekit/backend.h.
#include <dlfcn.h>

#include <cstring>

#include "common.cuh"
#include "ops.h"

namespace tkc {
// runtime.cu
const char* last_error();
int init(int device);
void* alloc(size_t bytes);
void release(void* p);
void memory_stats(tk_memory_stats* out);
void reset_peak();
void empty_cache();
void set_sync_mode(int on);
int synchronize();
int memcpy_h2d(void* dst, const void* src, size_t bytes);
int memcpy_d2h(void* dst, const void* src, size_t bytes);
int memcpy_d2d(void* dst, const void* src, size_t bytes);
}  // namespace tkc

namespace {

int device_count(char* msg, size_t len) {
  // cudart reports a missing driver as "insufficient driver"; say what it is
  if (void* h = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL)) {
    dlclose(h);
  } else {
    std::snprintf(msg, len, "no driver: libcuda.so.1 (the NVIDIA driver) was not found");
    return -1;
  }
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e == cudaErrorNoDevice) {
    std::snprintf(msg, len, "no device: %s", cudaGetErrorString(e));
    return 0;
  }
  if (e == cudaErrorInsufficientDriver) {
    std::snprintf(msg, len, "driver too old for this CUDA runtime: %s", cudaGetErrorString(e));
    return -1;
  }
  if (e != cudaSuccess) {
    std::snprintf(msg, len, "no driver or device: %s", cudaGetErrorString(e));
    return -1;
  }
  return n;
}

int device_info(int device, tk_device_info* out) {
  cudaDeviceProp p;
  if (cudaGetDeviceProperties(&p, device) != cudaSuccess) return -1;
  std::memset(out, 0, sizeof(*out));
  std::strncpy(out->name, p.name, sizeof(out->name) - 1);
  out->cc_major = p.major;
  out->cc_minor = p.minor;
  out->memory_bytes = p.totalGlobalMem;
  return 0;
}

tk_backend_api make_api() {
  tk_backend_api a;
  std::memset(&a, 0, sizeof(a));
  a.abi_version = TK_BACKEND_ABI_VERSION;
  a.device_count = device_count;
  a.device_info = device_info;
  a.last_error = tkc::last_error;
  a.init = tkc::init;
  a.alloc = tkc::alloc;
  a.free = tkc::release;
  a.memory_stats = tkc::memory_stats;
  a.reset_peak = tkc::reset_peak;
  a.empty_cache = tkc::empty_cache;
  a.set_sync_mode = tkc::set_sync_mode;
  a.synchronize = tkc::synchronize;
  a.memcpy_h2d = tkc::memcpy_h2d;
  a.memcpy_d2h = tkc::memcpy_d2h;
  a.memcpy_d2d = tkc::memcpy_d2d;
  a.fill = tkc::fill;
  a.random = tkc::random;
  a.copy_strided = tkc::copy_strided;
  a.unary_forward = tkc::unary_forward;
  a.unary_backward = tkc::unary_backward;
  a.binary = tkc::binary;
  a.where = tkc::where;
  a.reduce_axis = tkc::reduce_axis;
  a.max_backward = tkc::max_backward;
  a.softmax_forward = tkc::softmax_forward;
  a.softmax_backward = tkc::softmax_backward;
  a.sum_squares = tkc::sum_squares;
  a.cross_entropy_forward = tkc::cross_entropy_forward;
  a.cross_entropy_backward = tkc::cross_entropy_backward;
  a.layer_norm_forward = tkc::layer_norm_forward;
  a.layer_norm_backward = tkc::layer_norm_backward;
  a.rms_norm_forward = tkc::rms_norm_forward;
  a.rms_norm_backward = tkc::rms_norm_backward;
  a.embedding_forward = tkc::embedding_forward;
  a.embedding_backward = tkc::embedding_backward;
  a.dropout = tkc::dropout;
  a.rope = tkc::rope;
  a.gemm = tkc::gemm;
  a.lora_forward = tkc::lora_forward;
  a.attention_forward = tkc::attention_forward;
  a.attention_backward = tkc::attention_backward;
  a.quantize_rows_int8 = tkc::quantize_rows_int8;
  a.int8_gemm = tkc::int8_gemm;
  a.gae = tkc::gae;
  a.adamw_step = tkc::adamw_step;
  a.sgd_step = tkc::sgd_step;
  a.scale_inplace = tkc::scale_inplace;
  return a;
}

const tk_backend_api kApi = make_api();

}  // namespace

TK_EXPORT const tk_backend_api* tk_backend_get_api(int abi_version) {
  return abi_version == TK_BACKEND_ABI_VERSION ? &kApi : nullptr;
}
