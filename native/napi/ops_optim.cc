// Bindings of the optimizer kernels: each step updates parameter and state in
// place in one pass. Validation: every tensor f32, same element count.
#include <cmath>

#include "../runtime/isa.h"
#include "bindings.h"
#include "cuda_ops.h"

namespace tk {

static void same_numel(const Args& a, TensorWrap* p, TensorWrap* t, const char* name) {
  if (t->numel != p->numel)
    a.range_error(std::string("'") + name + "' has " + std::to_string(t->numel) + " elements, the parameter " + std::to_string(p->numel));
}

// adamw_step(param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step)
static Napi::Value AdamwStep(const Napi::CallbackInfo& info) {
  Args a(info, "adamw");
  a.count(10);
  TensorWrap* p = a.tensor_f32(0, "param");
  TensorWrap* g = a.tensor_float(1, "grad");  // bf16 gradients on CUDA; f32 master weights and state
  TensorWrap* m = a.tensor_f32(2, "m");
  TensorWrap* v = a.tensor_f32(3, "v");
  same_numel(a, p, g, "grad");
  same_numel(a, p, m, "m");
  same_numel(a, p, v, "v");
  double lr = a.number(4, "lr"), b1 = a.number(5, "beta1"), b2 = a.number(6, "beta2"), eps = a.number(7, "eps"),
         wd = a.number(8, "weightDecay");
  int64_t t = a.integer(9, "step", 1, int64_t(1) << 50);
  if (lr < 0) a.range_error("lr must be >= 0");
  if (b1 < 0 || b1 >= 1 || b2 < 0 || b2 >= 1) a.range_error("betas must be in [0, 1)");
  if (eps <= 0) a.range_error("eps must be > 0");
  if (a.cuda()) {
    if (p->numel)
      TK_CUDA(a, adamw_step, p->f32(), g->raw(), tk_dt(g->dtype), m->f32(), v->f32(), p->numel, float(lr),
                                               float(b1), float(b2), float(eps), float(wd), t);
    return info.Env().Undefined();
  }
  kt().adamw_step(p->f32(), g->f32(), m->f32(), v->f32(), p->numel, float(lr), float(b1), float(b2), float(eps), float(wd), t);
  return info.Env().Undefined();
}

// sgd_step(param, grad, buf, lr, momentum, dampening, weightDecay, nesterov, first)
static Napi::Value SgdStep(const Napi::CallbackInfo& info) {
  Args a(info, "sgd");
  a.count(9);
  TensorWrap* p = a.tensor_f32(0, "param");
  TensorWrap* g = a.tensor_float(1, "grad");
  TensorWrap* buf = a.tensor_f32(2, "buf");
  same_numel(a, p, g, "grad");
  same_numel(a, p, buf, "buf");
  double lr = a.number(3, "lr"), mu = a.number(4, "momentum"), damp = a.number(5, "dampening"), wd = a.number(6, "weightDecay");
  bool nesterov = a.boolean(7, "nesterov"), first = a.boolean(8, "first");
  if (lr < 0) a.range_error("lr must be >= 0");
  if (mu < 0) a.range_error("momentum must be >= 0");
  if (a.cuda()) {
    if (p->numel)
      TK_CUDA(a, sgd_step, p->f32(), g->raw(), tk_dt(g->dtype), buf->f32(), p->numel, float(lr), float(mu),
                                             float(damp), float(wd), nesterov, first);
    return info.Env().Undefined();
  }
  kt().sgd_step(p->f32(), g->f32(), buf->f32(), p->numel, float(lr), float(mu), float(damp), float(wd), nesterov, first);
  return info.Env().Undefined();
}

// sum_squares(t) -> number (double accumulation across chunks)
static Napi::Value SumSquares(const Napi::CallbackInfo& info) {
  Args a(info, "sumSquares");
  a.count(1);
  TensorWrap* t = a.tensor_float(0, "x");
  if (a.cuda()) {
    // one f32 accumulator on the device, read back (synchronizes)
    CudaScratch scratch(a);
    float* acc = scratch.get<float>(1);
    TK_CUDA(a, fill, acc, TK_F32, 1, 0.0);
    if (t->numel) TK_CUDA(a, sum_squares, tk_dt(t->dtype), t->raw(), t->numel, acc);
    float h = 0;
    TK_CUDA(a, memcpy_d2h, &h, acc, 4);
    return Napi::Number::New(info.Env(), h);
  }
  return Napi::Number::New(info.Env(), kt().sum_squares(t->f32(), t->numel));
}

// scale_(t, s): in place
static Napi::Value ScaleInplace(const Napi::CallbackInfo& info) {
  Args a(info, "scale_");
  a.count(2);
  TensorWrap* t = a.tensor_float(0, "x");
  double s = a.number(1, "s");
  if (a.cuda()) {
    if (t->numel) TK_CUDA(a, scale_inplace, tk_dt(t->dtype), t->raw(), t->numel, float(s));
    return info.Env().Undefined();
  }
  kt().scale_inplace(t->f32(), t->numel, float(s));
  return info.Env().Undefined();
}

void register_optim_ops(Napi::Env env, Napi::Object exports) {
  define<AdamwStep>(env, exports, "adamw_step", "adamw");
  define<SgdStep>(env, exports, "sgd_step", "sgd");
  define<SumSquares>(env, exports, "sum_squares", "sumSquares");
  define<ScaleInplace>(env, exports, "scale_", "scale_");
}

}  // namespace tk
