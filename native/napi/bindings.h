// Registration functions of the binding files; addon.cc calls each once.
#pragma once
#include <napi.h>

#include "tensor_wrap.h"

namespace tk {
void register_tensor_ops(Napi::Env env, Napi::Object exports);
void register_math_ops(Napi::Env env, Napi::Object exports);
void register_runtime(Napi::Env env, Napi::Object exports);
void register_io_ops(Napi::Env env, Napi::Object exports);
void register_fused_ops(Napi::Env env, Napi::Object exports);
void register_optim_ops(Napi::Env env, Napi::Object exports);
}  // namespace tk
