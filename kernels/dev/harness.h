// Shared pieces of the kernels/dev/<op>.cu check-and-bench harnesses: each
// harness fills inputs with fresh random numbers (never zeros), poisons the
// outputs with NaN before the kernel runs, checks the result against a plain
// float64 host reference by relative norm error, times the kernel with CUDA
// events and prints one line per case:
//   op  shape  dtype  ms  achieved (TFLOP/s or GB/s)  % of the device limit  rel.err  PASS|FAIL
// Exit status 1 when any case fails. Built by -DTUNEKIT_CUDA_DEV=ON.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "../common.cuh"
#include "../ops.h"
#include "tunekit/backend.h"

namespace dev {

extern "C" const tk_backend_api* tk_backend_get_api(int abi_version);

inline const tk_backend_api& api() {
  static const tk_backend_api* a = [] {
    const tk_backend_api* p = tk_backend_get_api(TK_BACKEND_ABI_VERSION);
    if (!p || p->init(0) != 0) {
      std::fprintf(stderr, "cannot start the CUDA backend: %s\n", p ? p->last_error() : "no api");
      std::exit(2);
    }
    return p;
  }();
  return *a;
}

inline void ok(int rc, const char* what) {
  if (rc != 0) {
    std::fprintf(stderr, "%s failed: %s\n", what, api().last_error());
    std::exit(2);
  }
}

inline std::vector<float> randn(size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

// bf16 round trip of host values (what the device sees)
inline float round_bf16(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }

// n values uniform in [-scale, scale) from the counter `state` (advanced; a zero
// draw becomes scale / 2: never zeros), rounded to bf16 when dt is bf16
inline std::vector<float> uniform_vec(size_t n, tk_dtype dt, uint64_t& state, float scale = 1.0f) {
  std::vector<float> v(n);
  for (auto& x : v) {
    x = scale * (static_cast<float>(tkc::mix64(state++) >> 40) * (2.0f / 16777216.0f) - 1.0f);
    if (x == 0.0f) x = scale * 0.5f;
    if (dt == TK_BF16) x = round_bf16(x);
  }
  return v;
}

// A device buffer of dtype dt holding host values (rounded for bf16).
inline void* upload(const std::vector<float>& h, tk_dtype dt) {
  size_t n = h.size();
  void* d = api().alloc(n * (dt == TK_BF16 ? 2 : 4) + 16);
  if (!d) { std::fprintf(stderr, "alloc: %s\n", api().last_error()); std::exit(2); }
  if (dt == TK_BF16) {
    std::vector<__nv_bfloat16> b(n);
    for (size_t i = 0; i < n; ++i) b[i] = __float2bfloat16_rn(h[i]);
    ok(api().memcpy_h2d(d, b.data(), n * 2), "upload");
  } else {
    ok(api().memcpy_h2d(d, h.data(), n * 4), "upload");
  }
  return d;
}

// A device output of n elements filled with NaN (poison).
inline void* poisoned(size_t n, tk_dtype dt) {
  void* d = api().alloc(n * (dt == TK_BF16 ? 2 : 4) + 16);
  ok(api().fill(d, dt, int64_t(n), NAN), "poison");
  return d;
}

inline std::vector<float> download(const void* d, size_t n, tk_dtype dt) {
  std::vector<float> h(n);
  if (dt == TK_BF16) {
    std::vector<__nv_bfloat16> b(n);
    ok(api().memcpy_d2h(b.data(), d, n * 2), "download");
    for (size_t i = 0; i < n; ++i) h[i] = __bfloat162float(b[i]);
  } else {
    ok(api().memcpy_d2h(h.data(), d, n * 4), "download");
  }
  return h;
}

// ‖got − ref‖ / ‖ref‖ (NaN anywhere gives NaN)
inline double rel_err(const std::vector<float>& got, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    double d = double(got[i]) - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  return std::sqrt(num / (den > 0 ? den : 1));
}

// Mean milliseconds of fn over `iters` runs after `warmup` runs.
template <class F>
double time_ms(F&& fn, int iters = 20, int warmup = 3) {
  for (int i = 0; i < warmup; ++i) fn();
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  cudaEventRecord(a, tkc::stream());
  for (int i = 0; i < iters; ++i) fn();
  cudaEventRecord(b, tkc::stream());
  cudaEventSynchronize(b);
  float ms = 0;
  cudaEventElapsedTime(&ms, a, b);
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  ok(api().synchronize(), "synchronize");
  return ms / iters;
}

// Device limits for the "% of limit" column: dense bf16 tensor-core peak
// (TFLOP/s) and DRAM bandwidth (GB/s) from the device properties.
struct Limits {
  double bf16_tflops, dram_gbs;
  std::string name;
};
inline Limits limits() {
  cudaDeviceProp p;
  cudaGetDeviceProperties(&p, 0);
  int clock_khz = 0, mem_khz = 0, bus_bits = 0;
  cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, 0);
  cudaDeviceGetAttribute(&mem_khz, cudaDevAttrMemoryClockRate, 0);
  cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, 0);
  // dense bf16 FLOP per SM per clock: 1024 on sm_80 (A100), 2048 on sm_90 (H100)
  double per_sm = p.major >= 9 ? 4096.0 : 2048.0;  // counted as 2 FLOP per FMA
  Limits l;
  l.bf16_tflops = per_sm * p.multiProcessorCount * (clock_khz * 1e3) / 1e12;
  l.dram_gbs = 2.0 * (mem_khz * 1e3) * (bus_bits / 8.0) / 1e9;
  l.name = p.name;
  return l;
}

inline int g_failures = 0;
// Prints one result line; `work` is FLOPs (flops = true) or bytes moved.
inline void report(const char* op, const std::string& shape, tk_dtype dt, double ms, double work, bool flops,
                   double err, double tol) {
  Limits l = limits();
  double rate = work / (ms * 1e-3);
  double pct = flops ? 100.0 * rate / (l.bf16_tflops * 1e12) : 100.0 * rate / (l.dram_gbs * 1e9);
  bool pass = std::isfinite(err) && err <= tol;
  if (!pass) ++g_failures;
  std::printf("%-22s %-28s %-5s %9.4f ms %9.2f %-6s %6.1f%% of limit  err %.2e (tol %.0e) %s\n", op, shape.c_str(),
              dt == TK_BF16 ? "bf16" : "f32", ms, flops ? rate / 1e12 : rate / 1e9, flops ? "TFLOP/s" : "GB/s", pct,
              err, tol, pass ? "PASS" : "FAIL");
}

}  // namespace dev
