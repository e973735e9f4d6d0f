// Bindings of the differentiable math ops. Each validates its arguments,
// allocates the outputs and calls the active ISA's kernel (runtime/isa.h).
#include <cmath>
#include <cstring>

#include <cstdlib>
#include <memory>
#include <vector>

#include "../cpu/baseline.h"
#include "../runtime/isa.h"
#include "bindings.h"
#include "cuda_ops.h"

namespace tk {
namespace {

Napi::Object new_f32(Napi::Env env, const Shape& s, TensorWrap** w) {
  Napi::Object o = TensorWrap::Create(env, DType::F32, s);
  *w = TensorWrap::Unwrap(o);
  return o;
}

// An output of the op's float dtype (f32 on the CPU; f32 or bf16 on CUDA).
Napi::Object new_like(Napi::Env env, const TensorWrap* like, const Shape& s, TensorWrap** w) {
  Napi::Object o = TensorWrap::Create(env, like->dtype, s);
  *w = TensorWrap::Unwrap(o);
  return o;
}

void same_dtype(const Args& a, const TensorWrap* x, const TensorWrap* y, const char* nx, const char* ny) {
  if (x->dtype != y->dtype)
    a.type_error(std::string("'") + nx + "' is " + dtype_name(x->dtype) + " but '" + ny + "' is " + dtype_name(y->dtype) +
                 "; convert one with .to()");
}

bool parse_unary(const std::string& s, UnaryOp* op) {
  static const struct { const char* n; UnaryOp op; } table[] = {
      {"neg", UnaryOp::Neg}, {"exp", UnaryOp::Exp}, {"log", UnaryOp::Log}, {"sqrt", UnaryOp::Sqrt},
      {"scale", UnaryOp::Scale}, {"pow", UnaryOp::Pow}, {"gelu", UnaryOp::Gelu}, {"silu", UnaryOp::Silu},
      {"relu", UnaryOp::Relu}, {"tanh", UnaryOp::Tanh}, {"geluErf", UnaryOp::GeluErf}};
  for (auto& e : table)
    if (s == e.n) { *op = e.op; return true; }
  return false;
}

void same_shape(const Args& a, const TensorWrap* x, const TensorWrap* y, const char* nx, const char* ny) {
  if (x->shape != y->shape)
    a.range_error(std::string("'") + nx + "' " + shape_str(x->shape) + " and '" + ny + "' " + shape_str(y->shape) + " must have the same shape");
}

}  // namespace

// unary_forward(name, x, p)
static Napi::Value UnaryForward(const Napi::CallbackInfo& info) {
  Args a(info, "unary");
  a.count(3);
  std::string name = a.string(0, "op");
  UnaryOp op;
  if (!parse_unary(name, &op)) a.type_error("unknown unary op '" + name + "'");
  Args b(info, name.c_str());
  TensorWrap* x = b.tensor_float(1, "x");
  float p = static_cast<float>(b.number(2, "p"));
  TensorWrap* y;
  Napi::Object out = new_like(info.Env(), x, x->shape, &y);
  if (b.cuda()) {
    if (x->numel) TK_CUDA(b, unary_forward, tk_unary_op(op), tk_dt(x->dtype), x->raw(), y->raw(), x->numel, p);
    return out;
  }
  kt().unary_forward(op, x->f32(), y->f32(), x->numel, p);
  return out;
}

// unary_backward(name, x, y, gy, p) -> gx
static Napi::Value UnaryBackward(const Napi::CallbackInfo& info) {
  Args a(info, "unary_backward");
  a.count(5);
  std::string name = a.string(0, "op");
  UnaryOp op;
  if (!parse_unary(name, &op)) a.type_error("unknown unary op '" + name + "'");
  std::string opname = name + "_backward";
  Args b(info, opname.c_str());
  TensorWrap* x = b.tensor_float(1, "x");
  TensorWrap* y = b.tensor_float(2, "y");
  TensorWrap* gy = b.tensor_float(3, "gy");
  float p = static_cast<float>(b.number(4, "p"));
  same_shape(b, x, y, "x", "y");
  same_shape(b, x, gy, "x", "gy");
  same_dtype(b, x, y, "x", "y");
  same_dtype(b, x, gy, "x", "gy");
  TensorWrap* gx;
  Napi::Object out = new_like(info.Env(), x, x->shape, &gx);
  if (b.cuda()) {
    if (x->numel)
      TK_CUDA(b, unary_backward, tk_unary_op(op), tk_dt(x->dtype), x->raw(), y->raw(), gy->raw(), gx->raw(), x->numel, p);
    return out;
  }
  kt().unary_backward(op, x->f32(), y->f32(), gy->f32(), gx->f32(), x->numel, p);
  return out;
}

// binary_forward(name, a, b): broadcasting add / sub / mul / div
static Napi::Value BinaryForward(const Napi::CallbackInfo& info) {
  Args a0(info, "binary");
  a0.count(3);
  std::string name = a0.string(0, "op");
  BinaryOp op;
  if (name == "add") op = BinaryOp::Add;
  else if (name == "sub") op = BinaryOp::Sub;
  else if (name == "mul") op = BinaryOp::Mul;
  else if (name == "div") op = BinaryOp::Div;
  else a0.type_error("unknown binary op '" + name + "'");
  Args args(info, name.c_str());
  TensorWrap* x = args.tensor_float(1, "a");
  TensorWrap* z = args.tensor_float(2, "b");
  same_dtype(args, x, z, "a", "b");
  Shape s = broadcast_shapes(args, x->shape, z->shape);
  TensorWrap* y;
  Napi::Object out = new_like(info.Env(), x, s, &y);
  if (shape_numel(s) == 0) return out;
  if (args.cuda()) {
    CudaStrides c = cuda_strides(args, plan_broadcast(s, {x->shape, z->shape}));
    TK_CUDA(args, binary, tk_binary_op(op), tk_dt(x->dtype), x->raw(), c.strides[0], z->raw(),
                                               c.strides[1], y->raw(), c.ndim, c.sizes);
    return out;
  }
  if (x->shape == z->shape) {
    kt().binary_inner(op, x->f32(), 1, z->f32(), 1, y->f32(), y->numel);
    return out;
  }
  BroadcastPlan p = plan_broadcast(s, {x->shape, z->shape});
  int64_t inner = p.inner(), sa = p.strides[0].back(), sb = p.strides[1].back();
  const float* xa = x->f32();
  const float* xb = z->f32();
  float* yo = y->f32();
  const KernelTable& k = kt();
  par(p.outer(), inner >= 4096 ? 1 : (4096 + inner - 1) / inner, [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o)
      k.binary_inner(op, xa + p.offset(0, o), sa, xb + p.offset(1, o), sb, yo + o * inner, inner);
  });
  return out;
}

// where_forward(cond, a, b): cond (f32, i32 or i8; nonzero = true) ? a : b, broadcasting
static Napi::Value WhereForward(const Napi::CallbackInfo& info) {
  Args args(info, "where");
  args.count(3);
  TensorWrap* c = args.tensor(0, "cond");
  if (c->dtype == DType::BF16 || c->dtype == DType::F16) args.type_error("'cond' must be f32, i32 or i8");
  TensorWrap* x = args.tensor_float(1, "a");
  TensorWrap* z = args.tensor_float(2, "b");
  same_dtype(args, x, z, "a", "b");
  Shape s = broadcast_shapes(args, broadcast_shapes(args, c->shape, x->shape), z->shape);
  TensorWrap* y;
  Napi::Object out = new_like(info.Env(), x, s, &y);
  if (shape_numel(s) == 0) return out;
  if (args.cuda()) {
    CudaStrides st = cuda_strides(args, plan_broadcast(s, {c->shape, x->shape, z->shape}));
    TK_CUDA(args, where, c->raw(), tk_dt(c->dtype), st.strides[0], x->raw(), st.strides[1], z->raw(),
                                              st.strides[2], tk_dt(x->dtype), y->raw(), st.ndim, st.sizes);
    return out;
  }
  BroadcastPlan p = plan_broadcast(s, {c->shape, x->shape, z->shape});
  int64_t inner = p.inner(), sc = p.strides[0].back(), sa = p.strides[1].back(), sb = p.strides[2].back();
  DType cd = c->dtype;
  const void* cv = c->raw();
  const float* xa = x->f32();
  const float* xb = z->f32();
  float* yo = y->f32();
  par(p.outer(), inner >= 4096 ? 1 : (4096 + inner - 1) / inner, [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) {
      int64_t oc = p.offset(0, o);
      const float* ra = xa + p.offset(1, o);
      const float* rb = xb + p.offset(2, o);
      float* ry = yo + o * inner;
      for (int64_t j = 0; j < inner; ++j) {
        bool t = cd == DType::F32 ? static_cast<const float*>(cv)[oc + j * sc] != 0.0f
                 : cd == DType::I32 ? static_cast<const int32_t*>(cv)[oc + j * sc] != 0
                                    : static_cast<const int8_t*>(cv)[oc + j * sc] != 0;
        ry[j] = t ? ra[j * sa] : rb[j * sb];
      }
    }
  });
  return out;
}

// masked_fill_forward(x, mask, value): mask broadcasts to x's shape
static Napi::Value MaskedFillForward(const Napi::CallbackInfo& info) {
  Args args(info, "maskedFill");
  args.count(3);
  TensorWrap* x = args.tensor_float(0, "x");
  TensorWrap* m = args.tensor(1, "mask");
  if (m->dtype == DType::BF16 || m->dtype == DType::F16) args.type_error("'mask' must be f32, i32 or i8");
  if (!info[2].IsNumber()) args.type_error("argument 'value' must be a number");
  float value = static_cast<float>(info[2].As<Napi::Number>().DoubleValue());  // -inf allowed
  Shape s = broadcast_shapes(args, x->shape, m->shape);
  if (s != x->shape) args.range_error("mask " + shape_str(m->shape) + " does not broadcast to x " + shape_str(x->shape));
  TensorWrap* y;
  Napi::Object out = new_like(info.Env(), x, s, &y);
  if (x->numel == 0) return out;
  if (args.cuda()) {
    // y = mask ? value : x, the value broadcast from a one-element tensor
    CudaScratch scratch(args);
    void* v = scratch.get(dtype_size(x->dtype));
    TK_CUDA(args, fill, v, tk_dt(x->dtype), 1, value);
    CudaStrides st = cuda_strides(args, plan_broadcast(s, {m->shape, Shape{}, x->shape}));
    TK_CUDA(args, where, m->raw(), tk_dt(m->dtype), st.strides[0], v, st.strides[1], x->raw(), st.strides[2], tk_dt(x->dtype),
            y->raw(), st.ndim, st.sizes);
    return out;
  }
  BroadcastPlan p = plan_broadcast(s, {x->shape, m->shape});
  int64_t inner = p.inner(), sm = p.strides[1].back();
  DType md = m->dtype;
  const void* mv = m->raw();
  const float* xv = x->f32();
  float* yo = y->f32();
  par(p.outer(), inner >= 4096 ? 1 : (4096 + inner - 1) / inner, [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) {
      int64_t om = p.offset(1, o);
      const float* rx = xv + p.offset(0, o);
      float* ry = yo + o * inner;
      for (int64_t j = 0; j < inner; ++j) {
        bool t = md == DType::F32 ? static_cast<const float*>(mv)[om + j * sm] != 0.0f
                 : md == DType::I32 ? static_cast<const int32_t*>(mv)[om + j * sm] != 0
                                    : static_cast<const int8_t*>(mv)[om + j * sm] != 0;
        ry[j] = t ? value : rx[j];
      }
    }
  });
  return out;
}

// reduce_forward(name, x, axis): sum / mean -> y; max -> [y, argmax i32]. The axis is removed.
static Napi::Value ReduceForward(const Napi::CallbackInfo& info) {
  Args a0(info, "reduce");
  a0.count(3);
  std::string name = a0.string(0, "op");
  ReduceOp op;
  if (name == "sum") op = ReduceOp::Sum;
  else if (name == "mean") op = ReduceOp::Mean;
  else if (name == "max") op = ReduceOp::Max;
  else a0.type_error("unknown reduction '" + name + "'");
  Args args(info, name.c_str());
  TensorWrap* x = args.tensor_float(1, "x");
  int64_t axis = args.axis(2, "axis", x->shape.size());
  int64_t n = x->shape[axis], outer = 1, inner = 1;
  if (n == 0 && op != ReduceOp::Sum) args.range_error("cannot take the " + name + " of an empty axis");
  Shape s = x->shape;
  s.erase(s.begin() + axis);
  TensorWrap* y;
  Napi::Object out = new_like(info.Env(), x, s, &y);
  // the sizes multiply to at most 2^40 unless empty (checked first)
  if (y->numel) {
    for (int64_t k = 0; k < axis; ++k) outer *= x->shape[k];
    for (size_t k = axis + 1; k < x->shape.size(); ++k) inner *= x->shape[k];
  }
  if (op == ReduceOp::Max) {
    Napi::Object idx = TensorWrap::Create(info.Env(), DType::I32, s);
    if (y->numel == 0) {
      Napi::Array r = Napi::Array::New(info.Env(), 2);
      r[0u] = out;
      r[1u] = idx;
      return r;
    }
    if (args.cuda())
      TK_CUDA(args, reduce_axis, TK_MAX, tk_dt(x->dtype), x->raw(), outer, n, inner, y->raw(),
                                                      TensorWrap::Unwrap(idx)->i32());
    else kt().reduce_axis(op, x->f32(), outer, n, inner, y->f32(), TensorWrap::Unwrap(idx)->i32());
    Napi::Array r = Napi::Array::New(info.Env(), 2);
    r[0u] = out;
    r[1u] = idx;
    return r;
  }
  if (y->numel == 0) return out;
  if (args.cuda()) {
    if (n == 0) TK_CUDA(args, fill, y->raw(), tk_dt(y->dtype), y->numel, 0.0);
    else TK_CUDA(args, reduce_axis, tk_reduce_op(op), tk_dt(x->dtype), x->raw(), outer, n, inner, y->raw(), nullptr);
    return out;
  }
  if (n == 0) {
    std::memset(y->f32(), 0, y->numel * 4);
    return out;
  }
  kt().reduce_axis(op, x->f32(), outer, n, inner, y->f32(), nullptr);
  return out;
}

// max_backward(gy, idx, shape, axis): scatter gy into zeros of `shape` at argmax
static Napi::Value MaxBackward(const Napi::CallbackInfo& info) {
  Args args(info, "max_backward");
  args.count(4);
  TensorWrap* gy = args.tensor_float(0, "gy");
  TensorWrap* idx = args.tensor_i32(1, "idx");
  Shape s = args.shape(2, "shape");
  int64_t axis = args.axis(3, "axis", s.size());
  Shape r = s;
  r.erase(r.begin() + axis);
  if (gy->shape != r || idx->shape != r) args.range_error("gy and idx must have shape " + shape_str(r));
  TensorWrap* gx;
  Napi::Object out = new_like(info.Env(), gy, s, &gx);
  if (args.cuda()) {
    if (gx->numel) TK_CUDA(args, fill, gx->raw(), tk_dt(gx->dtype), gx->numel, 0.0);
    if (gy->numel == 0) return out;
    int64_t n = s[axis], outer = 1, inner = 1;
    for (int64_t k = 0; k < axis; ++k) outer *= s[k];
    for (size_t k = axis + 1; k < s.size(); ++k) inner *= s[k];
    for (int32_t j : cuda_read_i32(args, idx))
      if (j < 0 || j >= n) args.range_error("argmax index out of range");
    TK_CUDA(args, max_backward, tk_dt(gy->dtype), gy->raw(), idx->i32(), outer, n, inner, gx->raw());
    return out;
  }
  std::memset(gx->f32(), 0, gx->numel * 4);
  if (gy->numel == 0) return out;  // (outer sizes may be huge when empty)
  int64_t n = s[axis], outer = 1, inner = 1;
  for (int64_t k = 0; k < axis; ++k) outer *= s[k];
  for (size_t k = axis + 1; k < s.size(); ++k) inner *= s[k];
  const int32_t* id = idx->i32();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      int32_t j = id[o * inner + i];
      if (j < 0 || j >= n) args.range_error("argmax index out of range");
      gx->f32()[(o * n + j) * inner + i] = gy->f32()[o * inner + i];
    }
  return out;
}

static void axis_split(const Shape& s, int64_t axis, int64_t* outer, int64_t* n, int64_t* inner) {
  *outer = 1;
  *inner = 1;
  *n = s[axis];
  for (int64_t k = 0; k < axis; ++k) *outer *= s[k];
  for (size_t k = axis + 1; k < s.size(); ++k) *inner *= s[k];
}

// softmax_forward(x, axis, log)
static Napi::Value SoftmaxForward(const Napi::CallbackInfo& info) {
  // named after the public op (softmax or logSoftmax)
  Args args(info, info[2].IsBoolean() && info[2].As<Napi::Boolean>().Value() ? "logSoftmax" : "softmax");
  args.count(3);
  TensorWrap* x = args.tensor_float(0, "x");
  int64_t axis = args.axis(1, "axis", x->shape.size());
  bool log = args.boolean(2, "log");
  TensorWrap* y;
  Napi::Object out = new_like(info.Env(), x, x->shape, &y);
  if (x->numel == 0) return out;
  int64_t outer, n, inner;
  axis_split(x->shape, axis, &outer, &n, &inner);
  if (args.cuda()) {
    TK_CUDA(args, softmax_forward, tk_dt(x->dtype), x->raw(), y->raw(), outer, n, inner, log);
    return out;
  }
  kt().softmax_forward(x->f32(), y->f32(), outer, n, inner, log);
  return out;
}

// softmax_backward(y, gy, axis, log)
static Napi::Value SoftmaxBackward(const Napi::CallbackInfo& info) {
  Args args(info, info[3].IsBoolean() && info[3].As<Napi::Boolean>().Value() ? "logSoftmax_backward" : "softmax_backward");
  args.count(4);
  TensorWrap* y = args.tensor_float(0, "y");
  TensorWrap* gy = args.tensor_float(1, "gy");
  same_shape(args, y, gy, "y", "gy");
  same_dtype(args, y, gy, "y", "gy");
  int64_t axis = args.axis(2, "axis", y->shape.size());
  bool log = args.boolean(3, "log");
  TensorWrap* gx;
  Napi::Object out = new_like(info.Env(), y, y->shape, &gx);
  if (y->numel == 0) return out;
  int64_t outer, n, inner;
  axis_split(y->shape, axis, &outer, &n, &inner);
  if (args.cuda()) {
    TK_CUDA(args, softmax_backward, tk_dt(y->dtype), y->raw(), gy->raw(), gx->raw(), outer, n, inner, log);
    return out;
  }
  kt().softmax_backward(y->f32(), gy->f32(), gx->f32(), outer, n, inner, log);
  return out;
}

static void check_targets(const Args& args, const TensorWrap* logits, const TensorWrap* targets, int32_t ignore) {
  if (logits->shape.size() != 2) args.range_error("logits must be [N, V], got " + shape_str(logits->shape));
  if (targets->shape.size() != 1 || targets->shape[0] != logits->shape[0])
    args.range_error("targets must be [N] = [" + std::to_string(logits->shape[0]) + "], got " + shape_str(targets->shape));
  int64_t V = logits->shape[1];
  std::vector<int32_t> host;
  if (targets->device == Device::CUDA) host = cuda_read_i32(args, targets);
  const int32_t* t = targets->device == Device::CUDA ? host.data() : targets->i32();
  for (int64_t i = 0; i < targets->numel; ++i)
    if (t[i] != ignore && (t[i] < 0 || t[i] >= V))
      args.range_error("target " + std::to_string(t[i]) + " at position " + std::to_string(i) + " is out of range [0, " + std::to_string(V) + ")");
}

// cross_entropy_forward(logits [N, V], targets i32 [N], ignoreIndex) -> [loss [N], lse [N]]
static Napi::Value CrossEntropyForward(const Napi::CallbackInfo& info) {
  Args args(info, "crossEntropy");
  args.count(3);
  TensorWrap* lg = args.tensor_float(0, "logits");
  TensorWrap* tg = args.tensor_i32(1, "targets");
  int32_t ignore = static_cast<int32_t>(args.integer(2, "ignoreIndex", INT32_MIN, INT32_MAX));
  check_targets(args, lg, tg, ignore);
  if (lg->shape[1] == 0) args.range_error("logits must have at least one class");
  Shape s{lg->shape[0]};
  TensorWrap *loss, *lse;
  Napi::Object o1 = new_f32(info.Env(), s, &loss);
  Napi::Object o2 = new_f32(info.Env(), s, &lse);
  if (args.cuda()) {
    if (s[0])
      TK_CUDA(args, cross_entropy_forward, tk_dt(lg->dtype), lg->raw(), tg->i32(), lg->shape[0],
                                                                lg->shape[1], ignore, loss->f32(), lse->f32());
  } else kt().cross_entropy_forward(lg->f32(), tg->i32(), lg->shape[0], lg->shape[1], ignore, loss->f32(), lse->f32());
  Napi::Array r = Napi::Array::New(info.Env(), 2);
  r[0u] = o1;
  r[1u] = o2;
  return r;
}

// cross_entropy_backward(logits, lse, targets, gRow [N], ignoreIndex) -> glogits
static Napi::Value CrossEntropyBackward(const Napi::CallbackInfo& info) {
  Args args(info, "crossEntropy_backward");
  args.count(5);
  TensorWrap* lg = args.tensor_float(0, "logits");
  TensorWrap* lse = args.tensor_f32(1, "lse");
  TensorWrap* tg = args.tensor_i32(2, "targets");
  TensorWrap* gr = args.tensor_f32(3, "gRow");
  int32_t ignore = static_cast<int32_t>(args.integer(4, "ignoreIndex", INT32_MIN, INT32_MAX));
  check_targets(args, lg, tg, ignore);
  if (lse->shape != tg->shape || gr->shape != tg->shape) args.range_error("lse and gRow must be [N]");
  TensorWrap* gx;
  Napi::Object out = new_like(info.Env(), lg, lg->shape, &gx);
  if (args.cuda()) {
    if (lg->numel)
      TK_CUDA(args, cross_entropy_backward, tk_dt(lg->dtype), lg->raw(), lse->f32(), tg->i32(), gr->f32(),
                                                                 lg->shape[0], lg->shape[1], ignore, gx->raw());
    return out;
  }
  kt().cross_entropy_backward(lg->f32(), lse->f32(), tg->i32(), gr->f32(), lg->shape[0], lg->shape[1], ignore, gx->f32());
  return out;
}

static void check_norm(const Args& args, const TensorWrap* x, const TensorWrap* w, const TensorWrap* b) {
  if (x->shape.empty()) args.range_error("x must have at least one dimension");
  int64_t C = x->shape.back();
  if (w->shape != Shape{C}) args.range_error("weight must be [" + std::to_string(C) + "], got " + shape_str(w->shape));
  if (b && b->shape != Shape{C}) args.range_error("bias must be [" + std::to_string(C) + "], got " + shape_str(b->shape));
}

static double eps_arg(const Args& args, size_t i) {
  double eps = args.number(i, "eps");
  if (eps < 0) args.range_error("eps must be non-negative");
  return eps;
}

// layer_norm_forward(x, w, b | null, eps) -> [y, mean, rstd]
static Napi::Value LayerNormForward(const Napi::CallbackInfo& info) {
  Args args(info, "layerNorm");
  args.count(4);
  TensorWrap* x = args.tensor_float(0, "x");
  TensorWrap* w = args.tensor_float(1, "weight");
  TensorWrap* b = info[2].IsNull() || info[2].IsUndefined() ? nullptr : args.tensor_float(2, "bias");
  check_norm(args, x, w, b);
  float eps = float(eps_arg(args, 3));
  int64_t C = x->shape.back(), rows = C ? x->numel / C : 0;
  Shape rs(x->shape.begin(), x->shape.end() - 1);
  TensorWrap *y, *mean, *rstd;
  Napi::Array r = Napi::Array::New(info.Env(), 3);
  r[0u] = new_like(info.Env(), x, x->shape, &y);
  r[1u] = new_f32(info.Env(), rs, &mean);
  r[2u] = new_f32(info.Env(), rs, &rstd);
  if (args.cuda()) {
    if (C && rows)
      TK_CUDA(args, layer_norm_forward, tk_dt(x->dtype), x->raw(), w->raw(), b ? b->raw() : nullptr,
                                                             rows, C, eps, y->raw(), mean->f32(), rstd->f32());
    return r;
  }
  if (C && rows) kt().layer_norm_forward(x->f32(), w->f32(), b ? b->f32() : nullptr, rows, C, eps, y->f32(), mean->f32(), rstd->f32());
  return r;
}

// layer_norm_backward(x, w, mean, rstd, gy, needW, needB) -> [gx, gw | null, gb | null]
static Napi::Value LayerNormBackward(const Napi::CallbackInfo& info) {
  Args args(info, "layerNorm_backward");
  args.count(7);
  TensorWrap* x = args.tensor_float(0, "x");
  TensorWrap* w = args.tensor_float(1, "weight");
  TensorWrap* mean = args.tensor_f32(2, "mean");
  TensorWrap* rstd = args.tensor_f32(3, "rstd");
  TensorWrap* gy = args.tensor_float(4, "gy");
  bool need_w = args.boolean(5, "needWeight"), need_b = args.boolean(6, "needBias");
  check_norm(args, x, w, nullptr);
  same_shape(args, x, gy, "x", "gy");
  Shape rs(x->shape.begin(), x->shape.end() - 1);
  if (mean->shape != rs || rstd->shape != rs) args.range_error("mean and rstd must be " + shape_str(rs));
  int64_t C = x->shape.back(), rows = C ? x->numel / C : 0;
  TensorWrap *gx, *gw = nullptr, *gb = nullptr;
  Napi::Array r = Napi::Array::New(info.Env(), 3);
  r[0u] = new_like(info.Env(), x, x->shape, &gx);
  r[1u] = need_w ? Napi::Value(new_like(info.Env(), w, w->shape, &gw)) : info.Env().Null();
  r[2u] = need_b ? Napi::Value(new_like(info.Env(), w, w->shape, &gb)) : info.Env().Null();
  if (args.cuda()) {
    if (gw && !rows && C) TK_CUDA(args, fill, gw->raw(), tk_dt(gw->dtype), C, 0.0);
    if (gb && !rows && C) TK_CUDA(args, fill, gb->raw(), tk_dt(gb->dtype), C, 0.0);
    if (C && rows)
      TK_CUDA(args, layer_norm_backward, tk_dt(x->dtype), x->raw(), w->raw(), mean->f32(), rstd->f32(), gy->raw(), rows,
                                               C, gx->raw(), gw ? gw->raw() : nullptr, gb ? gb->raw() : nullptr);
    return r;
  }
  if (gw && !rows) std::memset(gw->f32(), 0, C * 4);
  if (gb && !rows) std::memset(gb->f32(), 0, C * 4);
  if (C && rows)
    kt().layer_norm_backward(x->f32(), w->f32(), mean->f32(), rstd->f32(), gy->f32(), rows, C, gx->f32(),
                             gw ? gw->f32() : nullptr, gb ? gb->f32() : nullptr);
  return r;
}

// rms_norm_forward(x, w, eps) -> [y, rstd]
static Napi::Value RmsNormForward(const Napi::CallbackInfo& info) {
  Args args(info, "rmsNorm");
  args.count(3);
  TensorWrap* x = args.tensor_float(0, "x");
  TensorWrap* w = args.tensor_float(1, "weight");
  check_norm(args, x, w, nullptr);
  float eps = float(eps_arg(args, 2));
  int64_t C = x->shape.back(), rows = C ? x->numel / C : 0;
  Shape rs(x->shape.begin(), x->shape.end() - 1);
  TensorWrap *y, *rstd;
  Napi::Array r = Napi::Array::New(info.Env(), 2);
  r[0u] = new_like(info.Env(), x, x->shape, &y);
  r[1u] = new_f32(info.Env(), rs, &rstd);
  if (args.cuda()) {
    if (C && rows)
      TK_CUDA(args, rms_norm_forward, tk_dt(x->dtype), x->raw(), w->raw(), rows, C, eps, y->raw(), rstd->f32());
    return r;
  }
  if (C && rows) kt().rms_norm_forward(x->f32(), w->f32(), rows, C, eps, y->f32(), rstd->f32());
  return r;
}

// rms_norm_backward(x, w, rstd, gy, needW) -> [gx, gw | null]
static Napi::Value RmsNormBackward(const Napi::CallbackInfo& info) {
  Args args(info, "rmsNorm_backward");
  args.count(5);
  TensorWrap* x = args.tensor_float(0, "x");
  TensorWrap* w = args.tensor_float(1, "weight");
  TensorWrap* rstd = args.tensor_f32(2, "rstd");
  TensorWrap* gy = args.tensor_float(3, "gy");
  bool need_w = args.boolean(4, "needWeight");
  check_norm(args, x, w, nullptr);
  same_shape(args, x, gy, "x", "gy");
  Shape rs(x->shape.begin(), x->shape.end() - 1);
  if (rstd->shape != rs) args.range_error("rstd must be " + shape_str(rs));
  int64_t C = x->shape.back(), rows = C ? x->numel / C : 0;
  TensorWrap *gx, *gw = nullptr;
  Napi::Array r = Napi::Array::New(info.Env(), 2);
  r[0u] = new_like(info.Env(), x, x->shape, &gx);
  r[1u] = need_w ? Napi::Value(new_like(info.Env(), w, w->shape, &gw)) : info.Env().Null();
  if (args.cuda()) {
    if (gw && !rows && C) TK_CUDA(args, fill, gw->raw(), tk_dt(gw->dtype), C, 0.0);
    if (C && rows)
      TK_CUDA(args, rms_norm_backward, tk_dt(x->dtype), x->raw(), w->raw(), rstd->f32(), gy->raw(), rows, C, gx->raw(),
                                             gw ? gw->raw() : nullptr);
    return r;
  }
  if (gw && !rows) std::memset(gw->f32(), 0, C * 4);
  if (C && rows) kt().rms_norm_backward(x->f32(), w->f32(), rstd->f32(), gy->f32(), rows, C, gx->f32(), gw ? gw->f32() : nullptr);
  return r;
}

// embedding_forward(table [V, C], ids i32 [...]) -> [..., C]
static Napi::Value EmbeddingForward(const Napi::CallbackInfo& info) {
  Args args(info, "embedding");
  args.count(2);
  TensorWrap* table = args.tensor_float(0, "table");
  TensorWrap* ids = args.tensor_i32(1, "ids");
  if (table->shape.size() != 2) args.range_error("table must be [V, C], got " + shape_str(table->shape));
  int64_t V = table->shape[0], C = table->shape[1];
  std::vector<int32_t> host;
  if (args.cuda()) host = cuda_read_i32(args, ids);
  const int32_t* id = args.cuda() ? host.data() : ids->i32();
  for (int64_t i = 0; i < ids->numel; ++i)
    if (id[i] < 0 || id[i] >= V)
      args.range_error("id " + std::to_string(id[i]) + " at position " + std::to_string(i) + " is out of range [0, " + std::to_string(V) + ")");
  Shape s = ids->shape;
  s.push_back(C);
  TensorWrap* y;
  Napi::Object out = new_like(info.Env(), table, s, &y);
  if (args.cuda()) {
    if (y->numel)
      TK_CUDA(args, embedding_forward, tk_dt(table->dtype), table->raw(), ids->i32(), ids->numel, V, C, y->raw());
    return out;
  }
  const float* t = table->f32();
  float* yo = y->f32();
  par(ids->numel, 64, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) std::memcpy(yo + i * C, t + int64_t(id[i]) * C, C * 4);
  });
  return out;
}

// embedding_backward(gy [..., C], ids i32 [...], V) -> gtable [V, C] (scatter-add)
static Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info) {
  Args args(info, "embedding_backward");
  args.count(3);
  TensorWrap* gy = args.tensor_float(0, "gy");
  TensorWrap* ids = args.tensor_i32(1, "ids");
  int64_t V = args.integer(2, "V", 0, kMaxElements);
  Shape s = ids->shape;
  if (gy->shape.size() != s.size() + 1) args.range_error("gy must be ids.shape + [C]");
  int64_t C = gy->shape.back();
  s.push_back(C);
  if (s != gy->shape) args.range_error("gy must be ids.shape + [C]");
  std::vector<int32_t> host;
  if (args.cuda()) host = cuda_read_i32(args, ids);
  const int32_t* id = args.cuda() ? host.data() : ids->i32();
  for (int64_t i = 0; i < ids->numel; ++i)
    if (id[i] < 0 || id[i] >= V) args.range_error("id " + std::to_string(id[i]) + " is out of range [0, " + std::to_string(V) + ")");
  TensorWrap* g;
  if (args.cuda()) {
    // accumulated in f32 (atomics), then cast to the table's dtype when it is bf16
    Napi::Object out = new_f32(info.Env(), Shape{V, C}, &g);
    if (V && C) TK_CUDA(args, embedding_backward, tk_dt(gy->dtype), gy->raw(), ids->i32(), ids->numel, V, C, g->f32());
    if (gy->dtype == DType::F32) return out;
    TensorWrap* gb;
    Napi::Object outb = new_like(info.Env(), gy, Shape{V, C}, &gb);
    int64_t n = V * C, one = 1;
    if (n) TK_CUDA(args, copy_strided, gb->raw(), tk_dt(gb->dtype), &one, g->raw(), TK_F32, &one, 1, &n);
    return outb;
  }
  Napi::Object out = new_f32(info.Env(), Shape{V, C}, &g);
  float* go = g->f32();
  std::memset(go, 0, V * C * 4);
  const float* gv = gy->f32();
  // parallel over column chunks: every thread sees every id, no races
  par(C, 256, [&](int64_t c0, int64_t c1) {
    for (int64_t i = 0; i < ids->numel; ++i) {
      float* row = go + int64_t(id[i]) * C;
      const float* src = gv + i * C;
      for (int64_t c = c0; c < c1; ++c) row[c] += src[c];
    }
  });
  return out;
}

// dropout_forward(x, p, seed): also the backward, applied to gy with the same seed
static Napi::Value DropoutForward(const Napi::CallbackInfo& info) {
  Args args(info, "dropout");
  args.count(3);
  TensorWrap* x = args.tensor_float(0, "x");
  double p = args.number(1, "p");
  if (p < 0 || p > 1) args.range_error("p must be in [0, 1], got " + std::to_string(p));
  int64_t seed = args.integer(2, "seed", 0, int64_t(1) << 53);
  TensorWrap* y;
  Napi::Object out = new_like(info.Env(), x, x->shape, &y);
  if (args.cuda()) {
    if (x->numel) TK_CUDA(args, dropout, tk_dt(x->dtype), x->raw(), y->raw(), x->numel, float(p), uint64_t(seed));
    return out;
  }
  kt().dropout(x->f32(), y->f32(), x->numel, float(p), uint64_t(seed));
  return out;
}

// rope_forward(x [B, H, T, D], positions i32 [T], theta, inverse)
static Napi::Value RopeForward(const Napi::CallbackInfo& info) {
  Args args(info, "rope");
  args.count(4);
  TensorWrap* x = args.tensor_float(0, "x");
  TensorWrap* pos = args.tensor_i32(1, "positions");
  double theta = args.number(2, "theta");
  bool inverse = args.boolean(3, "inverse");
  if (theta <= 0) args.range_error("theta must be positive");
  if (x->shape.size() != 4) args.range_error("x must be [B, H, T, D], got " + shape_str(x->shape));
  int64_t T = x->shape[2], D = x->shape[3];
  if (D % 2) args.range_error("head dimension D = " + std::to_string(D) + " must be even");
  if (pos->shape != Shape{T}) args.range_error("positions must be [T] = [" + std::to_string(T) + "], got " + shape_str(pos->shape));
  TensorWrap* y;
  Napi::Object out = new_like(info.Env(), x, x->shape, &y);
  if (args.cuda()) {
    if (x->numel)
      TK_CUDA(args, rope, tk_dt(x->dtype), x->raw(), pos->i32(), x->shape[0] * x->shape[1], T, D,
                                               float(theta), inverse, y->raw());
    return out;
  }
  if (x->numel) kt().rope(x->f32(), pos->i32(), x->shape[0] * x->shape[1], T, D, float(theta), inverse, y->f32());
  return out;
}

// The CUDA branch of matmul: one batched gemm call per merged batch row
// (a broadcast batch is a stride-0 operand).
static Napi::Value matmul_cuda(const Args& args, TensorWrap* A, TensorWrap* B, TensorWrap* y, const BroadcastPlan& p,
                               int64_t M, int64_t N, int64_t K, bool ta, bool tb, Napi::Object out) {
  size_t ra = A->shape.size(), rb = B->shape.size();
  size_t es = dtype_size(A->dtype), ys = dtype_size(y->dtype);
  int64_t inner = p.inner();
  for (int64_t o = 0; o < p.outer(); ++o) {
    tk_gemm_params g{};
    g.M = M;
    g.N = N;
    g.K = K;
    g.batch = inner;
    g.dt = tk_dt(A->dtype);
    g.A = static_cast<const char*>(A->raw()) + size_t(p.offset(0, o) * M * K) * es;
    g.lda = A->shape[ra - 1];
    g.stride_a = p.strides[0].back() * M * K;
    g.trans_a = ta;
    g.B = static_cast<const char*>(B->raw()) + size_t(p.offset(1, o) * K * N) * es;
    g.ldb = B->shape[rb - 1];
    g.stride_b = p.strides[1].back() * K * N;
    g.trans_b = tb;
    g.C = static_cast<char*>(y->raw()) + size_t(o * inner * M * N) * ys;
    g.ldc = N;
    g.stride_c = M * N;
    g.c_dt = tk_dt(y->dtype);
    g.alpha = 1.0f;
    g.beta = 0.0f;
    if (K == 0) {
      TK_CUDA(args, fill, g.C, g.c_dt, inner * M * N, 0.0);
      continue;
    }
    TK_CUDA(args, gemm, &g);
  }
  return out;
}

// matmul_forward(a, b, transA, transB): a [..., M, K] (or [..., K, M]), b [..., K, N] (or [..., N, K]);
// leading batch dimensions broadcast.
static Napi::Value MatmulForward(const Napi::CallbackInfo& info) {
  Args args(info, "matmul");
  args.count(4);
  TensorWrap* A = args.tensor_float(0, "a");
  TensorWrap* B = args.tensor_float(1, "b");
  same_dtype(args, A, B, "a", "b");
  bool ta = args.boolean(2, "transA"), tb = args.boolean(3, "transB");
  // outF32: a bf16 product with an f32 result (autocast keeps f32 outputs)
  bool out_f32 = info.Length() > 4 && !info[4].IsUndefined() && args.boolean(4, "outF32");
  if (A->shape.size() < 2 || B->shape.size() < 2)
    args.range_error("a and b need at least 2 dimensions, got " + shape_str(A->shape) + " and " + shape_str(B->shape));
  size_t ra = A->shape.size(), rb = B->shape.size();
  int64_t M = ta ? A->shape[ra - 1] : A->shape[ra - 2];
  int64_t K = ta ? A->shape[ra - 2] : A->shape[ra - 1];
  int64_t Kb = tb ? B->shape[rb - 1] : B->shape[rb - 2];
  int64_t N = tb ? B->shape[rb - 2] : B->shape[rb - 1];
  if (K != Kb)
    args.range_error("inner dimensions differ: a " + shape_str(A->shape) + (ta ? " (transposed)" : "") + " and b " + shape_str(B->shape) + (tb ? " (transposed)" : ""));
  Shape ba(A->shape.begin(), A->shape.end() - 2), bb(B->shape.begin(), B->shape.end() - 2);
  Shape batch = broadcast_shapes(args, ba, bb);
  Shape s = batch;
  s.push_back(M);
  s.push_back(N);
  TensorWrap* y;
  Napi::Object out = out_f32 ? new_f32(info.Env(), s, &y) : new_like(info.Env(), A, s, &y);
  int64_t nb = shape_numel(batch);
  if (nb == 0 || M == 0 || N == 0) return out;
  BroadcastPlan p = plan_broadcast(batch.empty() ? Shape{1} : batch, {ba.empty() ? Shape{1} : ba, bb.empty() ? Shape{1} : bb});
  if (args.cuda()) return matmul_cuda(args, A, B, y, p, M, N, K, ta, tb, out);
  // offsets per batch index: the plan walks all but the last merged dim; do it by hand
  const KernelTable& k = kt();
  int64_t lda = A->shape[ra - 1], ldb = B->shape[rb - 1];
  // b shared by every batch index (a weight) and a's rows contiguous: the batch
  // folds into M, one product of nb·M rows (packs b once, threads see all rows)
  if (nb > 1 && !ta && shape_numel(bb) == 1 && shape_numel(ba) == nb) {
    GemmArgs g{nb * M, N, K, A->f32(), lda, false, B->f32(), ldb, tb, y->f32(), N, false};
    k.gemm(g);
    return out;
  }
  auto one = [&](int64_t i) {
    int64_t inner = p.inner(), o = i / inner, j = i % inner;
    int64_t offa = p.offset(0, o) + j * p.strides[0].back();
    int64_t offb = p.offset(1, o) + j * p.strides[1].back();
    GemmArgs g{M, N, K, A->f32() + offa * M * K, lda, ta, B->f32() + offb * K * N, ldb, tb, y->f32() + i * M * N, N, false};
    k.gemm(g);
  };
  // many small products: one per thread at a time; large ones: threads inside gemm
  if (nb > 1 && 2.0 * M * N * K < 4e6) {
    par(nb, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) one(i);
    });
  } else {
    for (int64_t i = 0; i < nb; ++i) one(i);
  }
  return out;
}

// ---------------------------------------------------------------- linear layer (CPU)
// The bias and the GELU run in the GEMM's epilogue (while the tile is in cache),
// the backward is one call: gelu'(h) and the bias gradient in one pass over gy,
// then the two products over all rows at once. CUDA tensors take matmul (tk.ops.linear
// composes there).
struct LinearShapes {
  int64_t in, out;
};

static LinearShapes linear_shapes(const Args& a, const TensorWrap* x, const TensorWrap* w, const TensorWrap* bias, bool trans_w) {
  if (a.cuda()) a.type_error("runs on the CPU (tk.ops.linear composes matmul on CUDA)");
  if (x->shape.empty()) a.range_error("x must be [..., in], got a 0-d tensor");
  int64_t in = x->shape.back();
  if (w->shape.size() != 2 || w->shape[trans_w ? 1 : 0] != in)
    a.range_error(std::string("w must be ") + (trans_w ? "[out, " + std::to_string(in) + "]" : "[" + std::to_string(in) + ", out]") + ", got " + shape_str(w->shape));
  int64_t out = w->shape[trans_w ? 0 : 1];
  if (bias && bias->shape != Shape{out}) a.range_error("bias must be [" + std::to_string(out) + "], got " + shape_str(bias->shape));
  return {in, out};
}

// rows of the product from its [..., out] output (allocated, so its sizes are bounded; an
// empty x with huge leading sizes and in = 0 fails at that allocation)
static int64_t rows_of(const TensorWrap* y, int64_t out) { return out ? y->numel / out : 0; }

// The optional layer norm of a linear layer's input: lnW [in], lnB [in] | null
static void check_input_norm(const Args& a, const TensorWrap* lnw, const TensorWrap* lnb, int64_t in) {
  if (!lnw) {
    if (lnb) a.range_error("lnB without lnW");
    return;
  }
  if (lnw->shape != Shape{in}) a.range_error("lnW must be [" + std::to_string(in) + "], got " + shape_str(lnw->shape));
  if (lnb && lnb->shape != Shape{in}) a.range_error("lnB must be [" + std::to_string(in) + "], got " + shape_str(lnb->shape));
}

// linear_forward(x [..., in], w, bias | null, residual | null, transW, gelu, geluInput, lnW | null, lnB | null, eps)
//   -> [y, h | null, mean | null, rstd | null]
// y = x'·op(w) + bias + residual, x' the input as the product reads it: layerNorm(x; lnW, lnB, eps)
// with lnW (the normalization applied as x is packed: the normalized input is never stored;
// mean and rstd [...] are returned for the backward), gelu_tanh(x) under geluInput, else x.
// w is [out, in] with transW (nn.Linear), [in, out] without (GPT-2's Conv1D); residual is
// [..., out] (a residual connection, added in the epilogue). With gelu (no residual):
// h = x'·op(w) + bias (kept for the backward) and y = gelu_tanh(h).
static Napi::Value LinearForward(const Napi::CallbackInfo& info) {
  Args a(info, "linear");
  a.count(10);
  TensorWrap* x = a.tensor_f32(0, "x");
  TensorWrap* w = a.tensor_f32(1, "w");
  TensorWrap* bias = info[2].IsNull() || info[2].IsUndefined() ? nullptr : a.tensor_f32(2, "bias");
  TensorWrap* res = info[3].IsNull() || info[3].IsUndefined() ? nullptr : a.tensor_f32(3, "residual");
  bool tw = a.boolean(4, "transW");
  bool gelu = a.boolean(5, "gelu");
  bool gelu_in = a.boolean(6, "geluInput");
  TensorWrap* lnw = info[7].IsNull() || info[7].IsUndefined() ? nullptr : a.tensor_f32(7, "lnW");
  TensorWrap* lnb = info[8].IsNull() || info[8].IsUndefined() ? nullptr : a.tensor_f32(8, "lnB");
  double eps = a.number(9, "eps");
  LinearShapes s = linear_shapes(a, x, w, bias, tw);
  check_input_norm(a, lnw, lnb, s.in);
  if (lnw && !(eps > 0)) a.range_error("eps must be positive");
  if (lnw && gelu_in) a.range_error("lnW and geluInput cannot be combined");
  Shape ys = x->shape;
  ys.back() = s.out;
  if (res && res->shape != ys) a.range_error("residual must be " + shape_str(ys) + ", got " + shape_str(res->shape));
  if (res && gelu) a.range_error("residual and gelu cannot be combined");
  Napi::Env env = info.Env();
  Napi::Array r = Napi::Array::New(env, 4);
  for (uint32_t i = 0; i < 4; ++i) r[i] = env.Null();
  TensorWrap *h, *y = nullptr, *mean = nullptr, *rstd = nullptr;
  Napi::Object ho = new_f32(env, ys, &h);
  if (gelu) {
    r[0u] = new_f32(env, ys, &y);
    r[1u] = ho;
  } else {
    r[0u] = ho;
  }
  if (lnw) {
    Shape rs(x->shape.begin(), x->shape.end() - 1);
    r[2u] = new_f32(env, rs, &mean);
    r[3u] = new_f32(env, rs, &rstd);
    int64_t rows = s.in ? x->numel / s.in : 0;
    if (rows && s.in)
      kt().layer_norm_forward(x->f32(), lnw->f32(), lnb ? lnb->f32() : nullptr, rows, s.in, float(eps), nullptr, mean->f32(),
                              rstd->f32());
    else if (mean->numel) {  // no features: as layer_norm_forward would leave them (mean 0, rstd 1/sqrt(eps))
      for (int64_t i = 0; i < mean->numel; ++i) {
        mean->f32()[i] = 0.0f;
        rstd->f32()[i] = 1.0f / std::sqrt(float(eps));
      }
    }
  }
  int64_t N = rows_of(h, s.out);
  if (N > 0) {
    GemmArgs g{N, s.out, s.in, x->f32(), s.in, false, w->f32(), tw ? s.in : s.out, tw, h->f32(), s.out, false};
    g.a_gelu = gelu_in;
    if (lnw) {
      g.a_ln_mean = mean->f32();
      g.a_ln_rstd = rstd->f32();
      g.a_ln_w = lnw->f32();
      g.a_ln_b = lnb ? lnb->f32() : nullptr;
    }
    g.bias = bias ? bias->f32() : nullptr;
    if (res) {
      g.residual = res->f32();
      g.ld_res = s.out;
    }
    if (gelu) {
      g.act_out = y->f32();
      g.ld_act = s.out;
    }
    kt().gemm(g);
  }
  return r;
}

// linear_backward(x, w, gy, h | null, transW, needX, needW, needBias, geluInput, lnW | null, lnB | null,
//                 mean | null, rstd | null, needLnW, needLnB) -> [gx | null, gw | null, gbias | null, glnW | null, glnB | null]
// with h (the forward had gelu): the gradient at the product is gy * gelu'(h); with geluInput
// the product's left operand was gelu(x): gw uses gelu(x) (applied as x is packed) and
// gx = (g·op(w)ᵀ) * gelu'(x) (in the GEMM's epilogue); with lnW it was layerNorm(x) (mean,
// rstd from the forward): gw uses it (applied as x is packed) and gx, glnW, glnB are the
// layer norm's backward of g·op(w)ᵀ
static Napi::Value LinearBackward(const Napi::CallbackInfo& info) {
  Args a(info, "linear_backward");
  a.count(15);
  TensorWrap* x = a.tensor_f32(0, "x");
  TensorWrap* w = a.tensor_f32(1, "w");
  TensorWrap* gy = a.tensor_f32(2, "gy");
  TensorWrap* h = info[3].IsNull() || info[3].IsUndefined() ? nullptr : a.tensor_f32(3, "h");
  bool tw = a.boolean(4, "transW");
  bool need_x = a.boolean(5, "needX"), need_w = a.boolean(6, "needW"), need_b = a.boolean(7, "needBias");
  bool gelu_in = a.boolean(8, "geluInput");
  TensorWrap* lnw = info[9].IsNull() || info[9].IsUndefined() ? nullptr : a.tensor_f32(9, "lnW");
  TensorWrap* lnb = info[10].IsNull() || info[10].IsUndefined() ? nullptr : a.tensor_f32(10, "lnB");
  TensorWrap* mean = info[11].IsNull() || info[11].IsUndefined() ? nullptr : a.tensor_f32(11, "mean");
  TensorWrap* rstd = info[12].IsNull() || info[12].IsUndefined() ? nullptr : a.tensor_f32(12, "rstd");
  bool need_lnw = a.boolean(13, "needLnW"), need_lnb = a.boolean(14, "needLnB");
  LinearShapes s = linear_shapes(a, x, w, nullptr, tw);
  check_input_norm(a, lnw, lnb, s.in);
  Shape rs(x->shape.begin(), x->shape.end() - 1);
  if (lnw) {
    if (!mean || !rstd) a.range_error("lnW needs mean and rstd");
    if (mean->shape != rs || rstd->shape != rs) a.range_error("mean and rstd must be " + shape_str(rs));
    if (gelu_in) a.range_error("lnW and geluInput cannot be combined");
  }
  if ((need_lnw && !lnw) || (need_lnb && !lnb)) a.range_error("needLnW / needLnB without lnW / lnB");
  Shape ys = x->shape;
  ys.back() = s.out;
  if (gy->shape != ys) a.range_error("gy must be " + shape_str(ys) + ", got " + shape_str(gy->shape));
  if (h && h->shape != ys) a.range_error("h must be " + shape_str(ys) + ", got " + shape_str(h->shape));
  Napi::Env env = info.Env();
  Napi::Array res = Napi::Array::New(env, 5);
  for (uint32_t i = 0; i < 5; ++i) res[i] = env.Null();
  TensorWrap *gx = nullptr, *gw = nullptr, *gb = nullptr, *glnw = nullptr, *glnb = nullptr;
  if (need_x) res[0u] = new_f32(env, x->shape, &gx);
  if (need_w) res[1u] = new_f32(env, w->shape, &gw);
  if (need_b) res[2u] = new_f32(env, Shape{s.out}, &gb);
  if (need_lnw) res[3u] = new_f32(env, Shape{s.in}, &glnw);
  if (need_lnb) res[4u] = new_f32(env, Shape{s.in}, &glnb);
  int64_t N = rows_of(gy, s.out);
  if (N <= 0 || s.out == 0) {  // no rows or no outputs: every gradient is zero
    for (TensorWrap* t : {gx, gw, gb, glnw, glnb})
      if (t) std::memset(t->f32(), 0, size_t(t->numel) * 4);
    return res;
  }
  const KernelTable& k = kt();
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  auto scratch_of = [&](int64_t n) {
    size_t bytes = (size_t(n) * 4 + 63) & ~size_t(63);
    float* p = static_cast<float*>(std::aligned_alloc(64, bytes ? bytes : 64));
    if (!p) a.range_error("cannot allocate " + std::to_string(bytes) + " bytes");
    return std::unique_ptr<float, Free>(p);
  };
  // the gradient at the product: gy, or gy * gelu'(h) in a scratch buffer
  std::unique_ptr<float, Free> scratch;
  const float* g = gy->f32();
  const bool need_xln = lnw && (need_x || need_lnw || need_lnb);  // the layer norm's backward runs
  if (h && (need_x || need_w || need_b || need_xln)) {
    scratch = scratch_of(N * s.out);
    k.linear_epilogue_backward(gy->f32(), h->f32(), N, s.out, scratch.get(), gb ? gb->f32() : nullptr);
    g = scratch.get();
  } else if (gb) {
    k.linear_epilogue_backward(gy->f32(), nullptr, N, s.out, nullptr, gb->f32());
  }
  if ((gx || need_xln) && s.in) {  // gx [N, in] = g · op(w)ᵀ (* gelu'(x)); through the layer norm with lnW
    std::unique_ptr<float, Free> gxln, gxs;
    float* dst = gx ? gx->f32() : nullptr;
    if (lnw) {
      gxln = scratch_of(N * s.in);
      dst = gxln.get();
    }
    GemmArgs gg{N, s.in, s.out, g, s.out, false, w->f32(), tw ? s.in : s.out, !tw, dst, s.in, false};
    if (gelu_in) {
      gg.c_gelu_grad = x->f32();
      gg.ld_cgg = s.in;
    }
    k.gemm(gg);
    if (lnw) {
      float* gxo = gx ? gx->f32() : nullptr;
      if (!gxo) {
        gxs = scratch_of(N * s.in);
        gxo = gxs.get();
      }
      k.layer_norm_backward(x->f32(), lnw->f32(), mean->f32(), rstd->f32(), gxln.get(), N, s.in, gxo,
                            glnw ? glnw->f32() : nullptr, glnb ? glnb->f32() : nullptr);
    }
  } else {
    for (TensorWrap* t : {glnw, glnb})  // no features
      if (t) std::memset(t->f32(), 0, size_t(t->numel) * 4);
  }
  if (gw) {
    if (tw) {  // gw [out, in] = gᵀ · x'
      GemmArgs gg{s.out, s.in, N, g, s.out, true, x->f32(), s.in, false, gw->f32(), s.in, false};
      gg.b_gelu = gelu_in;
      if (lnw) {
        gg.b_ln_mean = mean->f32();
        gg.b_ln_rstd = rstd->f32();
        gg.b_ln_w = lnw->f32();
        gg.b_ln_b = lnb ? lnb->f32() : nullptr;
      }
      k.gemm(gg);
    } else {  // gw [in, out] = x'ᵀ · g
      GemmArgs gg{s.in, s.out, N, x->f32(), s.in, true, g, s.out, false, gw->f32(), s.out, false};
      gg.a_gelu = gelu_in;
      if (lnw) {
        gg.a_ln_mean = mean->f32();
        gg.a_ln_rstd = rstd->f32();
        gg.a_ln_w = lnw->f32();
        gg.a_ln_b = lnb ? lnb->f32() : nullptr;
      }
      k.gemm(gg);
    }
  }
  return res;
}

// ---------------------------------------------------------------- attention on a fused projection (CPU)
// qkv [B, T, 3·C] holds q, k and v side by side (each [B, T, heads, D], C = heads·D): the fused
// attention reads them in place and writes o as [B, T, C] (the heads merged), and the backward
// writes dq, dk and dv into one [B, T, 3·C] gradient: no copies into and out of [B, heads, T, D].
struct PackedAttn {
  int64_t B, T, C, H, D;
};

static PackedAttn packed_attn_shapes(const Args& a, const TensorWrap* qkv, int64_t H) {
  if (a.cuda()) a.type_error("runs on the CPU");
  if (qkv->shape.size() != 3) a.range_error("qkv must be [B, T, 3·heads·D], got " + shape_str(qkv->shape));
  int64_t W = qkv->shape[2];
  if (W % (3 * H)) a.range_error("the last size " + std::to_string(W) + " is not a multiple of 3·heads = " + std::to_string(3 * H));
  PackedAttn p{qkv->shape[0], qkv->shape[1], W / 3, H, W / (3 * H)};
  if (p.D > 256) a.range_error("head dimension " + std::to_string(p.D) + " exceeds 256");
  return p;
}

static AttnArgs packed_attn_args(const PackedAttn& p, const float* qkv, float scale, bool causal) {
  AttnArgs at{};
  const int64_t W = 3 * p.C;
  float* base = const_cast<float*>(qkv);
  at.q = AttnView{base, p.T * W, p.D, W};
  at.k = AttnView{base + p.C, p.T * W, p.D, W};
  at.v = AttnView{base + 2 * p.C, p.T * W, p.D, W};
  at.kv_len = nullptr;
  at.B = p.B, at.H = p.H, at.Hkv = p.H, at.T = p.T, at.S = p.T, at.D = p.D;
  at.scale = scale;
  at.causal = causal;
  return at;
}

// attention_packed_forward(qkv [B, T, 3·C], heads, scale, causal) -> [o [B, T, C], lse [B, heads, T]]
static Napi::Value AttentionPackedForward(const Napi::CallbackInfo& info) {
  Args a(info, "attentionPacked");
  a.count(4);
  TensorWrap* qkv = a.tensor_f32(0, "qkv");
  int64_t H = a.integer(1, "heads", 1, int64_t(1) << 20);
  double scale = a.number(2, "scale");
  bool causal = a.boolean(3, "causal");
  PackedAttn p = packed_attn_shapes(a, qkv, H);
  TensorWrap *o, *lse;
  Napi::Array r = Napi::Array::New(info.Env(), 2);
  r[0u] = new_f32(info.Env(), Shape{p.B, p.T, p.C}, &o);
  r[1u] = new_f32(info.Env(), Shape{p.B, p.H, p.T}, &lse);
  if (qkv->numel == 0) return r;
  AttnArgs at = packed_attn_args(p, qkv->f32(), float(scale), causal);
  at.o = AttnView{o->f32(), p.T * p.C, p.D, p.C};
  at.lse = lse->f32();
  kt().attention_forward_ex(at);
  return r;
}

// attention_packed_backward(qkv, o, lse, dout [B, T, C], heads, scale, causal) -> gqkv [B, T, 3·C]
static Napi::Value AttentionPackedBackward(const Napi::CallbackInfo& info) {
  Args a(info, "attentionPacked_backward");
  a.count(7);
  TensorWrap* qkv = a.tensor_f32(0, "qkv");
  TensorWrap* o = a.tensor_f32(1, "o");
  TensorWrap* lse = a.tensor_f32(2, "lse");
  TensorWrap* dout = a.tensor_f32(3, "dout");
  int64_t H = a.integer(4, "heads", 1, int64_t(1) << 20);
  double scale = a.number(5, "scale");
  bool causal = a.boolean(6, "causal");
  PackedAttn p = packed_attn_shapes(a, qkv, H);
  Shape os{p.B, p.T, p.C};
  if (o->shape != os || dout->shape != os) a.range_error("o and dout must be " + shape_str(os));
  if (lse->shape != (Shape{p.B, p.H, p.T})) a.range_error("lse must be [B, heads, T]");
  TensorWrap* g;
  Napi::Object out = new_f32(info.Env(), qkv->shape, &g);
  if (qkv->numel == 0) return out;
  AttnArgs at = packed_attn_args(p, qkv->f32(), float(scale), causal);
  const int64_t W = 3 * p.C;
  at.o = AttnView{o->f32(), p.T * p.C, p.D, p.C};
  at.dout = AttnView{dout->f32(), p.T * p.C, p.D, p.C};
  at.dq = AttnView{g->f32(), p.T * W, p.D, W};
  at.dk = AttnView{g->f32() + p.C, p.T * W, p.D, W};
  at.dv = AttnView{g->f32() + 2 * p.C, p.T * W, p.D, W};
  at.lse = lse->f32();
  kt().attention_backward_ex(at);
  return out;
}

// add_inplace(a, b): a += b (same shape, f32, CPU); autograd's gradient accumulation
static Napi::Value AddInplace(const Napi::CallbackInfo& info) {
  Args a(info, "add_inplace");
  a.count(2);
  TensorWrap* x = a.tensor_f32(0, "a");
  TensorWrap* y = a.tensor_f32(1, "b");
  if (a.cuda()) a.type_error("runs on the CPU");
  same_shape(a, x, y, "a", "b");
  float* dst = x->f32();
  const float* src = y->f32();
  if (dst == src) {
    par(x->numel, 1 << 15, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) dst[i] += dst[i];
    });
  } else {
    par(x->numel, 1 << 15, [&](int64_t b, int64_t e) {
      float* __restrict d = dst;
      const float* __restrict s = src;
      for (int64_t i = b; i < e; ++i) d[i] += s[i];
    });
  }
  return info.Env().Undefined();
}

void register_math_ops(Napi::Env env, Napi::Object exports) {
  define<UnaryForward>(env, exports, "unary_forward", "unary");
  define<UnaryBackward>(env, exports, "unary_backward", "unary_backward");
  define<BinaryForward>(env, exports, "binary_forward", "binary");
  define<WhereForward>(env, exports, "where_forward", "where");
  define<MaskedFillForward>(env, exports, "masked_fill_forward", "maskedFill");
  define<ReduceForward>(env, exports, "reduce_forward", "reduce");
  define<MaxBackward>(env, exports, "max_backward", "max_backward");
  define<SoftmaxForward>(env, exports, "softmax_forward", "softmax");
  define<SoftmaxBackward>(env, exports, "softmax_backward", "softmax_backward");
  define<CrossEntropyForward>(env, exports, "cross_entropy_forward", "crossEntropy");
  define<CrossEntropyBackward>(env, exports, "cross_entropy_backward", "crossEntropy_backward");
  define<LayerNormForward>(env, exports, "layer_norm_forward", "layerNorm");
  define<LayerNormBackward>(env, exports, "layer_norm_backward", "layerNorm_backward");
  define<RmsNormForward>(env, exports, "rms_norm_forward", "rmsNorm");
  define<RmsNormBackward>(env, exports, "rms_norm_backward", "rmsNorm_backward");
  define<EmbeddingForward>(env, exports, "embedding_forward", "embedding");
  define<EmbeddingBackward>(env, exports, "embedding_backward", "embedding_backward");
  define<DropoutForward>(env, exports, "dropout_forward", "dropout");
  define<RopeForward>(env, exports, "rope_forward", "rope");
  define<MatmulForward>(env, exports, "matmul_forward", "matmul");
  define<LinearForward>(env, exports, "linear_forward", "linear");
  define<LinearBackward>(env, exports, "linear_backward", "linear_backward");
  define<AttentionPackedForward>(env, exports, "attention_packed_forward", "attentionPacked");
  define<AttentionPackedBackward>(env, exports, "attention_packed_backward", "attentionPacked_backward");
  define<AddInplace>(env, exports, "add_inplace", "add_inplace");
}

}  // namespace tk
