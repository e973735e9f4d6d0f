/* The C ABI between the core addon and the CUDA backend library.
 * Plain structs and function pointers only, so that the two sides can be
 * built by different compilers (g++ for the addon, nvcc for kernels/).
 * The core opens the library with dlopen and calls tk_backend_get_api. */
#ifndef TUNEKIT_BACKEND_H
#define TUNEKIT_BACKEND_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TK_BACKEND_ABI_VERSION 1

typedef struct tk_device_info {
  char name[256];
  int cc_major, cc_minor;
  uint64_t memory_bytes;
} tk_device_info;

typedef struct tk_backend_api {
  int abi_version;
  /* number of devices (>= 0), or -1 with a reason written to msg */
  int (*device_count)(char* msg, size_t msg_len);
  int (*device_info)(int device, tk_device_info* out);
} tk_backend_api;

typedef const tk_backend_api* (*tk_backend_get_api_fn)(int abi_version);

#ifdef __cplusplus
}
#endif
#endif
