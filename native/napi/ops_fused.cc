// Bindings of the fused ops (issue "The four fused kernels"): attention, ...
#include <cmath>
#include <cstring>

#include "../runtime/isa.h"
#include "bindings.h"

namespace tk {

struct AttnShapes {
  int64_t B, H, Hkv, T, S, D;
};

static AttnShapes attn_shapes(const Args& a, TensorWrap* q, TensorWrap* k, TensorWrap* v, TensorWrap* kv_len) {
  if (q->shape.size() != 4) a.range_error("q must be [B, H, T, D], got " + shape_str(q->shape));
  if (k->shape.size() != 4) a.range_error("k must be [B, Hkv, S, D], got " + shape_str(k->shape));
  if (v->shape != k->shape) a.range_error("v " + shape_str(v->shape) + " must have the shape of k " + shape_str(k->shape));
  AttnShapes s{q->shape[0], q->shape[1], k->shape[1], q->shape[2], k->shape[2], q->shape[3]};
  if (k->shape[0] != s.B) a.range_error("q and k differ in batch size");
  if (k->shape[3] != s.D) a.range_error("q and k differ in head dimension");
  if (s.Hkv == 0 || s.H % s.Hkv != 0)
    a.range_error("query heads (" + std::to_string(s.H) + ") must be a multiple of key/value heads (" + std::to_string(s.Hkv) + ")");
  if (s.D > 256) a.range_error("head dimension " + std::to_string(s.D) + " exceeds 256");
  if (kv_len) {
    if (kv_len->shape != Shape{s.B}) a.range_error("kvLengths must be [B] = [" + std::to_string(s.B) + "], got " + shape_str(kv_len->shape));
    for (int64_t b = 0; b < s.B; ++b)
      if (kv_len->i32()[b] < 0 || kv_len->i32()[b] > s.S)
        a.range_error("kvLengths[" + std::to_string(b) + "] = " + std::to_string(kv_len->i32()[b]) + " is out of range [0, " + std::to_string(s.S) + "]");
  }
  return s;
}

// attention_forward(q, k, v, kvLengths | null, scale, causal) -> [o, lse]
static Napi::Value AttentionForward(const Napi::CallbackInfo& info) {
  Args a(info, "attention");
  a.count(6);
  TensorWrap* q = a.tensor_f32(0, "q");
  TensorWrap* k = a.tensor_f32(1, "k");
  TensorWrap* v = a.tensor_f32(2, "v");
  TensorWrap* kl = info[3].IsNull() || info[3].IsUndefined() ? nullptr : a.tensor_i32(3, "kvLengths");
  double scale = a.number(4, "scale");
  bool causal = a.boolean(5, "causal");
  AttnShapes s = attn_shapes(a, q, k, v, kl);
  Napi::Object o = TensorWrap::Create(info.Env(), DType::F32, q->shape);
  Napi::Object lse = TensorWrap::Create(info.Env(), DType::F32, Shape{s.B, s.H, s.T});
  if (q->numel)
    kt().attention_forward(q->f32(), k->f32(), v->f32(), kl ? kl->i32() : nullptr, s.B, s.H, s.Hkv, s.T, s.S, s.D,
                           float(scale), causal, TensorWrap::Unwrap(o)->f32(), TensorWrap::Unwrap(lse)->f32());
  Napi::Array r = Napi::Array::New(info.Env(), 2);
  r[0u] = o;
  r[1u] = lse;
  return r;
}

// attention_backward(q, k, v, o, lse, dout, kvLengths | null, scale, causal) -> [dq, dk, dv]
static Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  Args a(info, "attention_backward");
  a.count(9);
  TensorWrap* q = a.tensor_f32(0, "q");
  TensorWrap* k = a.tensor_f32(1, "k");
  TensorWrap* v = a.tensor_f32(2, "v");
  TensorWrap* o = a.tensor_f32(3, "o");
  TensorWrap* lse = a.tensor_f32(4, "lse");
  TensorWrap* dout = a.tensor_f32(5, "dout");
  TensorWrap* kl = info[6].IsNull() || info[6].IsUndefined() ? nullptr : a.tensor_i32(6, "kvLengths");
  double scale = a.number(7, "scale");
  bool causal = a.boolean(8, "causal");
  AttnShapes s = attn_shapes(a, q, k, v, kl);
  if (o->shape != q->shape || dout->shape != q->shape) a.range_error("o and dout must have the shape of q");
  if (lse->shape != (Shape{s.B, s.H, s.T})) a.range_error("lse must be [B, H, T]");
  Napi::Object dq = TensorWrap::Create(info.Env(), DType::F32, q->shape);
  Napi::Object dk = TensorWrap::Create(info.Env(), DType::F32, k->shape);
  Napi::Object dv = TensorWrap::Create(info.Env(), DType::F32, v->shape);
  TensorWrap *wq = TensorWrap::Unwrap(dq), *wk = TensorWrap::Unwrap(dk), *wv = TensorWrap::Unwrap(dv);
  if (q->numel == 0 || k->numel == 0) {
    std::memset(wq->f32(), 0, wq->numel * 4);
    std::memset(wk->f32(), 0, wk->numel * 4);
    std::memset(wv->f32(), 0, wv->numel * 4);
  } else {
    kt().attention_backward(q->f32(), k->f32(), v->f32(), o->f32(), lse->f32(), dout->f32(), kl ? kl->i32() : nullptr, s.B,
                            s.H, s.Hkv, s.T, s.S, s.D, float(scale), causal, wq->f32(), wk->f32(), wv->f32());
  }
  Napi::Array r = Napi::Array::New(info.Env(), 3);
  r[0u] = dq;
  r[1u] = dk;
  r[2u] = dv;
  return r;
}

void register_fused_ops(Napi::Env env, Napi::Object exports) {
  exports.Set("attention_forward", Napi::Function::New(env, AttentionForward, "attention_forward"));
  exports.Set("attention_backward", Napi::Function::New(env, AttentionBackward, "attention_backward"));
}

}  // namespace tk
