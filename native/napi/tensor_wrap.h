// Native tensors and their JavaScript objects, plus argument validation
// helpers shared by every binding. A tensor is always contiguous (row-major);
// reshape shares storage, every other op writes a new tensor.
//
// Memory: a tensor's bytes live in a JavaScript ArrayBuffer allocated by V8,
// reachable only through the tensor object (a JS private field holds the
// ArrayBuffer with the metadata and the bytes; a view holds a small metadata
// ArrayBuffer that references the shared storage). There is no native
// finalizer: when a tensor object becomes unreachable the garbage collector
// frees its memory itself, without waiting for the event loop (Node-API
// finalizers of Node 20 only run from setImmediate, so a synchronous training
// loop would otherwise never free anything), and V8 counts the bytes as
// external memory, so allocation pressure triggers collections. dispose()
// frees the storage at once (detaches it) once no live view uses it.
//
// Inside a binding, TensorWrap is a per-call snapshot of a tensor (dtype, shape,
// data pointer) owned by the call's scope (created with the first Args); the
// pointer stays valid until the binding returns, even if JavaScript run during
// the call (a getter on an argument array) disposes the tensor.
#pragma once
#include <napi.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

namespace tk {

enum class DType : int { F32 = 0, BF16 = 1, F16 = 2, I8 = 3, I32 = 4 };
// Where a tensor's bytes live. A CUDA tensor's storage ArrayBuffer holds only
// its headers; the bytes are a block of the CUDA backend's caching allocator
// (cuda_storage.h), freed by dispose() or, once the garbage collector has
// taken the tensor object, by the next sweep.
enum class Device : int { CPU = 0, CUDA = 1 };
const char* device_name(Device d);
const char* dtype_name(DType d);
size_t dtype_size(DType d);
bool parse_dtype(const std::string& s, DType* out);

using Shape = std::vector<int64_t>;
int64_t shape_numel(const Shape& s);
std::string shape_str(const Shape& s);

// Upper bound on elements in one tensor (keeps size arithmetic far from overflow).
constexpr int64_t kMaxElements = int64_t(1) << 40;
// Upper bound on one size: an empty tensor may have other huge sizes ([2^50, 0]),
// but every size is an integer that a JS number holds exactly. Bindings return
// early on empty tensors, before loops over (possibly huge) outer sizes.
constexpr int64_t kMaxDim = (int64_t(1) << 53) - 1;

// The bytes of one tensor (or of a view): `data` is 64-byte aligned.
struct Storage {
  void* data = nullptr;
  size_t bytes = 0;
};

struct StorageHeader;

class TensorWrap {
 public:
  // The NativeTensor class (a `new NativeTensor()` from JS yields a disposed shell).
  static Napi::Function Init(Napi::Env env);

  // A new JS tensor object holding fresh (uninitialized) storage on the
  // device of the current call (the device of its tensor arguments; the CPU
  // when it has none). Throws a RangeError naming the current op when the
  // shape is too large or the memory cannot be allocated.
  static Napi::Object Create(Napi::Env env, DType dtype, const Shape& shape);
  static Napi::Object Create(Napi::Env env, DType dtype, const Shape& shape, Device device);
  // A new JS tensor object viewing src's storage (reshape); same byte count.
  static Napi::Object CreateView(Napi::Env env, const TensorWrap* src, DType dtype, const Shape& shape);
  // The snapshot of a tensor object (nullptr if it is not a live tensor).
  static TensorWrap* Unwrap(Napi::Object obj);

  TensorWrap() = default;
  TensorWrap(const TensorWrap&) = delete;
  TensorWrap& operator=(const TensorWrap&) = delete;

  Storage* storage = &store_;  // never null for a snapshot of a live tensor
  DType dtype = DType::F32;
  Device device = Device::CPU;
  Shape shape;
  int64_t numel = 0;
  bool disposed = false;  // always false for snapshots handed out by Args
  napi_value object = nullptr;  // the JS tensor object
  StorageHeader* header = nullptr;
  napi_value meta = nullptr;

  template <class T>
  T* data() const { return static_cast<T*>(store_.data); }
  void* raw() const { return store_.data; }
  float* f32() const { return data<float>(); }
  int32_t* i32() const { return data<int32_t>(); }

 private:
  Storage store_;
};

// The tensors snapshotted during one native call; the first Args of a call
// creates it. Nested (re-entrant) calls get their own scope.
class CallScope {
 public:
  CallScope(const Napi::CallbackInfo* info, const char* op);
  ~CallScope();
  CallScope(const CallScope&) = delete;
  CallScope& operator=(const CallScope&) = delete;
  static CallScope* current();
  static int depth();
  TensorWrap* add();
  TensorWrap* find(napi_value obj) const;  // a snapshot already taken of this very handle
  const char* op;
  const Napi::CallbackInfo* const info;  // the native call this scope belongs to
  // the device of the call: set by its first tensor argument (or explicitly by
  // a creation op); every other tensor argument must be on it
  Device device = Device::CPU;
  bool device_set = false;

 private:
  std::deque<TensorWrap> tensors_;
  CallScope* prev_;
};

// A new (zero-filled) ArrayBuffer of `bytes` bytes; a RangeError that names op
// when the memory cannot be had (napi_create_arraybuffer would abort instead).
napi_value new_array_buffer(napi_env env, const char* op, size_t bytes, void** data);

// Bytes of physical memory (an upper bound on any one allocation).
uint64_t physical_memory_bytes();

// A Uint8Array over the tensor's bytes that keeps its storage alive (and is
// never invalidated by dispose()). For file I/O.
Napi::Value storage_bytes_view(Napi::Env env, TensorWrap* t);

// ---------------------------------------------------------------- validation
// Each throws a JS TypeError or RangeError that names the op and the argument.
[[noreturn]] void throw_type(Napi::Env env, const std::string& op, const std::string& msg);
[[noreturn]] void throw_range(Napi::Env env, const std::string& op, const std::string& msg);

struct Args {
  const Napi::CallbackInfo& info;
  const char* op;
  Args(const Napi::CallbackInfo& i, const char* op_name);
  Napi::Env env() const { return info.Env(); }

  void count(size_t n) const;  // at least n arguments
  TensorWrap* tensor(size_t i, const char* name) const;
  TensorWrap* tensor_or_null(size_t i, const char* name) const;  // null/undefined allowed
  TensorWrap* tensor_f32(size_t i, const char* name) const;
  // a float tensor this op can compute on: f32 on the CPU; f32 or bf16 on CUDA
  TensorWrap* tensor_float(size_t i, const char* name) const;
  // the call's device (after its first tensor argument), and a shorthand
  Device device() const;
  bool cuda() const { return device() == Device::CUDA; }
  // sets the call's device (creation ops); throws when CUDA is not available
  void set_device(Device d) const;
  // the device named by argument i ("cpu" | "cuda"; undefined: cpu)
  Device device_arg(size_t i, const char* name) const;
  TensorWrap* tensor_i32(size_t i, const char* name) const;
  double number(size_t i, const char* name) const;  // finite
  int64_t integer(size_t i, const char* name, int64_t lo, int64_t hi) const;
  bool boolean(size_t i, const char* name) const;
  std::string string(size_t i, const char* name) const;
  Shape shape(size_t i, const char* name) const;  // non-negative integers, bounded numel
  std::vector<TensorWrap*> tensor_list(size_t i, const char* name) const;
  // axis in [-rank, rank) normalized to [0, rank)
  int64_t axis(size_t i, const char* name, int64_t rank) const;
  [[noreturn]] void type_error(const std::string& msg) const { throw_type(env(), op, msg); }
  [[noreturn]] void range_error(const std::string& msg) const { throw_range(env(), op, msg); }

 private:
  TensorWrap* tensor_value(Napi::Value v, const std::string& what) const;
  std::shared_ptr<CallScope> scope_;  // set when this Args opened the call's scope
};

// Broadcasting of two shapes (NumPy rules); throws RangeError on mismatch.
Shape broadcast_shapes(const Args& a, const Shape& x, const Shape& y);

// Registers fn as exports[name]; C++ exceptions other than JS errors (such as
// std::bad_alloc) become a RangeError that starts with `op`.
using Binding = Napi::Value (*)(const Napi::CallbackInfo&);
template <Binding F>
Napi::Value guarded(const Napi::CallbackInfo& info) {
  const char* op = static_cast<const char*>(info.Data());
  try {
    return F(info);
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw_range(info.Env(), op, "out of memory");
  } catch (const std::exception& e) {
    throw_range(info.Env(), op, e.what());
  }
}
template <Binding F>
void define(Napi::Env env, Napi::Object exports, const char* name, const char* op) {
  exports.Set(name, Napi::Function::New<guarded<F>>(env, name, const_cast<char*>(op)));
}

}  // namespace tk
