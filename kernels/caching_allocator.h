// The caching device allocator of the CUDA backend, in plain C++ (no CUDA
// headers) so that its bookkeeping can be tested on any machine: the raw
// allocation functions are parameters.
//
// Blocks are rounded up to size classes (four per power of two, at least
// 512 bytes, so at most 25% is wasted) and a freed block goes to the free list
// of its class, where the next request of that class takes it without a
// driver call. With one stream per process, reuse is stream-ordered by
// construction: a block freed after some kernels were enqueued is handed to
// work enqueued later on the same stream, which runs after them.
// Out of memory: the cache is returned to the driver and the request retried
// once before the caller sees a failure.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace tkc {

struct RawDeviceMemory {
  void* (*alloc)(size_t bytes);  // nullptr on failure
  void (*free)(void* p);
  void (*synchronize)();  // before blocks go back to the driver
};

struct AllocatorStats {
  uint64_t allocated_bytes = 0, reserved_bytes = 0, peak_bytes = 0;
  uint64_t alloc_count = 0, device_alloc_count = 0;
};

class CachingAllocator {
 public:
  explicit CachingAllocator(RawDeviceMemory raw) : raw_(raw) {}
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // The size class of a request: 512 bytes at least, else the smallest of
  // 2^k, 1.25·2^k, 1.5·2^k, 1.75·2^k that holds it.
  static size_t size_class(size_t bytes) {
    if (bytes <= 512) return 512;
    int k = 63 - __builtin_clzll(static_cast<unsigned long long>(bytes - 1));  // 2^k < bytes ≤ 2^(k+1)
    size_t base = size_t(1) << k, quarter = base / 4;
    for (size_t c = base + quarter; c <= 2 * base; c += quarter)
      if (c >= bytes) return c;
    return 2 * base;
  }

  // A block of at least `bytes`; nullptr when the device has no room even
  // after the cache was emptied (the caller reports it).
  void* allocate(size_t bytes) {
    size_t cls = size_class(bytes);
    std::lock_guard<std::mutex> lock(mu_);
    void* p = nullptr;
    auto it = free_.find(cls);
    if (it != free_.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
    } else {
      p = raw_.alloc(cls);
      if (!p) {
        release_cached_locked();
        p = raw_.alloc(cls);
        if (!p) return nullptr;
      }
      stats_.reserved_bytes += cls;
      ++stats_.device_alloc_count;
    }
    live_[p] = cls;
    stats_.allocated_bytes += cls;
    if (stats_.allocated_bytes > stats_.peak_bytes) stats_.peak_bytes = stats_.allocated_bytes;
    ++stats_.alloc_count;
    return p;
  }

  // Returns a block to its free list; false when p was not handed out here.
  bool release(void* p) {
    if (!p) return true;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(p);
    if (it == live_.end()) return false;
    size_t cls = it->second;
    live_.erase(it);
    stats_.allocated_bytes -= cls;
    free_[cls].push_back(p);
    return true;
  }

  // Gives every cached (free) block back to the driver.
  void empty_cache() {
    std::lock_guard<std::mutex> lock(mu_);
    release_cached_locked();
  }

  AllocatorStats stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }
  void reset_peak() {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.peak_bytes = stats_.allocated_bytes;
  }
  // The size class a live block was given (0 when p is not live).
  size_t block_size(void* p) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(p);
    return it == live_.end() ? 0 : it->second;
  }

 private:
  void release_cached_locked() {
    bool any = false;
    for (auto& kv : free_) any = any || !kv.second.empty();
    if (!any) return;
    raw_.synchronize();  // no kernel still uses a block we hand back
    for (auto& kv : free_) {
      for (void* p : kv.second) {
        raw_.free(p);
        stats_.reserved_bytes -= kv.first;
      }
      kv.second.clear();
    }
  }

  RawDeviceMemory raw_;
  mutable std::mutex mu_;
  std::unordered_map<void*, size_t> live_;
  std::map<size_t, std::vector<void*>> free_;
  AllocatorStats stats_;
};

}  // namespace tkc
