// tunekit native addon: registration only. Context-aware (safe in worker
// threads): per-instance state lives in the env's instance data.
#include <napi.h>

#include "napi/bindings.h"
#include "runtime/cuda_loader.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
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
