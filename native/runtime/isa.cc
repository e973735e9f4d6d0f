#include "isa.h"

#include <cpuid.h>

#include <atomic>
#include <cstdlib>

namespace tk {
namespace {

uint64_t xgetbv0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

struct Features {
  bool avx2 = false, avx512 = false;
  Features() {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    bool osxsave = c & (1u << 27), fma = c & (1u << 12), avx = c & (1u << 28);
    if (!osxsave || !avx) return;
    uint64_t xcr0 = xgetbv0();
    bool ymm_os = (xcr0 & 0x6) == 0x6;
    bool zmm_os = (xcr0 & 0xe6) == 0xe6;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return;
    bool avx2_bit = b & (1u << 5);
    bool f = b & (1u << 16), dq = b & (1u << 17), bw = b & (1u << 30), vl = b & (1u << 31);
    avx2 = ymm_os && fma && avx2_bit;
    avx512 = avx2 && zmm_os && f && dq && bw && vl;
  }
};

const Features& features() {
  static Features f;
  return f;
}

const KernelTable* table_for(const std::string& isa) {
  if (isa == "scalar") return &kernels_scalar();
  if (isa == "avx2") return &kernels_avx2();
  if (isa == "avx512") return &kernels_avx512();
  return nullptr;
}

std::atomic<const KernelTable*> g_active{nullptr};

}  // namespace

bool cpu_supports(const std::string& isa) {
  if (isa == "scalar") return true;
  if (isa == "avx2") return features().avx2;
  if (isa == "avx512") return features().avx512;
  return false;
}

std::string best_isa() {
  if (features().avx512) return "avx512";
  if (features().avx2) return "avx2";
  return "scalar";
}

const KernelTable& kt() {
  const KernelTable* t = g_active.load(std::memory_order_acquire);
  if (t) return *t;
  std::string want = best_isa();
  if (const char* env = std::getenv("TUNEKIT_ISA")) {
    std::string e(env);
    // An unsupported request falls back to the best ISA (tunekit's backend() shows which).
    if (table_for(e) && cpu_supports(e)) want = e;
  }
  t = table_for(want);
  g_active.store(t, std::memory_order_release);
  return *t;
}

std::string set_isa(const std::string& isa) {
  const KernelTable* t = table_for(isa);
  if (!t) return "unknown ISA '" + isa + "' (expected scalar, avx2 or avx512)";
  if (!cpu_supports(isa)) return "this CPU does not support " + isa;
  g_active.store(t, std::memory_order_release);
  return "";
}

const char* active_isa() { return kt().name; }

}  // namespace tk
