// Device memory of CUDA tensors. A block comes from the backend's caching
// allocator and is tied to the tensor's storage ArrayBuffer: dispose() gives
// it back at once; a storage that the garbage collector took without a
// dispose is found by a sweep (weak references, whose value is gone as soon
// as the collector has run, without waiting for finalizers), which runs every
// so many allocations and before an out-of-memory error is reported. Device
// bytes are reported to V8 as external memory so that allocation pressure
// triggers collections.
#pragma once
#include <napi.h>

#include <cstddef>
#include <cstdint>

namespace tk {

// A device block of `bytes` tied to storage_ab; *slot receives its registry
// slot. Throws a RangeError naming op ("CUDA out of memory: ...") on failure.
void* cuda_storage_alloc(napi_env env, const char* op, size_t bytes, napi_value storage_ab, int64_t* slot);
// Frees the block of a registry slot now (dispose). Idempotent per slot use.
void cuda_storage_release(napi_env env, int64_t slot);
// Frees the blocks whose storage was collected; returns how many.
int64_t cuda_storage_sweep(napi_env env);
// Blocks held by live (not yet swept) tensors.
int64_t cuda_storage_live();

}  // namespace tk
