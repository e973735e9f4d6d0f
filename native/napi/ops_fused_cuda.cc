// The CUDA branches of attention, GAE, the LoRA linear and INT8 (see
// ops_fused_cuda.h). Shapes are validated by the callers in ops_fused.cc;
// nothing here reads device memory on the host except where it says so.
#include "ops_fused_cuda.h"

#include <cmath>
#include <string>
#include <vector>

#include "cuda_ops.h"

namespace tk {
namespace {

Napi::Object make(const Args& a, DType dt, const Shape& s, TensorWrap** w) {
  Napi::Object o = TensorWrap::Create(a.env(), dt, s);
  *w = TensorWrap::Unwrap(o);
  return o;
}

void same_float_dtype(const Args& a, DType dt, TensorWrap* t, const char* name) {
  if (t && t->dtype != dt)
    a.type_error(std::string("'") + name + "' is " + dtype_name(t->dtype) + " but the op computes in " + dtype_name(dt) +
                 "; convert it with .to('" + dtype_name(dt) + "')");
}

// y [n] of ydt = convert(x [n] of xdt)
void convert(const Args& a, void* y, DType ydt, const void* x, DType xdt, int64_t n) {
  if (n == 0) return;
  int64_t one = 1;
  TK_CUDA(a, copy_strided, y, tk_dt(ydt), &one, x, tk_dt(xdt), &one, 1, &n);
}

// dst [cols, rows] = srcᵀ for src [rows, cols], any dtype (dtypes may differ)
void transpose(const Args& a, void* dst, DType ddt, const void* src, DType sdt, int64_t rows, int64_t cols) {
  if (rows == 0 || cols == 0) return;
  int64_t sizes[2] = {cols, rows}, ys[2] = {rows, 1}, xs[2] = {1, cols};
  TK_CUDA(a, copy_strided, dst, tk_dt(ddt), ys, src, tk_dt(sdt), xs, 2, sizes);
}

tk_gemm_params gemm(DType dt, int64_t M, int64_t N, int64_t K, const void* A, int64_t lda, bool ta, const void* B,
                    int64_t ldb, bool tb, void* C, int64_t ldc, DType cdt) {
  tk_gemm_params g{};
  g.M = M;
  g.N = N;
  g.K = K;
  g.batch = 1;
  g.dt = tk_dt(dt);
  g.A = A;
  g.lda = lda;
  g.trans_a = ta;
  g.B = B;
  g.ldb = ldb;
  g.trans_b = tb;
  g.C = C;
  g.ldc = ldc;
  g.c_dt = tk_dt(cdt);
  g.alpha = 1.0f;
  g.beta = 0.0f;
  return g;
}

void run_gemm(const Args& a, const tk_gemm_params& g) {
  if (g.M == 0 || g.N == 0) return;
  if (g.K == 0 && g.K2 == 0) {
    if (g.beta == 0.0f) TK_CUDA(a, fill, g.C, g.c_dt, g.M * g.N, 0.0);
    return;
  }
  TK_CUDA(a, gemm, &g);
}

size_t elem(DType d) { return dtype_size(d); }

// The shapes and inputs of an attention call (both directions).
tk_attention_params attention_params(DType dt, TensorWrap* q, TensorWrap* k, TensorWrap* v, TensorWrap* kv_len,
                                     int64_t B, int64_t H, int64_t Hkv, int64_t T, int64_t S, int64_t D, float scale,
                                     bool causal) {
  tk_attention_params p{};
  p.dt = tk_dt(dt);
  p.B = B;
  p.H = H;
  p.Hkv = Hkv;
  p.T = T;
  p.S = S;
  p.D = D;
  p.scale = scale;
  p.causal = causal;
  p.q = q->raw();
  p.k = k->raw();
  p.v = v->raw();
  p.kv_len = kv_len ? kv_len->i32() : nullptr;
  return p;
}

}  // namespace

// ---------------------------------------------------------------- attention
Napi::Value cuda_attention_forward(const Args& a, TensorWrap* q, TensorWrap* k, TensorWrap* v, TensorWrap* kv_len,
                                   int64_t B, int64_t H, int64_t Hkv, int64_t T, int64_t S, int64_t D, float scale,
                                   bool causal) {
  same_float_dtype(a, q->dtype, k, "k");
  same_float_dtype(a, q->dtype, v, "v");
  TensorWrap *o, *lse;
  Napi::Array r = Napi::Array::New(a.env(), 2);
  r[0u] = make(a, q->dtype, q->shape, &o);
  r[1u] = make(a, DType::F32, Shape{B, H, T}, &lse);
  if (q->numel == 0) return r;
  tk_attention_params p = attention_params(q->dtype, q, k, v, kv_len, B, H, Hkv, T, S, D, scale, causal);
  p.o = o->raw();
  p.lse = lse->f32();
  TK_CUDA(a, attention_forward, &p);
  return r;
}

Napi::Value cuda_attention_backward(const Args& a, TensorWrap* q, TensorWrap* k, TensorWrap* v, TensorWrap* o,
                                    TensorWrap* lse, TensorWrap* dout, TensorWrap* kv_len, int64_t B, int64_t H,
                                    int64_t Hkv, int64_t T, int64_t S, int64_t D, float scale, bool causal) {
  DType dt = q->dtype;
  same_float_dtype(a, dt, k, "k");
  same_float_dtype(a, dt, v, "v");
  same_float_dtype(a, dt, o, "o");
  if (lse->dtype != DType::F32) a.type_error("'lse' must be f32");
  CudaScratch scratch(a);
  const void* g = dout->raw();
  if (dout->dtype != dt) {  // the incoming gradient in the op's dtype
    void* gc = scratch.get(size_t(dout->numel) * elem(dt));
    convert(a, gc, dt, dout->raw(), dout->dtype, dout->numel);
    g = gc;
  }
  TensorWrap *dq, *dk, *dv;
  Napi::Array r = Napi::Array::New(a.env(), 3);
  r[0u] = make(a, dt, q->shape, &dq);
  r[1u] = make(a, dt, k->shape, &dk);
  r[2u] = make(a, dt, v->shape, &dv);
  if (q->numel == 0 || k->numel == 0) {  // nothing attends: zero gradients
    for (TensorWrap* t : {dq, dk, dv})
      if (t->numel) TK_CUDA(a, fill, t->raw(), tk_dt(dt), t->numel, 0.0);
    return r;
  }
  tk_attention_params p = attention_params(dt, q, k, v, kv_len, B, H, Hkv, T, S, D, scale, causal);
  p.o = o->raw();
  p.lse = lse->f32();
  p.dout = g;
  p.dq = dq->raw();
  p.dk = dk->raw();
  p.dv = dv->raw();
  TK_CUDA(a, attention_backward, &p);
  return r;
}

// ---------------------------------------------------------------- GAE
Napi::Value cuda_gae(const Args& a, TensorWrap* r, TensorWrap* v, TensorWrap* d, TensorWrap* last, float gamma,
                     float lambda) {
  TensorWrap *adv, *ret;
  Napi::Array out = Napi::Array::New(a.env(), 2);
  out[0u] = make(a, DType::F32, r->shape, &adv);
  out[1u] = make(a, DType::F32, r->shape, &ret);
  if (r->numel)
    TK_CUDA(a, gae, r->f32(), v->f32(), d->f32(), last ? last->f32() : nullptr, r->shape[0], r->shape[1], gamma, lambda,
            adv->f32(), ret->f32());
  return out;
}

// ---------------------------------------------------------------- LoRA linear
Napi::Value cuda_lora_forward(const Args& a, TensorWrap* x, TensorWrap* w, TensorWrap* la, TensorWrap* lb,
                              TensorWrap* bias, float scale, bool fifo, int64_t N, int64_t in, int64_t out, int64_t r) {
  DType dt = x->dtype;
  same_float_dtype(a, dt, w, "w");
  same_float_dtype(a, dt, la, "a");
  same_float_dtype(a, dt, lb, "b");
  same_float_dtype(a, dt, bias, "bias");
  Shape ys = x->shape;
  ys.back() = out;
  TensorWrap *y, *xa;
  Napi::Array res = Napi::Array::New(a.env(), 2);
  res[0u] = make(a, dt, ys, &y);
  res[1u] = make(a, DType::F32, Shape{N, r}, &xa);
  if (N == 0 || out == 0) {
    if (N && r) TK_CUDA(a, fill, xa->raw(), TK_F32, N * r, 0.0);  // (xa of x·aᵀ with out = 0)
    return res;
  }
  if (!fifo) {
    // one fused kernel: x·aᵀ stays on chip, added through b in the epilogue; xa saved for the backward
    tk_lora_params p{};
    p.dt = tk_dt(dt);
    p.N = N;
    p.in = in;
    p.out = out;
    p.r = r;
    p.x = x->raw();
    p.w = w->raw();
    p.a = la->raw();
    p.b = lb->raw();
    p.bias = bias ? bias->raw() : nullptr;
    p.scale = scale;
    p.y = y->raw();
    p.xa = xa->f32();
    TK_CUDA(a, lora_forward, &p);
    return res;
  }
  // w stored [in, out] (GPT-2's Conv1D): xa = x·aᵀ, then y = x·w + xa·(scale·b)ᵀ + bias in one GEMM
  CudaScratch scratch(a);
  run_gemm(a, gemm(dt, N, r, in, x->raw(), in, false, la->raw(), in, true, xa->raw(), r, DType::F32));
  const void* xa_dt = xa->raw();
  if (dt != DType::F32) {
    void* c = scratch.get(size_t(N * r) * elem(dt));
    convert(a, c, dt, xa->raw(), DType::F32, N * r);
    xa_dt = c;
  }
  void* bs = scratch.get(size_t(out * r) * elem(dt));  // scale·b
  TK_CUDA(a, memcpy_d2d, bs, lb->raw(), size_t(out * r) * elem(dt));
  TK_CUDA(a, scale_inplace, tk_dt(dt), bs, out * r, scale);
  tk_gemm_params g = gemm(dt, N, out, in, x->raw(), in, false, w->raw(), out, false, y->raw(), out, dt);
  g.A2 = xa_dt;
  g.lda2 = r;
  g.B2 = bs;
  g.ldb2 = r;
  g.trans_b2 = 1;  // b is [out, r]
  g.K2 = r;
  g.bias = bias ? bias->raw() : nullptr;
  run_gemm(a, g);
  return res;
}

Napi::Value cuda_lora_backward(const Args& a, TensorWrap* x, TensorWrap* w, TensorWrap* la, TensorWrap* lb,
                               TensorWrap* xa, TensorWrap* gy, float scale, bool need_x, bool need_w, bool need_a,
                               bool need_b, bool need_bias, bool fifo, int64_t N, int64_t in, int64_t out, int64_t r) {
  DType dt = x->dtype;
  same_float_dtype(a, dt, w, "w");
  same_float_dtype(a, dt, la, "a");
  same_float_dtype(a, dt, lb, "b");
  if (xa->dtype != DType::F32) a.type_error("'xa' must be f32");
  Napi::Env env = a.env();
  CudaScratch scratch(a);
  const void* g = gy->raw();
  if (gy->dtype != dt) {
    void* c = scratch.get(size_t(gy->numel) * elem(dt));
    convert(a, c, dt, gy->raw(), gy->dtype, gy->numel);
    g = c;
  }
  Napi::Array res = Napi::Array::New(env, 5);
  for (uint32_t i = 0; i < 5; ++i) res[i] = env.Null();
  // gyb = scale·gy·b [N, r], for gx and ga
  void* gyb = nullptr;
  if (need_x || need_a) {
    gyb = scratch.get(size_t(N * r) * elem(dt));
    tk_gemm_params p = gemm(dt, N, r, out, g, out, false, lb->raw(), r, false, gyb, r, dt);
    p.alpha = scale;
    run_gemm(a, p);
  }
  if (need_x) {  // gx = gy·op(w) + gyb·a, op(w) = w as [out, in]
    TensorWrap* gx;
    res[0u] = make(a, dt, x->shape, &gx);
    tk_gemm_params p = gemm(dt, N, in, out, g, out, false, w->raw(), fifo ? out : in, fifo, gx->raw(), in, dt);
    p.A2 = gyb;
    p.lda2 = r;
    p.B2 = la->raw();
    p.ldb2 = in;
    p.K2 = r;
    run_gemm(a, p);
  }
  if (need_w) {
    TensorWrap* gw;
    res[1u] = make(a, dt, w->shape, &gw);
    if (fifo)  // gw [in, out] = xᵀ·gy
      run_gemm(a, gemm(dt, in, out, N, x->raw(), in, true, g, out, false, gw->raw(), out, dt));
    else  // gw [out, in] = gyᵀ·x
      run_gemm(a, gemm(dt, out, in, N, g, out, true, x->raw(), in, false, gw->raw(), in, dt));
  }
  if (need_a) {  // ga [r, in] = gybᵀ·x
    TensorWrap* ga;
    res[2u] = make(a, dt, la->shape, &ga);
    run_gemm(a, gemm(dt, r, in, N, gyb, r, true, x->raw(), in, false, ga->raw(), in, dt));
  }
  if (need_b) {  // gb [out, r] = scale·gyᵀ·xa
    TensorWrap* gb;
    res[3u] = make(a, dt, lb->shape, &gb);
    const void* xa_dt = xa->raw();
    if (dt != DType::F32) {
      void* c = scratch.get(size_t(N * r) * elem(dt));
      convert(a, c, dt, xa->raw(), DType::F32, N * r);
      xa_dt = c;
    }
    tk_gemm_params p = gemm(dt, out, r, N, g, out, true, xa_dt, r, false, gb->raw(), r, dt);
    p.alpha = scale;
    run_gemm(a, p);
  }
  if (need_bias) {  // gbias [out] = Σ over rows of gy
    TensorWrap* gbias;
    res[4u] = make(a, dt, Shape{out}, &gbias);
    if (N == 0) {
      if (out) TK_CUDA(a, fill, gbias->raw(), tk_dt(dt), out, 0.0);
    } else if (out) {
      TK_CUDA(a, reduce_axis, TK_SUM, tk_dt(dt), g, 1, N, out, gbias->raw(), nullptr);
    }
  }
  return res;
}

// ---------------------------------------------------------------- INT8
// The CPU refuses weights with a non-finite value (naming its index): the same
// here, found through the sum of squares (a non-finite value makes it non-finite)
// and located on the host only in that case.
static void check_finite(const Args& a, TensorWrap* w) {
  if (w->numel == 0) return;
  CudaScratch scratch(a);
  float* acc = scratch.get<float>(1);
  TK_CUDA(a, fill, acc, TK_F32, 1, 0.0);
  TK_CUDA(a, sum_squares, tk_dt(w->dtype), w->raw(), w->numel, acc);
  float h = 0;
  TK_CUDA(a, memcpy_d2h, &h, acc, 4);
  if (std::isfinite(h)) return;
  std::vector<float> host(static_cast<size_t>(w->numel));
  if (w->dtype == DType::F32) {
    TK_CUDA(a, memcpy_d2h, host.data(), w->raw(), host.size() * 4);
  } else {
    float* f = scratch.get<float>(w->numel);
    convert(a, f, DType::F32, w->raw(), w->dtype, w->numel);
    TK_CUDA(a, memcpy_d2h, host.data(), f, host.size() * 4);
  }
  for (size_t i = 0; i < host.size(); ++i)
    if (!std::isfinite(host[i])) a.range_error("w has a non-finite value at index " + std::to_string(i));
}

Napi::Value cuda_quantize_int8(const Args& a, TensorWrap* w, int64_t axis) {
  int64_t R = w->shape[0], C = w->shape[1];
  check_finite(a, w);
  TensorWrap *q, *sc;
  Napi::Array res = Napi::Array::New(a.env(), 2);
  res[0u] = make(a, DType::I8, w->shape, &q);
  res[1u] = make(a, DType::F32, Shape{axis == 0 ? R : C}, &sc);
  if (R == 0 || C == 0) {
    int64_t n = axis == 0 ? R : C;
    if (n) TK_CUDA(a, fill, sc->raw(), TK_F32, n, 0.0);
    return res;
  }
  if (axis == 0) {
    TK_CUDA(a, quantize_rows_int8, tk_dt(w->dtype), w->raw(), R, C, static_cast<int8_t*>(q->raw()), sc->f32());
    return res;
  }
  // per column: quantize the rows of wᵀ, then transpose the codes back
  CudaScratch scratch(a);
  void* wt = scratch.get(size_t(R * C) * elem(w->dtype));
  int8_t* qt = scratch.get<int8_t>(R * C);
  transpose(a, wt, w->dtype, w->raw(), w->dtype, R, C);
  TK_CUDA(a, quantize_rows_int8, tk_dt(w->dtype), wt, C, R, qt, sc->f32());
  transpose(a, q->raw(), DType::I8, qt, DType::I8, C, R);
  return res;
}

Napi::Value cuda_dequantize_int8(const Args& a, TensorWrap* q, TensorWrap* scale) {
  int64_t R = q->shape[0], C = q->shape[1];
  TensorWrap* w;
  Napi::Object out = make(a, DType::F32, q->shape, &w);
  if (R == 0 || C == 0) return out;
  // w = float(q) · scale[row]
  CudaScratch scratch(a);
  float* qf = scratch.get<float>(R * C);
  convert(a, qf, DType::F32, q->raw(), DType::I8, R * C);
  int64_t sizes[2] = {R, C}, as[2] = {C, 1}, bs[2] = {1, 0};
  TK_CUDA(a, binary, TK_MUL, TK_F32, qf, as, scale->raw(), bs, w->raw(), 2, sizes);
  return out;
}

Napi::Value cuda_int8_linear(const Args& a, TensorWrap* x, TensorWrap* q, TensorWrap* scale, TensorWrap* bias,
                             double threshold, int64_t N, int64_t in, int64_t out) {
  DType dt = x->dtype;
  same_float_dtype(a, dt, bias, "bias");
  Shape ys = x->shape;
  ys.back() = out;
  TensorWrap* y;
  Napi::Object res = make(a, dt, ys, &y);
  if (N == 0 || out == 0) return res;
  CudaScratch scratch(a);
  const void* xk = x->raw();  // x with the outlier columns zeroed
  std::vector<int64_t> outliers;
  if (threshold > 0 && in > 0) {
    // the columns where any |x| > threshold: max over rows of x², read on the host (synchronizes)
    void* sq = scratch.get(size_t(N * in) * elem(dt));
    TK_CUDA(a, unary_forward, TK_POW, tk_dt(dt), x->raw(), sq, N * in, 2.0f);
    void* colmax = scratch.get(size_t(in) * elem(dt));
    int32_t* idx = scratch.get<int32_t>(in);
    TK_CUDA(a, reduce_axis, TK_MAX, tk_dt(dt), sq, 1, N, in, colmax, idx);
    float* colf = scratch.get<float>(in);
    convert(a, colf, DType::F32, colmax, dt, in);
    std::vector<float> h(static_cast<size_t>(in));
    TK_CUDA(a, memcpy_d2h, h.data(), colf, size_t(in) * 4);
    double th2 = threshold * threshold;
    std::vector<int8_t> keep(static_cast<size_t>(in), 1);
    for (int64_t c = 0; c < in; ++c)
      if (double(h[c]) > th2) {  // NaN is no outlier (as on the CPU)
        outliers.push_back(c);
        keep[c] = 0;
      }
    if (!outliers.empty()) {
      int8_t* keep_d = scratch.get<int8_t>(in);
      TK_CUDA(a, memcpy_h2d, keep_d, keep.data(), size_t(in));
      void* zero = scratch.get(elem(dt));
      TK_CUDA(a, fill, zero, tk_dt(dt), 1, 0.0);
      void* xz = scratch.get(size_t(N * in) * elem(dt));
      int64_t sizes[2] = {N, in}, cs[2] = {0, 1}, xs[2] = {in, 1}, zs[2] = {0, 0};
      TK_CUDA(a, where, keep_d, TK_I8, cs, x->raw(), xs, zero, zs, tk_dt(dt), xz, 2, sizes);
      xk = xz;
    }
  }
  // the regular part: x quantized per row on the fly, int8 × int8 in i32, dequantized in the epilogue
  int8_t* qx = scratch.get<int8_t>(N * in);
  float* sx = scratch.get<float>(N);
  TK_CUDA(a, quantize_rows_int8, tk_dt(dt), xk, N, in, qx, sx);
  TK_CUDA(a, int8_gemm, tk_dt(dt), qx, sx, static_cast<const int8_t*>(q->raw()), scale->f32(), bias ? bias->raw() : nullptr,
          N, out, in, y->raw(), 0);
  if (outliers.empty()) return res;
  // the outlier columns in floating point: y += x[:, cols] · (q[:, cols] · scale)ᵀ
  int64_t no = static_cast<int64_t>(outliers.size());
  void* xo = scratch.get(size_t(N * no) * elem(dt));
  void* wo = scratch.get(size_t(out * no) * elem(dt));
  float* wof = scratch.get<float>(out * no);
  int8_t* qo = scratch.get<int8_t>(out * no);
  for (int64_t j = 0; j < no; ++j) {
    int64_t c = outliers[size_t(j)];
    int64_t nx = N, nq = out, ys1 = no, xs1 = in;
    TK_CUDA(a, copy_strided, static_cast<char*>(xo) + size_t(j) * elem(dt), tk_dt(dt), &ys1,
            static_cast<const char*>(x->raw()) + size_t(c) * elem(dt), tk_dt(dt), &xs1, 1, &nx);
    TK_CUDA(a, copy_strided, qo + j, TK_I8, &ys1, static_cast<const int8_t*>(q->raw()) + c, TK_I8, &xs1, 1, &nq);
  }
  convert(a, wof, DType::F32, qo, DType::I8, out * no);
  int64_t sizes[2] = {out, no}, as[2] = {no, 1}, bs[2] = {1, 0};
  TK_CUDA(a, binary, TK_MUL, TK_F32, wof, as, scale->raw(), bs, wof, 2, sizes);
  if (dt != DType::F32) convert(a, wo, dt, wof, DType::F32, out * no);
  tk_gemm_params p = gemm(dt, N, out, no, xo, no, false, dt == DType::F32 ? wof : wo, no, true, y->raw(), out, dt);
  p.beta = 1.0f;
  run_gemm(a, p);
  return res;
}

}  // namespace tk
