#include "cuda_storage.h"

#include <string>
#include <vector>

#include "../runtime/cuda_loader.h"
#include "tensor_wrap.h"

namespace tk {
namespace {

struct Slot {
  napi_ref ref = nullptr;  // weak: to the storage ArrayBuffer
  void* block = nullptr;
  size_t bytes = 0;
};

// One registry per thread: a worker thread has an environment of its own,
// and references belong to the environment that made them.
struct Registry {
  std::vector<Slot> slots;
  std::vector<int64_t> free_slots;
  int64_t live = 0;
  int64_t allocs_since_sweep = 0;
};
thread_local Registry t_reg;

void free_slot(napi_env env, int64_t i) {
  Slot& s = t_reg.slots[size_t(i)];
  if (!s.block) return;
  if (const tk_backend_api* api = cuda_api()) api->free(s.block);
  int64_t change = 0;
  napi_adjust_external_memory(env, -int64_t(s.bytes), &change);
  if (s.ref) napi_delete_reference(env, s.ref);
  s = Slot{};
  t_reg.free_slots.push_back(i);
  --t_reg.live;
}

}  // namespace

int64_t cuda_storage_sweep(napi_env env) {
  int64_t freed = 0;
  for (size_t i = 0; i < t_reg.slots.size(); ++i) {
    Slot& s = t_reg.slots[i];
    if (!s.block) continue;
    napi_value v = nullptr;
    if (napi_get_reference_value(env, s.ref, &v) == napi_ok && v == nullptr) {
      free_slot(env, int64_t(i));
      ++freed;
    }
  }
  t_reg.allocs_since_sweep = 0;
  return freed;
}

void* cuda_storage_alloc(napi_env env, const char* op, size_t bytes, napi_value storage_ab, int64_t* slot) {
  const tk_backend_api* api = cuda_api();
  if (!api) throw_type(env, op, "CUDA is not available: " + cuda_status().reason);
  // amortized O(1): a sweep costs O(live) and runs after that many allocations
  if (++t_reg.allocs_since_sweep > (t_reg.live > 256 ? t_reg.live : 256)) cuda_storage_sweep(env);
  void* block = api->alloc(bytes);
  if (!block) {
    std::string first = api->last_error();
    if (cuda_storage_sweep(env) > 0) block = api->alloc(bytes);
    if (!block) throw_range(env, op, first);
  }
  napi_ref ref = nullptr;
  if (napi_create_reference(env, storage_ab, 0, &ref) != napi_ok) {
    api->free(block);
    throw_range(env, op, "internal error: napi_create_reference");
  }
  int64_t i;
  if (!t_reg.free_slots.empty()) {
    i = t_reg.free_slots.back();
    t_reg.free_slots.pop_back();
  } else {
    i = int64_t(t_reg.slots.size());
    t_reg.slots.emplace_back();
  }
  t_reg.slots[size_t(i)] = Slot{ref, block, bytes};
  ++t_reg.live;
  int64_t change = 0;
  napi_adjust_external_memory(env, int64_t(bytes), &change);
  *slot = i;
  return block;
}

void cuda_storage_release(napi_env env, int64_t slot) {
  if (slot < 0 || size_t(slot) >= t_reg.slots.size()) return;
  free_slot(env, slot);
}

int64_t cuda_storage_live() { return t_reg.live; }

}  // namespace tk
