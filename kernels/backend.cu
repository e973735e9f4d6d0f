// Entry point of the CUDA backend library: device discovery behind the C ABI
// of native/include/tunekit/backend.h. The op kernels (one .cu per op family)
// register here as they land.
#include <dlfcn.h>

#include <cstring>

#include "common.cuh"
#include "tunekit/backend.h"

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

const tk_backend_api kApi = {TK_BACKEND_ABI_VERSION, device_count, device_info};

}  // namespace

TK_EXPORT const tk_backend_api* tk_backend_get_api(int abi_version) {
  return abi_version == TK_BACKEND_ABI_VERSION ? &kApi : nullptr;
}
