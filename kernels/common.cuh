// Shared helpers of the CUDA backend.
#pragma once
#include <cuda_runtime.h>

#include <cstdio>

#define TK_EXPORT extern "C" __attribute__((visibility("default")))

// Writes "what: cuda error text" into msg and returns false on failure.
inline bool tk_cuda_ok(cudaError_t e, const char* what, char* msg, size_t len) {
  if (e == cudaSuccess) return true;
  if (msg && len) std::snprintf(msg, len, "%s: %s", what, cudaGetErrorString(e));
  return false;
}
