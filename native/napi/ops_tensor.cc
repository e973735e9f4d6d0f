// Bindings that create, convert and move tensors: empty, fromArray, toArray,
// fill, rand/randn, cast, reshape, clone, permute, slice, concat, expand, sumTo.
#include <cmath>
#include <cstring>

#include "../cpu/baseline.h"
#include "../runtime/isa.h"
#include "bindings.h"
#include "cuda_ops.h"

namespace tk {

// double -> float with round-to-odd: an inexact result gets an odd last bit,
// so that a second rounding (float -> bf16 / f16, to nearest even) gives the
// correctly rounded result of the original double.
static float narrow_round_odd(double d) {
  float f = static_cast<float>(d);
  if (!std::isfinite(f) || static_cast<double>(f) == d) return f;
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 1u) == 0) {
    // move one ulp toward d (away from the even neighbour)
    bool up = (static_cast<double>(f) < d) == (f > 0.0f || (f == 0.0f && d > 0.0));
    u = up ? u + 1 : u - 1;
    if (f == 0.0f) u = (d > 0.0 ? 0u : 0x80000000u) | 1u;
    std::memcpy(&f, &u, 4);
  }
  return f;
}

static Napi::Value Empty(const Napi::CallbackInfo& info) {
  Args a(info, "empty");
  a.count(2);
  DType dt;
  if (!parse_dtype(a.string(0, "dtype"), &dt)) a.type_error("unknown dtype (expected f32, bf16, f16, i8 or i32)");
  Shape s = a.shape(1, "shape");
  a.set_device(a.device_arg(2, "device"));
  return TensorWrap::Create(info.Env(), dt, s);
}

// toDevice(t, device): a copy of t on the device ('cpu' | 'cuda'), same dtype
static Napi::Value ToDevice(const Napi::CallbackInfo& info) {
  Args a(info, "to");
  a.count(2);
  TensorWrap* t = a.tensor(0, "tensor");
  if (!info[1].IsString()) a.type_error("argument 'device' must be 'cpu' or 'cuda'");
  Device to = a.device_arg(1, "device");
  if (to == Device::CUDA) cuda_backend(a);  // a clear error when CUDA is missing
  Napi::Object out = TensorWrap::Create(info.Env(), t->dtype, t->shape, to);
  TensorWrap* o = TensorWrap::Unwrap(out);
  size_t bytes = size_t(t->numel) * dtype_size(t->dtype);
  if (bytes == 0) return out;
  if (t->device == Device::CPU && to == Device::CPU) std::memcpy(o->raw(), t->raw(), bytes);
  else if (t->device == Device::CPU) TK_CUDA(a, memcpy_h2d, o->raw(), t->raw(), bytes);
  else if (to == Device::CPU) TK_CUDA(a, memcpy_d2h, o->raw(), t->raw(), bytes);
  else TK_CUDA(a, memcpy_d2d, o->raw(), t->raw(), bytes);
  return out;
}

// fromArray(data, shape, dtype): data is a typed array or an array of numbers
static Napi::Value FromArray(const Napi::CallbackInfo& info) {
  Args a(info, "fromArray");
  a.count(3);
  Shape s = a.shape(1, "shape");
  DType dt;
  if (!parse_dtype(a.string(2, "dtype"), &dt)) a.type_error("unknown dtype (expected f32, bf16, f16, i8 or i32)");
  int64_t n = shape_numel(s);
  Napi::Value v = info[0];
  std::vector<double> tmp;
  const double* src64 = nullptr;
  const float* src32 = nullptr;
  int64_t len = 0;
  if (v.IsTypedArray()) {
    // raw info: also works for typed arrays over a SharedArrayBuffer
    napi_typedarray_type t;
    size_t elems = 0, byte_offset = 0;
    void* raw = nullptr;
    napi_value buf;
    if (napi_get_typedarray_info(info.Env(), v, &t, &elems, &raw, &buf, &byte_offset) != napi_ok)
      a.type_error("argument 'data' is not a readable typed array");
    len = static_cast<int64_t>(elems);
    if (len != n) a.range_error("data has " + std::to_string(len) + " elements but shape " + shape_str(s) + " needs " + std::to_string(n));
    const uint8_t* base = static_cast<const uint8_t*>(raw);
    if (t == napi_float32_array) {
      src32 = reinterpret_cast<const float*>(base);
    } else if (t == napi_float64_array) {
      src64 = reinterpret_cast<const double*>(base);
    } else {
      switch (t) {
        case napi_int8_array: case napi_uint8_array: case napi_uint8_clamped_array: case napi_int16_array:
        case napi_uint16_array: case napi_int32_array: case napi_uint32_array: break;
        default: a.type_error("unsupported typed array type (use Float32Array, Float64Array or an integer array)");
      }
      tmp.resize(len);
      for (int64_t i = 0; i < len; ++i) {
        switch (t) {
          case napi_int8_array: tmp[i] = reinterpret_cast<const int8_t*>(base)[i]; break;
          case napi_uint8_array: case napi_uint8_clamped_array: tmp[i] = base[i]; break;
          case napi_int16_array: tmp[i] = reinterpret_cast<const int16_t*>(base)[i]; break;
          case napi_uint16_array: tmp[i] = reinterpret_cast<const uint16_t*>(base)[i]; break;
          case napi_int32_array: tmp[i] = reinterpret_cast<const int32_t*>(base)[i]; break;
          case napi_uint32_array: tmp[i] = reinterpret_cast<const uint32_t*>(base)[i]; break;
          default: break;
        }
      }
      src64 = tmp.data();
    }
  } else if (v.IsArray()) {
    Napi::Array arr = v.As<Napi::Array>();
    len = arr.Length();
    if (len != n) a.range_error("data has " + std::to_string(len) + " elements but shape " + shape_str(s) + " needs " + std::to_string(n));
    // reserve, not resize: a sparse `new Array(2 ** 30)` must fail at its
    // first hole, not after zero-filling gigabytes
    tmp.reserve(len);
    for (int64_t i = 0; i < len; ++i) {
      Napi::Value e = arr[static_cast<uint32_t>(i)];
      if (!e.IsNumber()) a.type_error("data[" + std::to_string(i) + "] is not a number");
      tmp.push_back(e.As<Napi::Number>().DoubleValue());
    }
    src64 = tmp.data();
  } else {
    a.type_error("argument 'data' must be an array or typed array of numbers");
  }
  auto get = [&](int64_t i) -> double { return src32 ? src32[i] : src64[i]; };
  if (dt == DType::I32 || dt == DType::I8) {
    double lo = dt == DType::I32 ? -2147483648.0 : -128.0, hi = dt == DType::I32 ? 2147483647.0 : 127.0;
    for (int64_t i = 0; i < n; ++i) {
      double d = get(i);
      if (!std::isfinite(d) || d != std::floor(d) || d < lo || d > hi)
        a.range_error("data[" + std::to_string(i) + "] = " + std::to_string(d) + " is not a valid " + dtype_name(dt) + " value");
    }
  }
  if (n == 0) return TensorWrap::Create(info.Env(), dt, s);
  Napi::Object out = TensorWrap::Create(info.Env(), dt, s);
  TensorWrap* t = TensorWrap::Unwrap(out);
  switch (dt) {
    case DType::F32: {
      float* y = t->f32();
      if (src32) std::memcpy(y, src32, n * 4);
      else for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(src64[i]);
      break;
    }
    case DType::BF16: {
      uint16_t* y = t->data<uint16_t>();
      for (int64_t i = 0; i < n; ++i) y[i] = f32_to_bf16(narrow_round_odd(get(i)));
      break;
    }
    case DType::F16: {
      uint16_t* y = t->data<uint16_t>();
      for (int64_t i = 0; i < n; ++i) y[i] = f32_to_f16(narrow_round_odd(get(i)));
      break;
    }
    case DType::I32: {
      int32_t* y = t->i32();
      for (int64_t i = 0; i < n; ++i) y[i] = static_cast<int32_t>(get(i));
      break;
    }
    case DType::I8: {
      int8_t* y = t->data<int8_t>();
      for (int64_t i = 0; i < n; ++i) y[i] = static_cast<int8_t>(get(i));
      break;
    }
  }
  return out;
}

// toArray(t): Float32Array for float dtypes, Int32Array / Int8Array otherwise
static Napi::Value ToArray(const Napi::CallbackInfo& info) {
  Args a(info, "toArray");
  a.count(1);
  TensorWrap* t = a.tensor(0, "tensor");
  Napi::Env env = info.Env();
  int64_t n = t->numel;
  bool is_float = t->dtype == DType::F32 || t->dtype == DType::BF16 || t->dtype == DType::F16;
  size_t es = t->dtype == DType::I8 ? 1 : 4;
  napi_typedarray_type type = is_float ? napi_float32_array : t->dtype == DType::I32 ? napi_int32_array : napi_int8_array;
  void* dst = nullptr;
  napi_value ab = new_array_buffer(env, "toArray", size_t(n) * es, &dst);
  napi_value arr;
  if (napi_create_typedarray(env, type, size_t(n), ab, 0, &arr) != napi_ok) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
      napi_value e;
      napi_get_and_clear_last_exception(env, &e);
    }
    a.range_error("cannot make a typed array of " + std::to_string(n) + " elements");
  }
  if (n == 0) return Napi::Value(env, arr);
  if (t->device == Device::CUDA) {
    // synchronizes: a fault of an earlier kernel surfaces here
    if (t->dtype == DType::BF16 || t->dtype == DType::F16) {
      std::vector<uint16_t> h(static_cast<size_t>(n));
      TK_CUDA(a, memcpy_d2h, h.data(), t->raw(), size_t(n) * 2);
      float* d = static_cast<float*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = t->dtype == DType::BF16 ? bf16_to_f32(h[i]) : f16_to_f32(h[i]);
    } else {
      TK_CUDA(a, memcpy_d2h, dst, t->raw(), size_t(n) * es);
    }
    return Napi::Value(env, arr);
  }
  switch (t->dtype) {
    case DType::F32: case DType::I32: std::memcpy(dst, t->raw(), n * 4); break;
    case DType::I8: std::memcpy(dst, t->raw(), n); break;
    case DType::BF16: case DType::F16: {
      const uint16_t* s = t->data<uint16_t>();
      float* d = static_cast<float*>(dst);
      if (t->dtype == DType::BF16) for (int64_t i = 0; i < n; ++i) d[i] = bf16_to_f32(s[i]);
      else for (int64_t i = 0; i < n; ++i) d[i] = f16_to_f32(s[i]);
      break;
    }
  }
  return Napi::Value(env, arr);
}

// fill(t, value): in place
static Napi::Value Fill(const Napi::CallbackInfo& info) {
  Args a(info, "fill");
  a.count(2);
  TensorWrap* t = a.tensor(0, "tensor");
  if (!info[1].IsNumber()) a.type_error("argument 'value' must be a number");
  double v = info[1].As<Napi::Number>().DoubleValue();
  int64_t n = t->numel;
  if (t->device == Device::CUDA) {
    double dv = v;
    if (t->dtype == DType::BF16) dv = bf16_to_f32(f32_to_bf16(narrow_round_odd(v)));  // exact in bf16
    else if (t->dtype == DType::F16) a.type_error("f16 tensors are not supported on CUDA (use bf16)");
    else if (t->dtype == DType::I32 || t->dtype == DType::I8) {
      double lo = t->dtype == DType::I32 ? -2147483648.0 : -128.0, hi = t->dtype == DType::I32 ? 2147483647.0 : 127.0;
      if (!std::isfinite(v) || v != std::floor(v) || v < lo || v > hi) a.range_error("value is not a valid " + std::string(dtype_name(t->dtype)) + " value");
    }
    if (n) TK_CUDA(a, fill, t->raw(), tk_dt(t->dtype), n, dv);
    return info.Env().Undefined();
  }
  switch (t->dtype) {
    case DType::F32: { float f = float(v); float* y = t->f32(); for (int64_t i = 0; i < n; ++i) y[i] = f; break; }
    case DType::BF16: { uint16_t h = f32_to_bf16(narrow_round_odd(v)); uint16_t* y = t->data<uint16_t>(); for (int64_t i = 0; i < n; ++i) y[i] = h; break; }
    case DType::F16: { uint16_t h = f32_to_f16(narrow_round_odd(v)); uint16_t* y = t->data<uint16_t>(); for (int64_t i = 0; i < n; ++i) y[i] = h; break; }
    case DType::I32: case DType::I8: {
      double lo = t->dtype == DType::I32 ? -2147483648.0 : -128.0, hi = t->dtype == DType::I32 ? 2147483647.0 : 127.0;
      if (!std::isfinite(v) || v != std::floor(v) || v < lo || v > hi) a.range_error("value is not a valid " + std::string(dtype_name(t->dtype)) + " value");
      if (t->dtype == DType::I32) { int32_t* y = t->i32(); for (int64_t i = 0; i < n; ++i) y[i] = int32_t(v); }
      else std::memset(t->data<int8_t>(), int8_t(v), n);
      break;
    }
  }
  return info.Env().Undefined();
}

// rand(shape, seed, lo, hi) / randn(shape, seed, mean, std): f32
static Napi::Value RandomFill(const Napi::CallbackInfo& info, bool normal) {
  Args a(info, normal ? "randn" : "rand");
  a.count(4);
  Shape s = a.shape(0, "shape");
  int64_t seed = a.integer(1, "seed", 0, (int64_t(1) << 53));
  double p1 = a.number(2, normal ? "mean" : "low"), p2 = a.number(3, normal ? "std" : "high");
  Napi::Object out = TensorWrap::Create(info.Env(), DType::F32, s);
  TensorWrap* t = TensorWrap::Unwrap(out);
  if (normal) fill_normal(t->f32(), t->numel, uint64_t(seed), float(p1), float(p2));
  else fill_uniform(t->f32(), t->numel, uint64_t(seed), float(p1), float(p2));
  return out;
}
static Napi::Value Rand(const Napi::CallbackInfo& info) { return RandomFill(info, false); }
static Napi::Value Randn(const Napi::CallbackInfo& info) { return RandomFill(info, true); }

// cast(t, dtype): new tensor; float -> int truncates toward zero and saturates
static Napi::Value Cast(const Napi::CallbackInfo& info) {
  Args a(info, "cast");
  a.count(2);
  TensorWrap* t = a.tensor(0, "tensor");
  DType dt;
  if (!parse_dtype(a.string(1, "dtype"), &dt)) a.type_error("unknown dtype (expected f32, bf16, f16, i8 or i32)");
  Napi::Object out = TensorWrap::Create(info.Env(), dt, t->shape);
  TensorWrap* o = TensorWrap::Unwrap(out);
  int64_t n = t->numel;
  if (t->device == Device::CUDA) {
    if (dt == DType::F16 || t->dtype == DType::F16) a.type_error("f16 tensors are not supported on CUDA (use bf16)");
    int64_t one = 1;
    if (n) TK_CUDA(a, copy_strided, o->raw(), tk_dt(dt), &one, t->raw(), tk_dt(t->dtype), &one, 1, &n);
    return out;
  }
  if (dt == t->dtype) {
    std::memcpy(o->storage->data, t->storage->data, n * dtype_size(dt));
    return out;
  }
  auto load = [&](int64_t i) -> float {
    switch (t->dtype) {
      case DType::F32: return t->f32()[i];
      case DType::BF16: return bf16_to_f32(t->data<uint16_t>()[i]);
      case DType::F16: return f16_to_f32(t->data<uint16_t>()[i]);
      case DType::I32: return static_cast<float>(t->i32()[i]);
      case DType::I8: return static_cast<float>(t->data<int8_t>()[i]);
    }
    return 0;
  };
  auto sat = [](float f, float lo, float hi) { return f != f ? 0.0f : (f < lo ? lo : (f > hi ? hi : f)); };
  par(n, 1 << 15, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      switch (dt) {
        case DType::F32: o->f32()[i] = load(i); break;
        case DType::BF16: o->data<uint16_t>()[i] = f32_to_bf16(load(i)); break;
        case DType::F16: o->data<uint16_t>()[i] = f32_to_f16(load(i)); break;
        case DType::I32:
          o->i32()[i] = t->dtype == DType::I8 ? t->data<int8_t>()[i] : static_cast<int32_t>(std::trunc(static_cast<double>(sat(load(i), -2147483648.0f, 2147483520.0f))));
          break;
        case DType::I8: o->data<int8_t>()[i] = static_cast<int8_t>(std::trunc(sat(load(i), -128.0f, 127.0f))); break;
      }
    }
  });
  return out;
}

static Napi::Value Reshape(const Napi::CallbackInfo& info) {
  Args a(info, "reshape");
  a.count(2);
  TensorWrap* t = a.tensor(0, "tensor");
  Shape s = a.shape(1, "shape");
  if (shape_numel(s) != t->numel)
    a.range_error("cannot reshape " + shape_str(t->shape) + " (" + std::to_string(t->numel) + " elements) to " + shape_str(s));
  return TensorWrap::CreateView(info.Env(), t, t->dtype, s);
}

static Napi::Value Clone(const Napi::CallbackInfo& info) {
  Args a(info, "clone");
  a.count(1);
  TensorWrap* t = a.tensor(0, "tensor");
  Napi::Object out = TensorWrap::Create(info.Env(), t->dtype, t->shape);
  size_t bytes = size_t(t->numel) * dtype_size(t->dtype);
  if (t->device == Device::CUDA) TK_CUDA(a, memcpy_d2d, TensorWrap::Unwrap(out)->raw(), t->raw(), bytes);
  else std::memcpy(TensorWrap::Unwrap(out)->storage->data, t->storage->data, bytes);
  return out;
}

// permute_forward(x, dims): any dtype
static Napi::Value Permute(const Napi::CallbackInfo& info) {
  Args a(info, "permute");
  a.count(2);
  TensorWrap* t = a.tensor(0, "x");
  int64_t rank = static_cast<int64_t>(t->shape.size());
  if (!info[1].IsArray()) a.type_error("argument 'dims' must be an array of axes");
  Napi::Array arr = info[1].As<Napi::Array>();
  if (static_cast<int64_t>(arr.Length()) != rank)
    a.range_error("dims has " + std::to_string(arr.Length()) + " entries but x has rank " + std::to_string(rank));
  std::vector<int64_t> dims(rank);
  std::vector<bool> seen(rank, false);
  for (int64_t k = 0; k < rank; ++k) {
    Napi::Value v = arr[static_cast<uint32_t>(k)];
    if (!v.IsNumber()) a.type_error("dims must contain integers");
    double d = v.As<Napi::Number>().DoubleValue();
    if (d != std::floor(d) || d < -rank || d >= rank) a.range_error("dims[" + std::to_string(k) + "] is not an axis of a rank-" + std::to_string(rank) + " tensor");
    int64_t ax = d < 0 ? int64_t(d) + rank : int64_t(d);
    if (seen[ax]) a.range_error("dims repeats axis " + std::to_string(ax));
    seen[ax] = true;
    dims[k] = ax;
  }
  Shape os(rank);
  for (int64_t k = 0; k < rank; ++k) os[k] = t->shape[dims[k]];
  Napi::Object out = TensorWrap::Create(info.Env(), t->dtype, os);
  if (t->numel == 0) return out;
  if (t->device == Device::CUDA) {
    if (rank > TK_MAX_DIMS) a.range_error("CUDA permutes at most " + std::to_string(TK_MAX_DIMS) + " dimensions");
    std::vector<int64_t> xs = contiguous_strides(t->shape), px(rank), ys = contiguous_strides(os);
    for (int64_t k = 0; k < rank; ++k) px[k] = xs[dims[k]];
    TK_CUDA(a, copy_strided, TensorWrap::Unwrap(out)->raw(), tk_dt(t->dtype), ys.data(), t->raw(),
                                               tk_dt(t->dtype), px.data(), int(rank), os.data());
    return out;
  }
  permute_copy(t->storage->data, TensorWrap::Unwrap(out)->storage->data, t->shape, dims, dtype_size(t->dtype));
  return out;
}

// x viewed as [outer, n, inner] around `axis`
static void split_axis(const Shape& s, int64_t axis, int64_t* outer, int64_t* inner) {
  *outer = 1;
  *inner = 1;
  for (int64_t k = 0; k < axis; ++k) *outer *= s[k];
  for (size_t k = axis + 1; k < s.size(); ++k) *inner *= s[k];
}

// slice_forward(x, axis, start, end): x[..., start:end, ...] along axis
static Napi::Value SliceForward(const Napi::CallbackInfo& info) {
  Args a(info, "slice");
  a.count(4);
  TensorWrap* t = a.tensor(0, "x");
  int64_t axis = a.axis(1, "axis", t->shape.size());
  int64_t len = t->shape[axis];
  int64_t start = a.integer(2, "start", 0, len);
  int64_t end = a.integer(3, "end", start, len);
  Shape os = t->shape;
  os[axis] = end - start;
  Napi::Object out = TensorWrap::Create(info.Env(), t->dtype, os);
  if (shape_numel(os) == 0) return out;  // (outer sizes may be huge when empty)
  int64_t outer, inner, es = dtype_size(t->dtype);
  split_axis(t->shape, axis, &outer, &inner);
  if (t->device == Device::CUDA) {
    // [outer, end - start, inner] out of [outer, len, inner]
    int64_t sizes[3] = {outer, end - start, inner}, ys[3] = {(end - start) * inner, inner, 1}, xs[3] = {len * inner, inner, 1};
    const char* x0 = static_cast<const char*>(t->raw()) + start * inner * es;
    TK_CUDA(a, copy_strided, TensorWrap::Unwrap(out)->raw(), tk_dt(t->dtype), ys, x0, tk_dt(t->dtype), xs, 3, sizes);
    return out;
  }
  const char* src = static_cast<const char*>(t->storage->data);
  char* dst = static_cast<char*>(TensorWrap::Unwrap(out)->storage->data);
  int64_t block = (end - start) * inner * es;
  par(outer, 64, [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) std::memcpy(dst + o * block, src + (o * len + start) * inner * es, block);
  });
  return out;
}

// slice_backward(gy, shape, axis, start): zeros of `shape` with gy written at start
static Napi::Value SliceBackward(const Napi::CallbackInfo& info) {
  Args a(info, "slice_backward");
  a.count(4);
  TensorWrap* g = a.tensor(0, "gy");
  Shape s = a.shape(1, "shape");
  if (s.size() != g->shape.size()) a.range_error("gy rank does not match shape");
  int64_t axis = a.axis(2, "axis", s.size());
  int64_t start = a.integer(3, "start", 0, s[axis]);
  for (size_t k = 0; k < s.size(); ++k)
    if ((int64_t(k) != axis && s[k] != g->shape[k]) || (int64_t(k) == axis && start + g->shape[k] > s[k]))
      a.range_error("gy shape " + shape_str(g->shape) + " does not fit in " + shape_str(s) + " at " + std::to_string(start));
  Napi::Object out = TensorWrap::Create(info.Env(), g->dtype, s);
  int64_t outer, inner, es = dtype_size(g->dtype);
  if (g->device == Device::CUDA) {
    char* y = static_cast<char*>(TensorWrap::Unwrap(out)->raw());
    if (shape_numel(s)) TK_CUDA(a, fill, y, tk_dt(g->dtype), shape_numel(s), 0.0);
    if (g->numel == 0) return out;
    split_axis(s, axis, &outer, &inner);
    int64_t w = g->shape[axis];
    int64_t sizes[3] = {outer, w, inner}, ys[3] = {s[axis] * inner, inner, 1}, xs[3] = {w * inner, inner, 1};
    TK_CUDA(a, copy_strided, y + start * inner * es, tk_dt(g->dtype), ys, g->raw(), tk_dt(g->dtype), xs, 3, sizes);
    return out;
  }
  char* dst = static_cast<char*>(TensorWrap::Unwrap(out)->storage->data);
  std::memset(dst, 0, shape_numel(s) * es);
  if (g->numel == 0) return out;  // (outer sizes may be huge when empty)
  split_axis(s, axis, &outer, &inner);
  const char* src = static_cast<const char*>(g->storage->data);
  int64_t block = g->shape[axis] * inner * es;
  for (int64_t o = 0; o < outer; ++o) std::memcpy(dst + (o * s[axis] + start) * inner * es, src + o * block, block);
  return out;
}

// concat_forward(tensors, axis)
static Napi::Value ConcatForward(const Napi::CallbackInfo& info) {
  Args a(info, "concat");
  a.count(2);
  std::vector<TensorWrap*> ts = a.tensor_list(0, "tensors");
  if (ts.empty()) a.range_error("needs at least one tensor");
  const Shape& s0 = ts[0]->shape;
  int64_t axis = a.axis(1, "axis", s0.size());
  int64_t total = 0;
  for (size_t i = 0; i < ts.size(); ++i) {
    if (ts[i]->dtype != ts[0]->dtype) a.type_error("tensors[" + std::to_string(i) + "] has dtype " + dtype_name(ts[i]->dtype) + ", expected " + dtype_name(ts[0]->dtype));
    const Shape& si = ts[i]->shape;
    bool ok = si.size() == s0.size();
    for (size_t k = 0; ok && k < s0.size(); ++k)
      if (int64_t(k) != axis && si[k] != s0[k]) ok = false;
    if (!ok) a.range_error("tensors[" + std::to_string(i) + "] has shape " + shape_str(si) + ", incompatible with " + shape_str(s0) + " along axis " + std::to_string(axis));
    if (si[axis] > kMaxDim - total) a.range_error("the result would have more than 2^53 - 1 entries along axis " + std::to_string(axis));
    total += si[axis];
  }
  Shape os = s0;
  os[axis] = total;
  Napi::Object out = TensorWrap::Create(info.Env(), ts[0]->dtype, os);
  if (shape_numel(os) == 0) return out;  // (outer sizes may be huge when empty)
  int64_t outer, inner, es = dtype_size(ts[0]->dtype);
  split_axis(os, axis, &outer, &inner);
  char* dst = static_cast<char*>(TensorWrap::Unwrap(out)->storage->data);
  if (ts[0]->device == Device::CUDA) {
    int64_t at = 0;
    for (TensorWrap* t : ts) {
      int64_t w = t->shape[axis];
      if (w && outer && inner) {
        int64_t sizes[3] = {outer, w, inner}, ys[3] = {total * inner, inner, 1}, xs[3] = {w * inner, inner, 1};
        TK_CUDA(a, copy_strided, dst + at * inner * es, tk_dt(t->dtype), ys, t->raw(), tk_dt(t->dtype), xs, 3, sizes);
      }
      at += w;
    }
    return out;
  }
  int64_t row = total * inner * es, off = 0;
  for (TensorWrap* t : ts) {
    int64_t block = t->shape[axis] * inner * es;
    const char* src = static_cast<const char*>(t->storage->data);
    for (int64_t o = 0; o < outer; ++o) std::memcpy(dst + o * row + off, src + o * block, block);
    off += block;
  }
  return out;
}

// expand(x, shape): broadcast copy
static Napi::Value Expand(const Napi::CallbackInfo& info) {
  Args a(info, "expand");
  a.count(2);
  TensorWrap* t = a.tensor(0, "x");
  Shape s = a.shape(1, "shape");
  Shape b = broadcast_shapes(a, t->shape, s);
  if (b != s) a.range_error("cannot expand " + shape_str(t->shape) + " to " + shape_str(s));
  Napi::Object out = TensorWrap::Create(info.Env(), t->dtype, s);
  if (shape_numel(s) == 0) return out;
  if (t->device == Device::CUDA) {
    BroadcastPlan p = plan_broadcast(s, {s, t->shape});
    CudaStrides c = cuda_strides(a, p);
    TK_CUDA(a, copy_strided, TensorWrap::Unwrap(out)->raw(), tk_dt(t->dtype), c.strides[0], t->raw(),
                                               tk_dt(t->dtype), c.strides[1], c.ndim, c.sizes);
    return out;
  }
  expand_copy(t->storage->data, t->shape, TensorWrap::Unwrap(out)->storage->data, s, dtype_size(t->dtype));
  return out;
}

// sum_to on CUDA: one axis reduction per expanded axis (leading axes at once),
// through temporaries, the last one written into the result.
static Napi::Value sum_to_cuda(const Args& a, TensorWrap* t, const Shape& s) {
  Napi::Object out = TensorWrap::Create(a.env(), t->dtype, s);
  TensorWrap* o = TensorWrap::Unwrap(out);
  int64_t n_out = shape_numel(s);
  size_t es = dtype_size(t->dtype);
  if (n_out == 0) return out;
  if (t->numel == 0) {
    TK_CUDA(a, fill, o->raw(), tk_dt(t->dtype), n_out, 0.0);
    return out;
  }
  // the reductions to do, each over the middle of [outer, n, inner] of the current shape
  Shape cur = t->shape;
  size_t lead = cur.size() - s.size();
  struct Step { int64_t outer, n, inner; };
  std::vector<Step> steps;
  if (lead) {
    int64_t n = 1;
    for (size_t k = 0; k < lead; ++k) n *= cur[k];
    steps.push_back({1, n, t->numel / n});
    cur.erase(cur.begin(), cur.begin() + lead);
  }
  for (size_t k = 0; k < s.size(); ++k) {
    if (s[k] != 1 || cur[k] == 1) continue;
    int64_t outer = 1, inner = 1;
    for (size_t j = 0; j < k; ++j) outer *= cur[j];
    for (size_t j = k + 1; j < cur.size(); ++j) inner *= cur[j];
    steps.push_back({outer, cur[k], inner});
    cur[k] = 1;
  }
  if (steps.empty()) {
    TK_CUDA(a, memcpy_d2d, o->raw(), t->raw(), size_t(n_out) * es);
    return out;
  }
  CudaScratch scratch(a);  // the intermediate sums; the last step writes the result
  const void* src = t->raw();
  for (size_t i = 0; i < steps.size(); ++i) {
    const Step& st = steps[i];
    void* dst = i + 1 == steps.size() ? o->raw() : scratch.get(size_t(st.outer * st.inner) * es);
    TK_CUDA(a, reduce_axis, TK_SUM, tk_dt(t->dtype), src, st.outer, st.n, st.inner, dst, nullptr);
    src = dst;
  }
  return out;
}

// sum_to(x, shape): sums x over the dimensions that broadcasting expanded from `shape`
static Napi::Value SumTo(const Napi::CallbackInfo& info) {
  Args a(info, "sumTo");
  a.count(2);
  TensorWrap* t = a.tensor_float(0, "x");
  Shape s = a.shape(1, "shape");
  Shape b = broadcast_shapes(a, s, t->shape);
  if (b != t->shape) a.range_error("cannot sum " + shape_str(t->shape) + " down to " + shape_str(s));
  if (t->device == Device::CUDA) return sum_to_cuda(a, t, s);
  Napi::Object out = TensorWrap::Create(info.Env(), DType::F32, s);
  float* y = TensorWrap::Unwrap(out)->f32();
  int64_t n_out = shape_numel(s);
  std::memset(y, 0, n_out * 4);
  if (t->numel == 0) return out;  // zeros (and outer sizes may be huge)
  // y is the broadcast operand: accumulate x into it, one merged row at a time
  BroadcastPlan p = plan_broadcast(t->shape, {t->shape, s});
  const float* x = t->f32();
  int64_t inner = p.inner(), s_in = p.strides[1].back();
  int64_t outer = p.outer();
  // Parallel over output rows is not race-free in general; the reduction is
  // parallel over chunks of the inner axis instead when the output keeps it.
  if (s_in == 1) {
    par(inner, 4096, [&](int64_t b0, int64_t e0) {
      for (int64_t o = 0; o < outer; ++o) {
        const float* xr = x + p.offset(0, o);
        float* yr = y + p.offset(1, o);
        for (int64_t j = b0; j < e0; ++j) yr[j] += xr[j];
      }
    });
  } else {
    for (int64_t o = 0; o < outer; ++o) {
      const float* xr = x + p.offset(0, o);
      float* yr = y + p.offset(1, o);
      float acc = 0.0f;
      for (int64_t j = 0; j < inner; ++j) acc += xr[j];
      *yr += acc;
    }
  }
  return out;
}

void register_tensor_ops(Napi::Env env, Napi::Object exports) {
  define<Empty>(env, exports, "empty", "empty");
  define<FromArray>(env, exports, "fromArray", "fromArray");
  define<ToArray>(env, exports, "toArray", "toArray");
  define<Fill>(env, exports, "fill", "fill");
  define<ToDevice>(env, exports, "toDevice", "to");
  define<Rand>(env, exports, "rand", "rand");
  define<Randn>(env, exports, "randn", "randn");
  define<Cast>(env, exports, "cast", "cast");
  define<Reshape>(env, exports, "reshape", "reshape");
  define<Clone>(env, exports, "clone", "clone");
  define<Permute>(env, exports, "permute_forward", "permute");
  define<SliceForward>(env, exports, "slice_forward", "slice");
  define<SliceBackward>(env, exports, "slice_backward", "slice_backward");
  define<ConcatForward>(env, exports, "concat_forward", "concat");
  define<Expand>(env, exports, "expand", "expand");
  define<SumTo>(env, exports, "sum_to", "sumTo");
}

}  // namespace tk
