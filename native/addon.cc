// tunekit native addon: registration only. Context-aware (safe in worker
// threads): per-instance state lives in the env's instance data.
#include <malloc.h>
#include <napi.h>

#include <cstdlib>
#include <string>

#include "napi/bindings.h"
#include "runtime/cuda_loader.h"

// Large tensors are allocated and freed at a high rate (a fresh output per op).
// glibc serves blocks over its mmap threshold (at most 32 MiB) with a fresh
// mmap each time, so every call pays a page fault per 4 KiB (about 1.5 µs
// each: more than the op itself for memory-bound kernels). Keeping large blocks
// in the heap and never trimming it lets freed tensor memory be reused as a
// caching allocator would. TUNEKIT_MALLOC=system keeps glibc's defaults.
static void tune_malloc() {
  static bool done = false;
  if (done) return;
  done = true;
  const char* env = std::getenv("TUNEKIT_MALLOC");
  if (env && std::string(env) == "system") return;
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 64 << 20);
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  tune_malloc();
  exports.Set("NativeTensor", tk::TensorWrap::Init(env));
  tk::register_tensor_ops(env, exports);
  tk::register_math_ops(env, exports);
  tk::register_runtime(env, exports);
  tk::register_io_ops(env, exports);
  tk::register_fused_ops(env, exports);
  tk::register_optim_ops(env, exports);
  exports.Set("setAddonDir", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    tk::Args a(info, "setAddonDir");
    a.count(1);
    tk::set_addon_path(a.string(0, "dir"));
    return info.Env().Undefined();
  }));
  return exports;
}

NODE_API_MODULE(tunekit, Init)
