// Bindings of the fused ops (issue "The four fused kernels"): attention, ...
#include <cmath>
#include <cstring>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "../cpu/baseline.h"
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

// gae_forward(rewards, values, dones, lastValues | null, gamma, lambda) -> [advantages, returns]
static Napi::Value GaeForward(const Napi::CallbackInfo& info) {
  Args a(info, "gae");
  a.count(6);
  TensorWrap* r = a.tensor_f32(0, "rewards");
  TensorWrap* v = a.tensor_f32(1, "values");
  TensorWrap* d = a.tensor_f32(2, "dones");
  TensorWrap* last = info[3].IsNull() || info[3].IsUndefined() ? nullptr : a.tensor_f32(3, "lastValues");
  double gamma = a.number(4, "gamma"), lambda = a.number(5, "lambda");
  if (r->shape.size() != 2) a.range_error("rewards must be [B, T], got " + shape_str(r->shape));
  if (v->shape != r->shape || d->shape != r->shape)
    a.range_error("rewards " + shape_str(r->shape) + ", values " + shape_str(v->shape) + " and dones " + shape_str(d->shape) + " must have one shape");
  if (last && last->shape != Shape{r->shape[0]}) a.range_error("lastValues must be [B] = [" + std::to_string(r->shape[0]) + "], got " + shape_str(last->shape));
  Napi::Object adv = TensorWrap::Create(info.Env(), DType::F32, r->shape);
  Napi::Object ret = TensorWrap::Create(info.Env(), DType::F32, r->shape);
  if (r->numel)
    kt().gae(r->f32(), v->f32(), d->f32(), last ? last->f32() : nullptr, r->shape[0], r->shape[1], float(gamma), float(lambda),
             TensorWrap::Unwrap(adv)->f32(), TensorWrap::Unwrap(ret)->f32());
  Napi::Array out = Napi::Array::New(info.Env(), 2);
  out[0u] = adv;
  out[1u] = ret;
  return out;
}

// ---------------------------------------------------------------- low-rank (LoRA) linear
struct LoraShapes {
  int64_t N, in, out, r;
};

// fan_in_fan_out: w is stored [in, out] (GPT-2 Conv1D) instead of [out, in]
static LoraShapes lora_shapes(const Args& a, TensorWrap* x, TensorWrap* w, TensorWrap* la, TensorWrap* lb, TensorWrap* bias,
                              bool fan_in_fan_out) {
  if (x->shape.empty()) a.range_error("x must be [..., in]");
  int64_t in = x->shape.back(), N = in ? x->numel / in : 0;
  if (w->shape.size() != 2 || w->shape[fan_in_fan_out ? 0 : 1] != in)
    a.range_error(std::string("w must be ") + (fan_in_fan_out ? "[" + std::to_string(in) + ", out]" : "[out, " + std::to_string(in) + "]") + ", got " + shape_str(w->shape));
  int64_t out = w->shape[fan_in_fan_out ? 1 : 0];
  if (la->shape.size() != 2 || la->shape[1] != in) a.range_error("a must be [r, " + std::to_string(in) + "], got " + shape_str(la->shape));
  int64_t r = la->shape[0];
  if (lb->shape != (Shape{out, r})) a.range_error("b must be [" + std::to_string(out) + ", " + std::to_string(r) + "], got " + shape_str(lb->shape));
  if (bias && bias->shape != Shape{out}) a.range_error("bias must be [" + std::to_string(out) + "], got " + shape_str(bias->shape));
  return {N, in, out, r};
}

static void add_row_bias(float* y, const float* bias, int64_t N, int64_t out) {
  par(N, 64, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      for (int64_t j = 0; j < out; ++j) y[i * out + j] += bias[j];
  });
}

// lora_forward(x [..., in], w [out, in], a [r, in], b [out, r], scale, bias | null, fanInFanOut) -> [y [..., out], xa [N, r]]
// y = x·wᵀ + scale·(x·aᵀ)·bᵀ + bias as ONE GEMM over K = in + r (the low-rank
// term is a second K segment of the base product, so y is written once).
static Napi::Value LoraForward(const Napi::CallbackInfo& info) {
  Args a(info, "loraLinear");
  a.count(7);
  TensorWrap* x = a.tensor_f32(0, "x");
  TensorWrap* w = a.tensor_f32(1, "w");
  TensorWrap* la = a.tensor_f32(2, "a");
  TensorWrap* lb = a.tensor_f32(3, "b");
  double scale = a.number(4, "scale");
  TensorWrap* bias = info[5].IsNull() || info[5].IsUndefined() ? nullptr : a.tensor_f32(5, "bias");
  bool fifo = a.boolean(6, "fanInFanOut");
  LoraShapes s = lora_shapes(a, x, w, la, lb, bias, fifo);
  Shape ys = x->shape;
  ys.back() = s.out;
  Napi::Object y = TensorWrap::Create(info.Env(), DType::F32, ys);
  Napi::Object xa = TensorWrap::Create(info.Env(), DType::F32, Shape{s.N, s.r});
  float* yp = TensorWrap::Unwrap(y)->f32();
  float* xap = TensorWrap::Unwrap(xa)->f32();
  const KernelTable& k = kt();
  // xa = x·aᵀ  [N, r]
  k.gemm(GemmArgs{s.N, s.r, s.in, x->f32(), s.in, false, la->f32(), s.in, true, xap, s.r, false});
  std::vector<float> xas(static_cast<size_t>(s.N * s.r));
  for (int64_t i = 0; i < s.N * s.r; ++i) xas[i] = float(scale) * xap[i];
  GemmArgs g{s.N, s.out, s.in, x->f32(), s.in, false, w->f32(), fifo ? s.out : s.in, !fifo, yp, s.out, false};
  g.A2 = xas.data();
  g.lda2 = s.r;
  g.B2 = lb->f32();
  g.ldb2 = s.r;
  g.K2 = s.r;
  g.trans_b2 = true;  // b is [out, r]
  k.gemm(g);
  if (bias) add_row_bias(yp, bias->f32(), s.N, s.out);
  Napi::Array r = Napi::Array::New(info.Env(), 2);
  r[0u] = y;
  r[1u] = xa;
  return r;
}

// lora_backward(x, w, a, b, scale, xa, gy, needX, needW, needA, needB, needBias, fanInFanOut)
//   -> [gx | null, gw | null, ga | null, gb | null, gbias | null]
// gx = gy·w + scale·(gy·b)·a is again one GEMM over K = out + r.
static Napi::Value LoraBackward(const Napi::CallbackInfo& info) {
  Args a(info, "loraLinear_backward");
  a.count(13);
  TensorWrap* x = a.tensor_f32(0, "x");
  TensorWrap* w = a.tensor_f32(1, "w");
  TensorWrap* la = a.tensor_f32(2, "a");
  TensorWrap* lb = a.tensor_f32(3, "b");
  double scale = a.number(4, "scale");
  TensorWrap* xa = a.tensor_f32(5, "xa");
  TensorWrap* gy = a.tensor_f32(6, "gy");
  bool need_x = a.boolean(7, "needX"), need_w = a.boolean(8, "needW"), need_a = a.boolean(9, "needA"),
       need_b = a.boolean(10, "needB"), need_bias = a.boolean(11, "needBias");
  bool fifo = a.boolean(12, "fanInFanOut");
  LoraShapes s = lora_shapes(a, x, w, la, lb, nullptr, fifo);
  if (xa->shape != (Shape{s.N, s.r})) a.range_error("xa must be [N, r]");
  Shape ys = x->shape;
  ys.back() = s.out;
  if (gy->shape != ys) a.range_error("gy must be " + shape_str(ys) + ", got " + shape_str(gy->shape));
  Napi::Env env = info.Env();
  const KernelTable& k = kt();
  float sc = float(scale);
  // gyb = gy·b  [N, r]
  std::vector<float> gyb(static_cast<size_t>(s.N * s.r));
  k.gemm(GemmArgs{s.N, s.r, s.out, gy->f32(), s.out, false, lb->f32(), s.r, false, gyb.data(), s.r, false});
  Napi::Array res = Napi::Array::New(env, 5);
  for (uint32_t i = 0; i < 5; ++i) res[i] = env.Null();
  if (need_x) {
    Napi::Object gx = TensorWrap::Create(env, DType::F32, x->shape);
    std::vector<float> gybs(gyb.size());
    for (size_t i = 0; i < gyb.size(); ++i) gybs[i] = sc * gyb[i];
    // op(B) = w as [out, in]: stored [out, in] directly, or [in, out] transposed
    GemmArgs g{s.N, s.in, s.out, gy->f32(), s.out, false, w->f32(), fifo ? s.out : s.in, fifo, TensorWrap::Unwrap(gx)->f32(), s.in, false};
    g.A2 = gybs.data();
    g.lda2 = s.r;
    g.B2 = la->f32();
    g.ldb2 = s.in;
    g.K2 = s.r;
    k.gemm(g);
    res[0u] = gx;
  }
  if (need_w) {
    Napi::Object gw = TensorWrap::Create(env, DType::F32, w->shape);
    if (fifo)  // gw [in, out] = xᵀ · gy
      k.gemm(GemmArgs{s.in, s.out, s.N, x->f32(), s.in, true, gy->f32(), s.out, false, TensorWrap::Unwrap(gw)->f32(), s.out, false});
    else  // gw [out, in] = gyᵀ · x
      k.gemm(GemmArgs{s.out, s.in, s.N, gy->f32(), s.out, true, x->f32(), s.in, false, TensorWrap::Unwrap(gw)->f32(), s.in, false});
    res[1u] = gw;
  }
  if (need_a) {  // ga = scale·gybᵀ·x  [r, in]
    Napi::Object ga = TensorWrap::Create(env, DType::F32, la->shape);
    float* p = TensorWrap::Unwrap(ga)->f32();
    k.gemm(GemmArgs{s.r, s.in, s.N, gyb.data(), s.r, true, x->f32(), s.in, false, p, s.in, false});
    for (int64_t i = 0; i < s.r * s.in; ++i) p[i] *= sc;
    res[2u] = ga;
  }
  if (need_b) {  // gb = scale·gyᵀ·xa  [out, r]
    Napi::Object gb = TensorWrap::Create(env, DType::F32, lb->shape);
    float* p = TensorWrap::Unwrap(gb)->f32();
    k.gemm(GemmArgs{s.out, s.r, s.N, gy->f32(), s.out, true, xa->f32(), s.r, false, p, s.r, false});
    for (int64_t i = 0; i < s.out * s.r; ++i) p[i] *= sc;
    res[3u] = gb;
  }
  if (need_bias) {
    Napi::Object gbias = TensorWrap::Create(env, DType::F32, Shape{s.out});
    float* p = TensorWrap::Unwrap(gbias)->f32();
    const float* g = gy->f32();
    par(s.out, 256, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) p[c] = 0.0f;
      for (int64_t i = 0; i < s.N; ++i)
        for (int64_t c = c0; c < c1; ++c) p[c] += g[i * s.out + c];
    });
    res[4u] = gbias;
  }
  return res;
}

// ---------------------------------------------------------------- INT8
// symmetric absmax quantization of a group (a row, or a column with axis 1):
// scale = float32(amax / 127), q = round-half-to-even of the exact quotient w * 127 / amax
// (computed in double: w * 127 is exact and the division correctly rounded, and a
// correctly rounded quotient of float32 operands never reaches a half-integer it does
// not equal); |w| <= amax keeps |q| <= 127. An all-zero group gets scale 0 and q 0.
// (A float32 inverse 127 / amax overflows to inf for amax < 3.7e-37, and 0 * inf is NaN.)
static inline float absmax_scale(float amax) { return amax / 127.0f; }
static inline int8_t quantize_exact(float v, double amax) {
  if (!(amax > 0.0)) return 0;
  double r = std::nearbyint(static_cast<double>(v) * 127.0 / amax);
  r = r > 127.0 ? 127.0 : (r < -127.0 ? -127.0 : (r == r ? r : 0.0));
  return static_cast<int8_t>(r);
}
static const float kMinFastAmax = 1e-36f;  // above 127 / FLT_MAX: 127 / amax stays finite

// ---- the activations of int8Linear, quantized per row on every call (N x in elements:
// this must run at memory speed, not through a libm nearbyintf call per element).
// keep[c] = 0 for outlier columns (left out: q 0, not part of the absmax).
// Rounding: (v + 1.5 * 2^23) - 1.5 * 2^23 rounds |v| <= 2^22 to the nearest integer, ties
// to even (the float addition itself rounds, in the default mode), which is nearbyint
// without the call; v is clamped to [-127, 127] first (the same result: the bounds are
// integers). Written with 16 independent lanes so that it vectorizes for any target;
// compiled three times below (baseline SSE2, AVX2, AVX-512) and picked by the active ISA.
static const int64_t kQL = 16;
static inline __attribute__((always_inline)) void quantize_act_row(const float* __restrict row, const float* __restrict keep,
                                                                   int64_t in, int8_t* __restrict q, float* sx) {
  float mx[kQL] = {}, bad[kQL] = {};
  int64_t c = 0;
  for (; c + kQL <= in; c += kQL)
    for (int64_t l = 0; l < kQL; ++l) {
      float a = std::fabs(row[c + l]);
      a = keep[c + l] != 0.0f ? a : 0.0f;
      mx[l] = a > mx[l] ? a : mx[l];
      bad[l] += a * 0.0f;  // NaN once any kept |x| is inf or NaN
    }
  for (; c < in; ++c) {
    float a = keep[c] != 0.0f ? std::fabs(row[c]) : 0.0f;
    mx[0] = a > mx[0] ? a : mx[0];
    bad[0] += a * 0.0f;
  }
  float m = 0.0f, nonfinite = 0.0f;
  for (int64_t l = 0; l < kQL; ++l) {
    m = mx[l] > m ? mx[l] : m;
    nonfinite += bad[l];
  }
  if (nonfinite != 0.0f) m = NAN;  // a row with NaN or inf gives a NaN output row
  *sx = absmax_scale(m);
  if (!(m >= kMinFastAmax && m <= 3.0e38f)) {  // tiny, zero or non-finite: the exact rule, NaN -> 0
    for (int64_t j = 0; j < in; ++j) q[j] = keep[j] != 0.0f ? quantize_exact(row[j], m) : 0;
    return;
  }
  const float inv = 127.0f / m, magic = 12582912.0f;
  for (int64_t j = 0; j < in; ++j) {
    float v = row[j] * inv;
    v = v > 127.0f ? 127.0f : v;
    v = v < -127.0f ? -127.0f : v;
    v = (v + magic) - magic;
    q[j] = static_cast<int8_t>(static_cast<int32_t>(v * keep[j]));
  }
}
static void quantize_act_rows_sse2(const float* x, const float* keep, int64_t N, int64_t in, int8_t* q, float* sx) {
  par(N, 16, [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; ++n) quantize_act_row(x + n * in, keep, in, q + n * in, sx + n);
  });
}
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma"))) static void quantize_act_rows_avx512(
    const float* x, const float* keep, int64_t N, int64_t in, int8_t* q, float* sx) {
  par(N, 16, [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; ++n) quantize_act_row(x + n * in, keep, in, q + n * in, sx + n);
  });
}
__attribute__((target("avx2,fma"))) static void quantize_act_rows_avx2(const float* x, const float* keep, int64_t N, int64_t in,
                                                                       int8_t* q, float* sx) {
  par(N, 16, [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; ++n) quantize_act_row(x + n * in, keep, in, q + n * in, sx + n);
  });
}
#endif
static void quantize_act_rows(const float* x, const float* keep, int64_t N, int64_t in, int8_t* q, float* sx) {
#if defined(__x86_64__) && defined(__GNUC__)
  const std::string isa = active_isa();
  if (isa == "avx512") return quantize_act_rows_avx512(x, keep, N, in, q, sx);
  if (isa == "avx2") return quantize_act_rows_avx2(x, keep, N, in, q, sx);
#endif
  quantize_act_rows_sse2(x, keep, N, in, q, sx);
}

// quantize_int8(w [R, C], axis) -> [q i8 [R, C], scale f32 [R] (axis 0) or [C] (axis 1)]
static Napi::Value QuantizeInt8(const Napi::CallbackInfo& info) {
  Args a(info, "quantizeInt8");
  a.count(2);
  TensorWrap* w = a.tensor_f32(0, "w");
  if (w->shape.size() != 2) a.range_error("w must be 2-d [out, in], got " + shape_str(w->shape));
  int64_t axis = a.axis(1, "axis", 2);
  int64_t R = w->shape[0], C = w->shape[1];
  const float* wp = w->f32();
  for (int64_t i = 0; i < w->numel; ++i)
    if (!std::isfinite(wp[i])) a.range_error("w has a non-finite value at index " + std::to_string(i));
  Napi::Object q = TensorWrap::Create(info.Env(), DType::I8, w->shape);
  Napi::Object sc = TensorWrap::Create(info.Env(), DType::F32, Shape{axis == 0 ? R : C});
  int8_t* qp = TensorWrap::Unwrap(q)->data<int8_t>();
  float* sp = TensorWrap::Unwrap(sc)->f32();
  if (axis == 0) {
    par(R, 16, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        float m = 0.0f;
        for (int64_t c = 0; c < C; ++c) m = std::max(m, std::fabs(wp[r * C + c]));
        sp[r] = absmax_scale(m);
        for (int64_t c = 0; c < C; ++c) qp[r * C + c] = quantize_exact(wp[r * C + c], m);
      }
    });
  } else {
    std::vector<float> m(C, 0.0f);
    for (int64_t r = 0; r < R; ++r)
      for (int64_t c = 0; c < C; ++c) m[c] = std::max(m[c], std::fabs(wp[r * C + c]));
    for (int64_t c = 0; c < C; ++c) sp[c] = absmax_scale(m[c]);
    par(R, 16, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r)
        for (int64_t c = 0; c < C; ++c) qp[r * C + c] = quantize_exact(wp[r * C + c], m[c]);
    });
  }
  Napi::Array r = Napi::Array::New(info.Env(), 2);
  r[0u] = q;
  r[1u] = sc;
  return r;
}

// int8_linear_forward(x [..., in], q i8 [out, in], scale [out], bias | null, threshold) -> y [..., out]
// x is quantized per row on the fly (absmax); with threshold > 0 the input
// columns where any |x| > threshold are left out of the int8 product and
// multiplied in f32 against the dequantized weight columns (LLM.int8()).
static Napi::Value Int8LinearForward(const Napi::CallbackInfo& info) {
  Args a(info, "int8Linear");
  a.count(5);
  TensorWrap* x = a.tensor_f32(0, "x");
  TensorWrap* q = a.tensor(1, "q");
  if (q->dtype != DType::I8) a.type_error("argument 'q' must have dtype i8, got " + std::string(dtype_name(q->dtype)));
  TensorWrap* sc = a.tensor_f32(2, "scale");
  TensorWrap* bias = info[3].IsNull() || info[3].IsUndefined() ? nullptr : a.tensor_f32(3, "bias");
  double threshold = a.number(4, "threshold");
  if (threshold < 0) a.range_error("threshold must be >= 0");
  if (x->shape.empty()) a.range_error("x must be [..., in]");
  int64_t in = x->shape.back(), N = in ? x->numel / in : 0;
  if (q->shape.size() != 2 || q->shape[1] != in) a.range_error("q must be [out, " + std::to_string(in) + "], got " + shape_str(q->shape));
  int64_t out = q->shape[0];
  if (sc->shape != Shape{out}) a.range_error("scale must be [" + std::to_string(out) + "], got " + shape_str(sc->shape));
  if (bias && bias->shape != Shape{out}) a.range_error("bias must be [" + std::to_string(out) + "], got " + shape_str(bias->shape));
  Shape ys = x->shape;
  ys.back() = out;
  Napi::Object y = TensorWrap::Create(info.Env(), DType::F32, ys);
  float* yp = TensorWrap::Unwrap(y)->f32();
  const float* xp = x->f32();
  if (N == 0 || out == 0) return y;
  // outlier columns: any |x| > threshold in the column (rows split into a few parts, merged)
  std::vector<int64_t> outliers;
  std::vector<float> keep(in, 1.0f);
  if (threshold > 0) {
    const int64_t parts = std::min<int64_t>(N, 16);
    std::vector<uint8_t> hit(static_cast<size_t>(parts * in), 0);
    const float th = static_cast<float>(threshold);
    par(parts, 1, [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p) {
        uint8_t* h = hit.data() + p * in;
        for (int64_t n = N * p / parts; n < N * (p + 1) / parts; ++n)
          for (int64_t c = 0; c < in; ++c) h[c] |= std::fabs(xp[n * in + c]) > th;  // NaN is no outlier
      }
    });
    for (int64_t c = 0; c < in; ++c) {
      uint8_t any = 0;
      for (int64_t p = 0; p < parts; ++p) any |= hit[p * in + c];
      if (any) {
        outliers.push_back(c);
        keep[c] = 0.0f;
      }
    }
  }
  // per-row quantization of the regular columns (the outlier columns get q = 0)
  std::unique_ptr<int8_t[]> qx(new int8_t[static_cast<size_t>(N * in)]);
  std::unique_ptr<float[]> sx(new float[static_cast<size_t>(N)]);
  quantize_act_rows(xp, keep.data(), N, in, qx.get(), sx.get());
  const KernelTable& k = kt();
  k.int8_gemm(qx.get(), sx.get(), q->data<int8_t>(), sc->f32(), bias ? bias->f32() : nullptr, N, out, in, yp, false);
  if (!outliers.empty()) {
    int64_t no = static_cast<int64_t>(outliers.size());
    std::vector<float> xo(static_cast<size_t>(N * no)), wo(static_cast<size_t>(out * no));
    for (int64_t n = 0; n < N; ++n)
      for (int64_t j = 0; j < no; ++j) xo[n * no + j] = xp[n * in + outliers[j]];
    const int8_t* qp = q->data<int8_t>();
    for (int64_t o = 0; o < out; ++o)
      for (int64_t j = 0; j < no; ++j) wo[o * no + j] = float(qp[o * in + outliers[j]]) * sc->f32()[o];
    k.gemm(GemmArgs{N, out, no, xo.data(), no, false, wo.data(), no, true, yp, out, true});
  }
  return y;
}

// dequantize_int8(q [R, C], scale [R]) -> f32 [R, C]
static Napi::Value DequantizeInt8(const Napi::CallbackInfo& info) {
  Args a(info, "dequantizeInt8");
  a.count(2);
  TensorWrap* q = a.tensor(0, "q");
  if (q->dtype != DType::I8) a.type_error("argument 'q' must have dtype i8, got " + std::string(dtype_name(q->dtype)));
  TensorWrap* sc = a.tensor_f32(1, "scale");
  if (q->shape.size() != 2 || sc->shape != Shape{q->shape[0]}) a.range_error("q must be [R, C] and scale [R]");
  Napi::Object w = TensorWrap::Create(info.Env(), DType::F32, q->shape);
  float* wp = TensorWrap::Unwrap(w)->f32();
  const int8_t* qp = q->data<int8_t>();
  int64_t R = q->shape[0], C = q->shape[1];
  par(R, 16, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r)
      for (int64_t c = 0; c < C; ++c) wp[r * C + c] = float(qp[r * C + c]) * sc->f32()[r];
  });
  return w;
}

void register_fused_ops(Napi::Env env, Napi::Object exports) {
  define<QuantizeInt8>(env, exports, "quantize_int8", "quantizeInt8");
  define<DequantizeInt8>(env, exports, "dequantize_int8", "dequantizeInt8");
  define<Int8LinearForward>(env, exports, "int8_linear_forward", "int8Linear");
  define<LoraForward>(env, exports, "lora_forward", "loraLinear");
  define<LoraBackward>(env, exports, "lora_backward", "loraLinear_backward");
  define<GaeForward>(env, exports, "gae_forward", "gae");
  define<AttentionForward>(env, exports, "attention_forward", "attention");
  define<AttentionBackward>(env, exports, "attention_backward", "attention_backward");
}

}  // namespace tk
