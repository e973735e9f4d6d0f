#include "tensor_wrap.h"

#include <unistd.h>

#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "../runtime/cuda_loader.h"
#include "cuda_storage.h"

namespace tk {

// ---------------------------------------------------------------- layout
// Storage ArrayBuffer: [StorageHeader][MetaHeader of the tensor that allocated
// it][pad to 64][data bytes]. That tensor's meta (its private field, see
// kClassSource) is the storage ArrayBuffer itself. A view (reshape) has a meta
// ArrayBuffer of its own (a MetaHeader) whose property "storage" references
// the storage ArrayBuffer; neither is reachable from JavaScript.
struct StorageHeader {
  uint64_t magic;
  int64_t live;    // tensor objects (views) using the storage that are not disposed
  int64_t pinned;  // a bytesView exists: never detach, the GC frees it
  int64_t device_slot;  // CUDA storage: its cuda_storage registry slot; -1 otherwise
};

namespace {
constexpr uint64_t kStorageMagic = 0x746b53746f726167ull;
constexpr uint64_t kMetaMagic = 0x746b4d6574610001ull;

struct MetaHeader {
  uint64_t magic;
  int32_t dtype;
  int32_t ndim;
  int32_t disposed;
  int32_t device;  // Device
  int64_t numel;
  uint64_t bytes;
  void* data;
  StorageHeader* storage;
  int64_t shape[1];  // ndim entries (at least one slot)
};

size_t meta_bytes(size_t ndim) { return offsetof(MetaHeader, shape) + sizeof(int64_t) * (ndim ? ndim : 1); }

struct AddonData {
  Napi::FunctionReference ctor;          // NativeTensor
  Napi::FunctionReference make;          // make(meta) -> a new tensor object holding meta
  Napi::FunctionReference meta;          // meta(obj) -> its meta ArrayBuffer, or undefined
  Napi::FunctionReference array_buffer;  // the ArrayBuffer constructor (throws on failure)
  Napi::FunctionReference alloc_unsafe;  // Buffer.allocUnsafeSlow: uninitialized, throws on failure
};

// The NativeTensor class. Each tensor object keeps its meta ArrayBuffer in a
// JS private field (#m): unreachable from any other code, and freed with the
// object by the garbage collector (no native finalizer involved; a WeakMap
// would do too, but its ephemeron write barriers cost more than the rest of a
// small op). `make` and `meta` are closures that only this addon holds. A
// `new NativeTensor()` from JS has no meta: a disposed shell.
const char* kClassSource = R"JS((function () {
  'use strict';
  const construct = Reflect.construct;
  let make, meta;
  const Fields = class NativeTensor {
    #m = undefined;
    static {
      make = (m) => {
        const t = new Fields();
        t.#m = m;
        return t;
      };
      meta = (t) => (t !== null && (typeof t === 'object' || typeof t === 'function') && #m in t ? t.#m : undefined);
    }
  };
  // the exported constructor: a function (so that a call without `new` can
  // throw a message that names it) sharing the class's prototype
  function NativeTensor() {
    if (new.target === undefined) throw new TypeError("NativeTensor: the constructor must be called with 'new'");
    return new.target === NativeTensor ? new Fields() : construct(Fields, [], new.target);
  }
  NativeTensor.prototype = Fields.prototype;
  Object.defineProperty(Fields.prototype, 'constructor', { value: NativeTensor, writable: true, configurable: true });
  return [NativeTensor, make, meta];
})())JS";

AddonData* addon(napi_env env) { return Napi::Env(env).GetInstanceData<AddonData>(); }

thread_local CallScope* t_scope = nullptr;
thread_local int t_depth = 0;

void check(napi_env env, napi_status s, const char* op, const char* what) {
  if (s == napi_ok) return;
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) {
    napi_value e;
    napi_get_and_clear_last_exception(env, &e);
  }
  throw_range(env, op, std::string("internal error: ") + what);
}

const char* current_op() { return t_scope ? t_scope->op : "tensor"; }

// A tensor object's metadata, or nullptr when obj is not a live tensor.
// *is_tensor tells whether obj is a NativeTensor at all (a disposed tensor or
// a `new NativeTensor()` shell is one). *meta_out: its meta ArrayBuffer.
MetaHeader* lookup(napi_env env, napi_value obj, napi_value* meta_out, bool* is_tensor) {
  *is_tensor = false;
  napi_valuetype t;
  if (napi_typeof(env, obj, &t) != napi_ok || (t != napi_object && t != napi_function)) return nullptr;
  AddonData* d = addon(env);
  Napi::Value meta = d->meta.Call({Napi::Value(env, obj)});
  void* p = nullptr;
  size_t len = 0;
  if (!meta.IsArrayBuffer() || napi_get_arraybuffer_info(env, meta, &p, &len) != napi_ok || !p ||
      len < sizeof(uint64_t)) {
    // not ours, a shell, or a tensor whose storage has been freed (disposed)
    bool inst = false;
    if (napi_instanceof(env, obj, d->ctor.Value(), &inst) != napi_ok) {
      // a Proxy trap or Symbol.hasInstance threw: not one of ours
      bool pending = false;
      napi_is_exception_pending(env, &pending);
      if (pending) {
        napi_value e;
        napi_get_and_clear_last_exception(env, &e);
      }
      inst = false;
    }
    *is_tensor = inst;
    return nullptr;
  }
  *is_tensor = true;
  MetaHeader* m = nullptr;
  if (*static_cast<uint64_t*>(p) == kStorageMagic && len >= sizeof(StorageHeader) + offsetof(MetaHeader, shape))
    m = reinterpret_cast<MetaHeader*>(static_cast<char*>(p) + sizeof(StorageHeader));
  else if (*static_cast<uint64_t*>(p) == kMetaMagic && len >= offsetof(MetaHeader, shape))
    m = static_cast<MetaHeader*>(p);
  if (!m || m->magic != kMetaMagic) return nullptr;
  if (meta_out) *meta_out = meta;
  return m;
}

void fill_snapshot(TensorWrap* t, napi_value obj, napi_value meta, const MetaHeader* m) {
  t->dtype = static_cast<DType>(m->dtype);
  t->shape.assign(m->shape, m->shape + m->ndim);
  t->numel = m->numel;
  t->device = static_cast<Device>(m->device);
  t->storage->data = m->data;
  t->storage->bytes = m->bytes;
  t->object = obj;
  t->meta = meta;
  t->header = m->storage;
  t->disposed = m->disposed != 0;
}

}  // namespace

// An ArrayBuffer of `bytes` bytes; a RangeError naming `op` when it cannot be had.
napi_value new_array_buffer(napi_env env, const char* op, size_t bytes, void** data) {
  napi_value ab;
  if (bytes <= (size_t(1) << 20)) {
    // small: cannot fail short of the whole process running out of memory
    check(env, napi_create_arraybuffer(env, bytes, data, &ab), op, "napi_create_arraybuffer");
    return ab;
  }
  // large: Buffer.allocUnsafeSlow(bytes).buffer, an ArrayBuffer of exactly
  // `bytes` that is NOT zero-filled (every op writes all of its output; the
  // zero-fill of new ArrayBuffer() cost as much as a memory-bound op), and
  // that throws a RangeError on failure (napi_create_arraybuffer aborts).
  AddonData* d = addon(env);
  try {
    if (!d->alloc_unsafe.IsEmpty()) {
      Napi::Value buf = d->alloc_unsafe.Call({Napi::Number::New(env, double(bytes))});
      ab = buf.As<Napi::Object>().Get("buffer");
    } else {
      ab = d->array_buffer.New({Napi::Number::New(env, double(bytes))});
    }
  } catch (const Napi::Error& e) {
    throw_range(env, op, "cannot allocate " + std::to_string(bytes) + " bytes (" + e.Message() + ")");
  }
  size_t len = 0;
  check(env, napi_get_arraybuffer_info(env, ab, data, &len), op, "napi_get_arraybuffer_info");
  return ab;
}

namespace {

void fill_meta(MetaHeader* m, StorageHeader* sh, void* data, DType dtype, const Shape& shape, int64_t numel,
               Device device) {
  m->magic = kMetaMagic;
  m->dtype = static_cast<int32_t>(dtype);
  m->ndim = static_cast<int32_t>(shape.size());
  m->disposed = 0;
  m->device = static_cast<int32_t>(device);
  m->numel = numel;
  m->bytes = static_cast<uint64_t>(numel) * dtype_size(dtype);
  m->data = data;
  m->storage = sh;
  for (size_t k = 0; k < shape.size(); ++k) m->shape[k] = shape[k];
}

// A new tensor object holding `meta` (header m, already filled).
Napi::Object make_object(napi_env env, napi_value meta, MetaHeader* m) {
  AddonData* d = addon(env);
  Napi::Object obj = d->make.Call({Napi::Value(env, meta)}).As<Napi::Object>();
  ++m->storage->live;
  if (t_scope) fill_snapshot(t_scope->add(), obj, meta, m);
  return obj;
}

// The storage ArrayBuffer of a tensor snapshot.
napi_value storage_buffer(napi_env env, const TensorWrap* t, const char* op) {
  void* p = nullptr;
  size_t len = 0;
  napi_get_arraybuffer_info(env, t->meta, &p, &len);
  if (p && *static_cast<uint64_t*>(p) == kStorageMagic) return t->meta;  // the tensor that allocated it
  napi_value ab;
  check(env, napi_get_named_property(env, t->meta, "storage", &ab), op, "napi_get_named_property");
  bool is_ab = false;
  napi_is_arraybuffer(env, ab, &is_ab);
  if (!is_ab) throw_type(env, op, "the tensor has been disposed");
  return ab;
}

MetaHeader* this_tensor(const Napi::CallbackInfo& info, const char* op, napi_value* meta) {
  bool is_tensor = false;
  MetaHeader* m = lookup(info.Env(), info.This(), meta, &is_tensor);
  if (!is_tensor) throw_type(info.Env(), op, "'this' is not a tensor");
  return m;
}

Napi::Value GetShape(const Napi::CallbackInfo& info) {
  MetaHeader* m = this_tensor(info, "shape", nullptr);
  Napi::Env env = info.Env();
  size_t n = m ? size_t(m->ndim) : 0;
  Napi::Array a = Napi::Array::New(env, n);
  for (size_t i = 0; i < n; ++i) a[uint32_t(i)] = Napi::Number::New(env, double(m->shape[i]));
  return a;
}

Napi::Value GetDType(const Napi::CallbackInfo& info) {
  MetaHeader* m = this_tensor(info, "dtype", nullptr);
  return Napi::String::New(info.Env(), dtype_name(m ? static_cast<DType>(m->dtype) : DType::F32));
}

Napi::Value GetDevice(const Napi::CallbackInfo& info) {
  MetaHeader* m = this_tensor(info, "device", nullptr);
  return Napi::String::New(info.Env(), device_name(m ? static_cast<Device>(m->device) : Device::CPU));
}

Napi::Value GetDisposed(const Napi::CallbackInfo& info) {
  MetaHeader* m = this_tensor(info, "disposed", nullptr);
  return Napi::Boolean::New(info.Env(), !m || m->disposed);
}

// dispose(): idempotent. The storage is detached (freed) when the last live
// view lets go, unless a bytesView pins it or a native call is in progress
// (re-entrant JS inside a binding: the call may still read the memory; the
// garbage collector frees it later).
Napi::Value Dispose(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  napi_value meta = nullptr;
  MetaHeader* m = this_tensor(info, "dispose", &meta);
  if (!m || m->disposed) return info.Env().Undefined();
  m->disposed = 1;
  StorageHeader* sh = m->storage;
  bool own = static_cast<void*>(sh) == static_cast<void*>(reinterpret_cast<char*>(m) - sizeof(StorageHeader));
  if (t_depth > 0) return info.Env().Undefined();
  bool detach = --sh->live == 0 && !sh->pinned;
  napi_value ab = meta;
  if (!own) {
    // a view: let go of the storage
    m->storage = nullptr;
    m->data = nullptr;
    if (napi_get_named_property(env, meta, "storage", &ab) != napi_ok) return info.Env().Undefined();
    bool deleted;
    napi_value key;
    napi_create_string_utf8(env, "storage", NAPI_AUTO_LENGTH, &key);
    napi_delete_property(env, meta, key, &deleted);
  }
  // frees the memory now (the headers in it go too: lookups then see a
  // detached buffer, which reads as a disposed tensor); a CUDA storage gives
  // its device block back first
  if (detach) {
    if (sh->device_slot >= 0) {
      cuda_storage_release(env, sh->device_slot);
      sh->device_slot = -1;
    }
    napi_detach_arraybuffer(env, ab);
  }
  return info.Env().Undefined();
}
}  // namespace

const char* dtype_name(DType d) {
  switch (d) {
    case DType::F32: return "f32";
    case DType::BF16: return "bf16";
    case DType::F16: return "f16";
    case DType::I8: return "i8";
    case DType::I32: return "i32";
  }
  return "?";
}

const char* device_name(Device d) { return d == Device::CUDA ? "cuda" : "cpu"; }

size_t dtype_size(DType d) {
  switch (d) {
    case DType::F32: case DType::I32: return 4;
    case DType::BF16: case DType::F16: return 2;
    case DType::I8: return 1;
  }
  return 1;
}

bool parse_dtype(const std::string& s, DType* out) {
  if (s == "f32") *out = DType::F32;
  else if (s == "bf16") *out = DType::BF16;
  else if (s == "f16") *out = DType::F16;
  else if (s == "i8") *out = DType::I8;
  else if (s == "i32") *out = DType::I32;
  else return false;
  return true;
}

int64_t shape_numel(const Shape& s) {
  for (int64_t d : s)
    if (d == 0) return 0;  // before any product of huge sizes can overflow
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::string shape_str(const Shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

// Physical memory, or the container's limit (cgroup v2 or v1) when lower.
uint64_t physical_memory_bytes() {
  static const uint64_t bytes = [] {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    uint64_t b = pages > 0 && page > 0 ? uint64_t(pages) * uint64_t(page) : uint64_t(1) << 62;
    for (const char* path : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
      std::ifstream f(path);
      unsigned long long limit = 0;
      if (f >> limit && limit > 0 && limit < b) b = limit;  // "max" fails to parse: no limit
    }
    return b;
  }();
  return bytes;
}

// ---------------------------------------------------------------- call scopes
CallScope::CallScope(const Napi::CallbackInfo* call, const char* op_name) : op(op_name), info(call), prev_(t_scope) {
  t_scope = this;
  ++t_depth;
}
CallScope::~CallScope() {
  t_scope = prev_;
  --t_depth;
}
CallScope* CallScope::current() { return t_scope; }
int CallScope::depth() { return t_depth; }
TensorWrap* CallScope::add() { return &tensors_.emplace_back(); }
TensorWrap* CallScope::find(napi_value obj) const {
  for (auto it = tensors_.rbegin(); it != tensors_.rend(); ++it)
    if (it->object == obj) return const_cast<TensorWrap*>(&*it);
  return nullptr;
}

// ---------------------------------------------------------------- tensors
Napi::Function TensorWrap::Init(Napi::Env env) {
  napi_value script, result;
  check(env, napi_create_string_utf8(env, kClassSource, NAPI_AUTO_LENGTH, &script), "NativeTensor", "napi_create_string_utf8");
  check(env, napi_run_script(env, script, &result), "NativeTensor", "napi_run_script");
  Napi::Array parts(env, result);
  Napi::Function ctor = parts.Get(0u).As<Napi::Function>();
  Napi::Object proto = ctor.Get("prototype").As<Napi::Object>();
  proto.DefineProperties({
      Napi::PropertyDescriptor::Accessor<GetShape>("shape", napi_configurable),
      Napi::PropertyDescriptor::Accessor<GetDType>("dtype", napi_configurable),
      Napi::PropertyDescriptor::Accessor<GetDisposed>("disposed", napi_configurable),
      Napi::PropertyDescriptor::Accessor<GetDevice>("device", napi_configurable),
      Napi::PropertyDescriptor::Value("dispose", Napi::Function::New<Dispose>(env, "dispose"), napi_default_method),
  });
  auto* data = new AddonData();
  data->ctor = Napi::Persistent(ctor);
  data->make = Napi::Persistent(parts.Get(1u).As<Napi::Function>());
  data->meta = Napi::Persistent(parts.Get(2u).As<Napi::Function>());
  data->array_buffer = Napi::Persistent(env.Global().Get("ArrayBuffer").As<Napi::Function>());
  Napi::Value buffer_ctor = env.Global().Get("Buffer");
  if (buffer_ctor.IsFunction()) {
    Napi::Value slow = buffer_ctor.As<Napi::Object>().Get("allocUnsafeSlow");
    if (slow.IsFunction()) data->alloc_unsafe = Napi::Persistent(slow.As<Napi::Function>());
  }
  env.SetInstanceData<AddonData>(data);
  return ctor;
}

Napi::Object TensorWrap::Create(Napi::Env env, DType dtype, const Shape& shape) {
  return Create(env, dtype, shape, t_scope && t_scope->device_set ? t_scope->device : Device::CPU);
}

Napi::Object TensorWrap::Create(Napi::Env env, DType dtype, const Shape& shape, Device device) {
  const char* op = current_op();
  double total = 1;
  for (int64_t d : shape) {
    if (d < 0 || d > kMaxDim)
      throw_range(env, op, "result shape " + shape_str(shape) + " has a size out of range [0, 2^53 - 1]");
    total *= double(d);
  }
  if (total > double(kMaxElements))
    throw_range(env, op, "result shape " + shape_str(shape) + " has more than 2^40 elements");
  int64_t n = shape_numel(shape);
  uint64_t bytes = uint64_t(n) * dtype_size(dtype);
  if (device == Device::CUDA) {
    // the storage ArrayBuffer holds the headers; the bytes are a device block
    size_t head = sizeof(StorageHeader) + meta_bytes(shape.size());
    void* base = nullptr;
    napi_value ab = new_array_buffer(env, op, head, &base);
    StorageHeader* sh = static_cast<StorageHeader*>(base);
    sh->magic = kStorageMagic;
    sh->live = 0;
    sh->pinned = 0;
    sh->device_slot = -1;
    void* data = cuda_storage_alloc(env, op, bytes, ab, &sh->device_slot);
    MetaHeader* m = reinterpret_cast<MetaHeader*>(static_cast<char*>(base) + sizeof(StorageHeader));
    fill_meta(m, sh, data, dtype, shape, n, Device::CUDA);
    return make_object(env, ab, m);
  }
  if (bytes > physical_memory_bytes())
    throw_range(env, op, "a " + std::string(dtype_name(dtype)) + " tensor of shape " + shape_str(shape) + " needs " +
                             std::to_string(bytes) + " bytes, more than the " + std::to_string(physical_memory_bytes()) +
                             " bytes of memory of this machine");
  size_t head = sizeof(StorageHeader) + meta_bytes(shape.size());
  void* base = nullptr;
  napi_value ab = new_array_buffer(env, op, head + 64 + bytes, &base);
  StorageHeader* sh = static_cast<StorageHeader*>(base);
  sh->magic = kStorageMagic;
  sh->live = 0;
  sh->pinned = 0;
  sh->device_slot = -1;
  uintptr_t p = reinterpret_cast<uintptr_t>(base) + head;
  void* data = reinterpret_cast<void*>((p + 63) & ~uintptr_t(63));
  MetaHeader* m = reinterpret_cast<MetaHeader*>(static_cast<char*>(base) + sizeof(StorageHeader));
  fill_meta(m, sh, data, dtype, shape, n, Device::CPU);
  return make_object(env, ab, m);
}

Napi::Object TensorWrap::CreateView(Napi::Env env, const TensorWrap* src, DType dtype, const Shape& shape) {
  const char* op = current_op();
  int64_t n = shape_numel(shape);
  if (uint64_t(n) * dtype_size(dtype) != src->storage->bytes)
    throw_range(env, op, "a view must keep the byte size of its tensor");
  napi_value storage_ab = storage_buffer(env, src, op);
  void* mp = nullptr;
  napi_value meta;
  check(env, napi_create_arraybuffer(env, meta_bytes(shape.size()), &mp, &meta), op, "napi_create_arraybuffer");
  MetaHeader* m = static_cast<MetaHeader*>(mp);
  fill_meta(m, src->header, src->raw(), dtype, shape, n, src->device);
  check(env, napi_set_named_property(env, meta, "storage", storage_ab), op, "napi_set_named_property");
  return make_object(env, meta, m);
}

TensorWrap* TensorWrap::Unwrap(Napi::Object obj) {
  if (!t_scope) return nullptr;
  if (TensorWrap* t = t_scope->find(obj)) return t;
  napi_value meta = nullptr;
  bool is_tensor = false;
  MetaHeader* m = lookup(obj.Env(), obj, &meta, &is_tensor);
  if (!m) return nullptr;
  TensorWrap* t = t_scope->add();
  fill_snapshot(t, obj, meta, m);
  return t;
}

Napi::Value storage_bytes_view(Napi::Env env, TensorWrap* t) {
  const char* op = current_op();
  if (t->device != Device::CPU) throw_type(env, op, "the tensor is on cuda; copy it to the CPU first (.to('cpu'))");
  napi_value ab = storage_buffer(env, t, op);
  // A Uint8Array over the storage ArrayBuffer itself: V8 owns the memory, so a
  // dispose (which detaches the buffer) turns the view into an empty one
  // instead of leaving it dangling, and nothing is pinned: the memory is freed
  // (and reused by the next allocation) the moment the tensor is disposed.
  void* base = nullptr;
  size_t len = 0;
  check(env, napi_get_arraybuffer_info(env, ab, &base, &len), op, "napi_get_arraybuffer_info");
  size_t offset = static_cast<size_t>(static_cast<char*>(t->raw()) - static_cast<char*>(base));
  size_t bytes = t->storage->bytes;
  if (offset + bytes > len) throw_range(env, op, "storage view out of bounds");
  return Napi::Uint8Array::New(env, bytes, Napi::ArrayBuffer(env, ab), offset);
}

// ---------------------------------------------------------------- validation
void throw_type(Napi::Env env, const std::string& op, const std::string& msg) {
  throw Napi::TypeError::New(env, op + ": " + msg);
}
void throw_range(Napi::Env env, const std::string& op, const std::string& msg) {
  throw Napi::RangeError::New(env, op + ": " + msg);
}

Args::Args(const Napi::CallbackInfo& i, const char* op_name) : info(i), op(op_name) {
  // the first Args of a native call opens its scope (a re-entrant call, made
  // by JS that runs inside another binding, gets a scope of its own)
  if (!t_scope || t_scope->info != &i) scope_ = std::make_shared<CallScope>(&i, op_name);
  else t_scope->op = op_name;
}

void Args::count(size_t n) const {
  if (info.Length() < n)
    type_error("expected " + std::to_string(n) + " arguments, got " + std::to_string(info.Length()));
}

TensorWrap* Args::tensor_value(Napi::Value v, const std::string& what) const {
  napi_value meta = nullptr;
  bool is_tensor = false;
  MetaHeader* m = lookup(env(), v, &meta, &is_tensor);
  if (!is_tensor) type_error(what + " must be a tensor");
  if (!m || m->disposed) type_error(what + " is a disposed tensor");
  if (!t_scope) type_error("internal error: no call scope");
  Device d = static_cast<Device>(m->device);
  if (!t_scope->device_set) {
    t_scope->device = d;
    t_scope->device_set = true;
  } else if (t_scope->device != d) {
    type_error(what + " is on " + device_name(d) + " but the op runs on " + device_name(t_scope->device) +
               " (the other tensors' device); move it with .to('" + device_name(t_scope->device) + "')");
  }
  TensorWrap* t = t_scope->add();
  fill_snapshot(t, v, meta, m);
  return t;
}

TensorWrap* Args::tensor(size_t i, const char* name) const {
  return tensor_value(info[i], std::string("argument '") + name + "'");
}

TensorWrap* Args::tensor_or_null(size_t i, const char* name) const {
  if (i >= info.Length() || info[i].IsNull() || info[i].IsUndefined()) return nullptr;
  return tensor(i, name);
}

TensorWrap* Args::tensor_f32(size_t i, const char* name) const {
  TensorWrap* t = tensor(i, name);
  if (t->dtype != DType::F32)
    type_error(std::string("argument '") + name + "' has dtype " + dtype_name(t->dtype) +
               "; this op supports f32 on the CPU (convert with .to('f32'))");
  return t;
}

TensorWrap* Args::tensor_float(size_t i, const char* name) const {
  TensorWrap* t = tensor(i, name);
  if (t->dtype == DType::F32 || (t->device == Device::CUDA && t->dtype == DType::BF16)) return t;
  type_error(std::string("argument '") + name + "' has dtype " + dtype_name(t->dtype) +
             (t->device == Device::CUDA ? "; this op supports f32 and bf16 on CUDA"
                                        : "; this op supports f32 on the CPU (convert with .to('f32'))"));
}

Device Args::device() const { return t_scope && t_scope->device_set ? t_scope->device : Device::CPU; }

void Args::set_device(Device d) const {
  if (d == Device::CUDA && !cuda_api()) type_error("CUDA is not available: " + cuda_status().reason);
  if (!t_scope) type_error("internal error: no call scope");
  t_scope->device = d;
  t_scope->device_set = true;
}

Device Args::device_arg(size_t i, const char* name) const {
  if (i >= info.Length() || info[i].IsUndefined()) return Device::CPU;
  std::string s = string(i, name);
  if (s == "cpu") return Device::CPU;
  if (s == "cuda") return Device::CUDA;
  type_error(std::string("argument '") + name + "' must be 'cpu' or 'cuda', got '" + s + "'");
}

TensorWrap* Args::tensor_i32(size_t i, const char* name) const {
  TensorWrap* t = tensor(i, name);
  if (t->dtype != DType::I32)
    type_error(std::string("argument '") + name + "' must have dtype i32, got " + dtype_name(t->dtype));
  return t;
}

double Args::number(size_t i, const char* name) const {
  if (!info[i].IsNumber()) type_error(std::string("argument '") + name + "' must be a number");
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) range_error(std::string("argument '") + name + "' must be finite");
  return d;
}

int64_t Args::integer(size_t i, const char* name, int64_t lo, int64_t hi) const {
  if (!info[i].IsNumber()) type_error(std::string("argument '") + name + "' must be an integer");
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::floor(d))
    range_error(std::string("argument '") + name + "' must be an integer, got " + std::to_string(d));
  if (d < double(lo) || d > double(hi))
    range_error(std::string("argument '") + name + "' = " + std::to_string(d) + " is out of range [" +
                std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return static_cast<int64_t>(d);
}

bool Args::boolean(size_t i, const char* name) const {
  if (!info[i].IsBoolean()) type_error(std::string("argument '") + name + "' must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

std::string Args::string(size_t i, const char* name) const {
  if (!info[i].IsString()) type_error(std::string("argument '") + name + "' must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

Shape Args::shape(size_t i, const char* name) const {
  if (!info[i].IsArray()) type_error(std::string("argument '") + name + "' must be an array of sizes");
  Napi::Array a = info[i].As<Napi::Array>();
  if (a.Length() > 16) range_error(std::string("'") + name + "' has more than 16 dimensions");
  Shape s(a.Length());
  double total = 1;
  for (uint32_t k = 0; k < a.Length() && k < s.size(); ++k) {
    Napi::Value v = a[k];
    if (!v.IsNumber()) type_error(std::string("'") + name + "' must contain only numbers");
    double d = v.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d) || d != std::floor(d) || d < 0)
      range_error(std::string("'") + name + "' must contain non-negative integers, got " +
                  (std::isnan(d) ? std::string("NaN") : std::to_string(d)) + " at dimension " + std::to_string(k));
    // each size on its own too: [0, 1e300] has no elements but no int64 size
    if (d > double(kMaxDim))
      range_error(std::string("'") + name + "' has size " + std::to_string(d) + " at dimension " + std::to_string(k) +
                  ", more than the limit of 2^53 - 1");
    total *= d;
    s[k] = static_cast<int64_t>(d);
  }
  if (total > double(kMaxElements))
    range_error(std::string("'") + name + "' describes " + std::to_string(total) +
                " elements, more than the limit of 2^40");
  return s;
}

std::vector<TensorWrap*> Args::tensor_list(size_t i, const char* name) const {
  if (!info[i].IsArray()) type_error(std::string("argument '") + name + "' must be an array of tensors");
  Napi::Array a = info[i].As<Napi::Array>();
  // read every element first (a getter may run JS), then snapshot them
  std::vector<Napi::Value> vals;
  uint32_t n = a.Length();
  if (n > (1u << 20)) range_error(std::string("'") + name + "' has more than 2^20 tensors");
  vals.reserve(n);
  for (uint32_t k = 0; k < n; ++k) vals.push_back(a[k]);
  std::vector<TensorWrap*> out;
  for (uint32_t k = 0; k < n; ++k)
    out.push_back(tensor_value(vals[k], std::string("'") + name + "[" + std::to_string(k) + "]'"));
  return out;
}

int64_t Args::axis(size_t i, const char* name, int64_t rank) const {
  if (rank == 0) range_error("cannot take an axis of a 0-d tensor");
  int64_t a = integer(i, name, -rank, rank - 1);
  return a < 0 ? a + rank : a;
}

Shape broadcast_shapes(const Args& a, const Shape& x, const Shape& y) {
  size_t r = x.size() > y.size() ? x.size() : y.size();
  Shape out(r);
  for (size_t k = 0; k < r; ++k) {
    int64_t dx = k + x.size() >= r ? x[k + x.size() - r] : 1;
    int64_t dy = k + y.size() >= r ? y[k + y.size() - r] : 1;
    if (dx != dy && dx != 1 && dy != 1)
      a.range_error("shapes " + shape_str(x) + " and " + shape_str(y) + " cannot be broadcast together");
    out[k] = dx == 1 ? dy : dx;
  }
  return out;
}

}  // namespace tk
