#include "tensor_wrap.h"

#include <cmath>
#include <cstdlib>
#include <cstring>

namespace tk {

namespace {
// Distinguishes our tensors from any other wrapped object (napi_type_tag).
const napi_type_tag kTensorTag = {0x7475'6e65'6b69'7400ull, 0x7465'6e73'6f72'0001ull};

struct AddonData {
  Napi::FunctionReference tensor_ctor;
};
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
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::string shape_str(const Shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

Storage::Storage(napi_env e, size_t n) : bytes(n), env(e) {
  size_t rounded = (n + 63) & ~size_t(63);
  data = std::aligned_alloc(64, rounded ? rounded : 64);
  if (!data) throw std::bad_alloc();
  int64_t adjusted;
  napi_adjust_external_memory(env, static_cast<int64_t>(bytes), &adjusted);
}

Storage::~Storage() {
  std::free(data);
  int64_t adjusted;
  // env may be tearing down with the addon; adjusting is harmless then.
  if (env) napi_adjust_external_memory(env, -static_cast<int64_t>(bytes), &adjusted);
}

Napi::Function TensorWrap::Init(Napi::Env env) {
  Napi::Function ctor =
      DefineClass(env, "NativeTensor",
                  {InstanceAccessor<&TensorWrap::GetShape>("shape"),
                   InstanceAccessor<&TensorWrap::GetDType>("dtype"),
                   InstanceAccessor<&TensorWrap::GetDisposed>("disposed"),
                   InstanceMethod<&TensorWrap::Dispose>("dispose")});
  auto* data = new AddonData();
  data->tensor_ctor = Napi::Persistent(ctor);
  env.SetInstanceData<AddonData>(data);
  return ctor;
}

TensorWrap::TensorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorWrap>(info) {
  // Constructed only from native code (Create); a `new` from JS yields a disposed shell.
  info.This().As<Napi::Object>().TypeTag(&kTensorTag);
  disposed = true;
}

Napi::Object TensorWrap::Create(Napi::Env env, DType dtype, const Shape& shape) {
  int64_t n = shape_numel(shape);
  auto storage = std::make_shared<Storage>(env, static_cast<size_t>(n) * dtype_size(dtype));
  return CreateView(env, std::move(storage), dtype, shape);
}

Napi::Object TensorWrap::CreateView(Napi::Env env, std::shared_ptr<Storage> storage, DType dtype,
                                    const Shape& shape) {
  Napi::Object obj = env.GetInstanceData<AddonData>()->tensor_ctor.New({});
  TensorWrap* t = Unwrap(obj);
  t->storage = std::move(storage);
  t->dtype = dtype;
  t->shape = shape;
  t->numel = shape_numel(shape);
  t->disposed = false;
  return obj;
}

Napi::Value TensorWrap::GetShape(const Napi::CallbackInfo& info) {
  Napi::Array a = Napi::Array::New(info.Env(), shape.size());
  for (size_t i = 0; i < shape.size(); ++i) a[i] = Napi::Number::New(info.Env(), double(shape[i]));
  return a;
}
Napi::Value TensorWrap::GetDType(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), dtype_name(dtype));
}
Napi::Value TensorWrap::GetDisposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), disposed);
}
Napi::Value TensorWrap::Dispose(const Napi::CallbackInfo& info) {
  storage.reset();  // memory goes when the last view lets go
  disposed = true;
  return info.Env().Undefined();
}

// ---------------------------------------------------------------- validation
void throw_type(Napi::Env env, const std::string& op, const std::string& msg) {
  throw Napi::TypeError::New(env, op + ": " + msg);
}
void throw_range(Napi::Env env, const std::string& op, const std::string& msg) {
  throw Napi::RangeError::New(env, op + ": " + msg);
}

void Args::count(size_t n) const {
  if (info.Length() < n)
    type_error("expected " + std::to_string(n) + " arguments, got " + std::to_string(info.Length()));
}

TensorWrap* Args::tensor(size_t i, const char* name) const {
  Napi::Value v = info[i];
  if (!v.IsObject()) type_error(std::string("argument '") + name + "' must be a tensor");
  Napi::Object o = v.As<Napi::Object>();
  if (!o.CheckTypeTag(&kTensorTag)) type_error(std::string("argument '") + name + "' must be a tensor");
  TensorWrap* t = TensorWrap::Unwrap(o);
  if (!t || t->disposed || !t->storage)
    type_error(std::string("argument '") + name + "' is a disposed tensor");
  return t;
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
    range_error(std::string("argument '") + name + "' = " + std::to_string(int64_t(d)) +
                " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
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
  for (uint32_t k = 0; k < a.Length(); ++k) {
    Napi::Value v = a[k];
    if (!v.IsNumber()) type_error(std::string("'") + name + "' must contain only numbers");
    double d = v.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d) || d != std::floor(d) || d < 0)
      range_error(std::string("'") + name + "' must contain non-negative integers, got " +
                  (std::isnan(d) ? std::string("NaN") : std::to_string(d)) + " at dimension " +
                  std::to_string(k));
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
  std::vector<TensorWrap*> out;
  for (uint32_t k = 0; k < a.Length(); ++k) {
    Napi::Value v = a[k];
    if (!v.IsObject() || !v.As<Napi::Object>().CheckTypeTag(&kTensorTag))
      type_error(std::string("'") + name + "[" + std::to_string(k) + "]' must be a tensor");
    TensorWrap* t = TensorWrap::Unwrap(v.As<Napi::Object>());
    if (t->disposed || !t->storage)
      type_error(std::string("'") + name + "[" + std::to_string(k) + "]' is a disposed tensor");
    out.push_back(t);
  }
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
