// Raw byte access for file I/O (safetensors): a Uint8Array view over a
// tensor's native storage, so that files are read straight into tensors and
// written straight from them, with no second copy. The view's ArrayBuffer
// holds a reference to the storage, so it stays valid even after the tensor
// is disposed or collected.
#include <memory>

#include "bindings.h"

namespace tk {

// bytesView(t) -> Uint8Array of t's bytes (numel * dtype size)
static Napi::Value BytesView(const Napi::CallbackInfo& info) {
  Args a(info, "bytesView");
  a.count(1);
  TensorWrap* t = a.tensor(0, "tensor");
  size_t bytes = static_cast<size_t>(t->numel) * dtype_size(t->dtype);
  auto* keep = new std::shared_ptr<Storage>(t->storage);
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(
      info.Env(), t->storage->data, bytes,
      [](Napi::Env, void*, std::shared_ptr<Storage>* hint) { delete hint; }, keep);
  return Napi::Uint8Array::New(info.Env(), bytes, ab, 0);
}

void register_io_ops(Napi::Env env, Napi::Object exports) {
  exports.Set("bytesView", Napi::Function::New(env, BytesView, "bytesView"));
}

}  // namespace tk
