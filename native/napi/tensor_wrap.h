// Native tensor storage and its JavaScript wrapper, plus argument validation
// helpers shared by every binding. A TensorWrap is always contiguous
// (row-major); reshape shares storage, every other op writes a new tensor.
#pragma once
#include <napi.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace tk {

enum class DType : int { F32 = 0, BF16 = 1, F16 = 2, I8 = 3, I32 = 4 };
const char* dtype_name(DType d);
size_t dtype_size(DType d);
bool parse_dtype(const std::string& s, DType* out);

using Shape = std::vector<int64_t>;
int64_t shape_numel(const Shape& s);
std::string shape_str(const Shape& s);

// 64-byte aligned host memory, reported to V8 as external memory.
struct Storage {
  void* data = nullptr;
  size_t bytes = 0;
  napi_env env = nullptr;
  Storage(napi_env env, size_t bytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

class TensorWrap : public Napi::ObjectWrap<TensorWrap> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit TensorWrap(const Napi::CallbackInfo& info);

  // A new JS tensor object holding fresh (uninitialized) storage.
  static Napi::Object Create(Napi::Env env, DType dtype, const Shape& shape);
  // A new JS tensor object viewing existing storage (reshape).
  static Napi::Object CreateView(Napi::Env env, std::shared_ptr<Storage> storage, DType dtype,
                                 const Shape& shape);

  std::shared_ptr<Storage> storage;
  DType dtype = DType::F32;
  Shape shape;
  int64_t numel = 0;
  bool disposed = false;

  template <class T>
  T* data() const { return static_cast<T*>(storage->data); }
  float* f32() const { return data<float>(); }
  int32_t* i32() const { return data<int32_t>(); }

 private:
  Napi::Value GetShape(const Napi::CallbackInfo& info);
  Napi::Value GetDType(const Napi::CallbackInfo& info);
  Napi::Value GetDisposed(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
};

// ---------------------------------------------------------------- validation
// Each throws a JS TypeError or RangeError that names the op and the argument.
[[noreturn]] void throw_type(Napi::Env env, const std::string& op, const std::string& msg);
[[noreturn]] void throw_range(Napi::Env env, const std::string& op, const std::string& msg);

struct Args {
  const Napi::CallbackInfo& info;
  const char* op;
  Args(const Napi::CallbackInfo& i, const char* op_name) : info(i), op(op_name) {}
  Napi::Env env() const { return info.Env(); }

  void count(size_t n) const;  // at least n arguments
  TensorWrap* tensor(size_t i, const char* name) const;
  TensorWrap* tensor_or_null(size_t i, const char* name) const;  // null/undefined allowed
  TensorWrap* tensor_f32(size_t i, const char* name) const;
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
};

// Upper bound on elements in one tensor (keeps size arithmetic far from overflow).
constexpr int64_t kMaxElements = int64_t(1) << 40;

// Broadcasting of two shapes (NumPy rules); throws RangeError on mismatch.
Shape broadcast_shapes(const Args& a, const Shape& x, const Shape& y);

}  // namespace tk
