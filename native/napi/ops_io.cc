// Raw byte access for file I/O (safetensors): a Uint8Array view over a
// tensor's storage ArrayBuffer, so that files are read straight into tensors
// and written straight from them, with no second copy. Disposing the tensor
// detaches the buffer: the view then has length 0 (never a dangling pointer).
#include <memory>

#include "bindings.h"

namespace tk {

// bytesView(t) -> Uint8Array of t's bytes (numel * dtype size)
static Napi::Value BytesView(const Napi::CallbackInfo& info) {
  Args a(info, "bytesView");
  a.count(1);
  TensorWrap* t = a.tensor(0, "tensor");
  return storage_bytes_view(info.Env(), t);
}

void register_io_ops(Napi::Env env, Napi::Object exports) {
  define<BytesView>(env, exports, "bytesView", "bytesView");
}

}  // namespace tk
