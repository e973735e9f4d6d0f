// Runtime bindings: backend description, ISA and thread control, and the
// machine-limit probes used by bench/ (FMA peak, copy bandwidth).
#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "../cpu/baseline.h"
#include "../runtime/cuda_loader.h"
#include "../runtime/isa.h"
#include "bindings.h"
#include "cuda_ops.h"
#include "cuda_storage.h"

namespace tk {

static Napi::Value BackendInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object cpu = Napi::Object::New(env);
  cpu.Set("isa", active_isa());
  cpu.Set("threads", thread_count());
  Napi::Array supported = Napi::Array::New(env);
  uint32_t k = 0;
  for (const char* isa : {"scalar", "avx2", "avx512"})
    if (cpu_supports(isa)) supported[k++] = Napi::String::New(env, isa);
  cpu.Set("supportedIsas", supported);
  const CudaStatus& cs = cuda_status();
  Napi::Object cuda = Napi::Object::New(env);
  cuda.Set("built", cs.built);
  cuda.Set("available", cs.available);
  if (!cs.reason.empty()) cuda.Set("reason", cs.reason);
  Napi::Array devs = Napi::Array::New(env);
  for (size_t i = 0; i < cs.devices.size(); ++i) {
    Napi::Object d = Napi::Object::New(env);
    d.Set("name", cs.devices[i].name);
    d.Set("computeCapability", cs.devices[i].compute_capability);
    d.Set("memoryBytes", double(cs.devices[i].memory_bytes));
    devs[uint32_t(i)] = d;
  }
  cuda.Set("devices", devs);
  Napi::Object r = Napi::Object::New(env);
  r.Set("cpu", cpu);
  r.Set("cuda", cuda);
  return r;
}

// cudaMemoryStats() -> { allocatedBytes, reservedBytes, peakBytes, allocCount,
// deviceAllocCount, freeBytes, totalBytes, liveTensors }. Sweeps first, so that
// tensors the garbage collector took are not counted.
static Napi::Value CudaMemoryStats(const Napi::CallbackInfo& info) {
  Args a(info, "cuda.memoryStats");
  const tk_backend_api& api = cuda_backend(a);
  cuda_storage_sweep(info.Env());
  tk_memory_stats st;
  api.memory_stats(&st);
  Napi::Object r = Napi::Object::New(info.Env());
  r.Set("allocatedBytes", double(st.allocated_bytes));
  r.Set("reservedBytes", double(st.reserved_bytes));
  r.Set("peakBytes", double(st.peak_bytes));
  r.Set("allocCount", double(st.alloc_count));
  r.Set("deviceAllocCount", double(st.device_alloc_count));
  r.Set("freeBytes", double(st.free_bytes));
  r.Set("totalBytes", double(st.total_bytes));
  r.Set("liveTensors", double(cuda_storage_live()));
  return r;
}

// cudaEmptyCache(): frees collected tensors' blocks, then returns every cached block to the driver
static Napi::Value CudaEmptyCache(const Napi::CallbackInfo& info) {
  Args a(info, "cuda.emptyCache");
  const tk_backend_api& api = cuda_backend(a);
  cuda_storage_sweep(info.Env());
  api.empty_cache();
  return info.Env().Undefined();
}

static Napi::Value CudaResetPeak(const Napi::CallbackInfo& info) {
  Args a(info, "cuda.resetPeakMemoryStats");
  cuda_backend(a).reset_peak();
  return info.Env().Undefined();
}

// cudaSynchronize(): waits for queued kernels; a kernel fault becomes a RangeError here
static Napi::Value CudaSynchronize(const Napi::CallbackInfo& info) {
  Args a(info, "cuda.synchronize");
  const tk_backend_api& api = cuda_backend(a);
  cuda_check(a, api.synchronize());
  return info.Env().Undefined();
}

static Napi::Value CudaSetSync(const Napi::CallbackInfo& info) {
  Args a(info, "cuda.setSyncMode");
  a.count(1);
  bool on = a.boolean(0, "on");
  cuda_backend(a).set_sync_mode(on ? 1 : 0);
  return info.Env().Undefined();
}

static Napi::Value SetIsa(const Napi::CallbackInfo& info) {
  Args a(info, "setIsa");
  a.count(1);
  std::string err = set_isa(a.string(0, "isa"));
  if (!err.empty()) a.range_error(err);
  return info.Env().Undefined();
}

static Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  Args a(info, "setThreads");
  a.count(1);
  set_thread_count(static_cast<int>(a.integer(0, "threads", 1, 1024)));
  return info.Env().Undefined();
}

// fmaPeak(seconds) -> FLOP/s of a register-only FMA loop on every pool thread
static Napi::Value FmaPeak(const Napi::CallbackInfo& info) {
  Args a(info, "fmaPeak");
  a.count(1);
  double seconds = a.number(0, "seconds");
  if (seconds <= 0 || seconds > 60) a.range_error("seconds must be in (0, 60]");
  const KernelTable& k = kt();
  int threads = thread_count();
  float sink[256] = {};
  // calibrate iterations on one thread
  int64_t iters = 1 << 16;
  for (;;) {
    auto t0 = std::chrono::steady_clock::now();
    k.fma_loop(iters, sink);
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (dt > seconds / 4 || iters > (int64_t(1) << 40)) {
      iters = static_cast<int64_t>(iters * (seconds / dt));
      break;
    }
    iters *= 4;
  }
  std::vector<double> flops(threads, 0.0);
  auto t0 = std::chrono::steady_clock::now();
  par(threads, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) flops[t] = k.fma_loop(iters, &sink[t % 256]);
  });
  double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double total = 0;
  for (double f : flops) total += f;
  return Napi::Number::New(info.Env(), total / dt);
}

// copyBandwidth(bytes, reps) -> bytes moved per second (read + write), all threads
static Napi::Value CopyBandwidth(const Napi::CallbackInfo& info) {
  Args a(info, "copyBandwidth");
  a.count(2);
  // at most 2^34 bytes and a quarter of the memory (src and dst are both touched)
  int64_t max_bytes = std::min<int64_t>(int64_t(1) << 34, int64_t(physical_memory_bytes() / 4));
  int64_t bytes = a.integer(0, "bytes", 1 << 12, max_bytes);
  int64_t reps = a.integer(1, "reps", 1, 1 << 20);
  std::vector<char> src(bytes, 1), dst(bytes, 0);
  auto once = [&] {
    par(bytes, 1 << 20, [&](int64_t b, int64_t e) { std::memcpy(dst.data() + b, src.data() + b, e - b); });
  };
  once();
  auto t0 = std::chrono::steady_clock::now();
  for (int64_t r = 0; r < reps; ++r) once();
  double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return Napi::Number::New(info.Env(), 2.0 * double(bytes) * double(reps) / dt);
}

// noop(t): the cheapest validated native call, for call-overhead measurements
static Napi::Value Noop(const Napi::CallbackInfo& info) {
  Args a(info, "noop");
  a.count(1);
  a.tensor(0, "tensor");
  return info.Env().Undefined();
}

void register_runtime(Napi::Env env, Napi::Object exports) {
  define<BackendInfo>(env, exports, "backendInfo", "backendInfo");
  define<SetIsa>(env, exports, "setIsa", "setIsa");
  define<CudaMemoryStats>(env, exports, "cudaMemoryStats", "cuda.memoryStats");
  define<CudaEmptyCache>(env, exports, "cudaEmptyCache", "cuda.emptyCache");
  define<CudaResetPeak>(env, exports, "cudaResetPeak", "cuda.resetPeakMemoryStats");
  define<CudaSynchronize>(env, exports, "cudaSynchronize", "cuda.synchronize");
  define<CudaSetSync>(env, exports, "cudaSetSync", "cuda.setSyncMode");
  define<SetThreads>(env, exports, "setThreads", "setThreads");
  define<FmaPeak>(env, exports, "fmaPeak", "fmaPeak");
  define<CopyBandwidth>(env, exports, "copyBandwidth", "copyBandwidth");
  define<Noop>(env, exports, "noop", "noop");
}

}  // namespace tk
