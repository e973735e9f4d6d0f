// Bindings of the fused ops (issue "The four fused kernels"): attention, ...
#include <cmath>
#include <cstdlib>
#include <cstring>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#include "../cpu/baseline.h"
#include "../runtime/isa.h"
#include "bindings.h"
#include "cuda_ops.h"
#include "ops_fused_cuda.h"

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
    // on CUDA the lengths are read back to the host (a few bytes; synchronizes) to be checked
    std::vector<int32_t> host;
    if (kv_len->device == Device::CUDA) host = cuda_read_i32(a, kv_len);
    const int32_t* len = kv_len->device == Device::CUDA ? host.data() : kv_len->i32();
    for (int64_t b = 0; b < s.B; ++b)
      if (len[b] < 0 || len[b] > s.S)
        a.range_error("kvLengths[" + std::to_string(b) + "] = " + std::to_string(len[b]) + " is out of range [0, " + std::to_string(s.S) + "]");
  }
  return s;
}

// attention_forward(q, k, v, kvLengths | null, scale, causal) -> [o, lse]
static Napi::Value AttentionForward(const Napi::CallbackInfo& info) {
  Args a(info, "attention");
  a.count(6);
  TensorWrap* q = a.tensor_float(0, "q");
  TensorWrap* k = a.tensor_float(1, "k");
  TensorWrap* v = a.tensor_float(2, "v");
  TensorWrap* kl = info[3].IsNull() || info[3].IsUndefined() ? nullptr : a.tensor_i32(3, "kvLengths");
  double scale = a.number(4, "scale");
  bool causal = a.boolean(5, "causal");
  AttnShapes s = attn_shapes(a, q, k, v, kl);
  if (a.cuda()) return cuda_attention_forward(a, q, k, v, kl, s.B, s.H, s.Hkv, s.T, s.S, s.D, float(scale), causal);
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
  TensorWrap* q = a.tensor_float(0, "q");
  TensorWrap* k = a.tensor_float(1, "k");
  TensorWrap* v = a.tensor_float(2, "v");
  TensorWrap* o = a.tensor_float(3, "o");
  TensorWrap* lse = a.tensor_f32(4, "lse");
  TensorWrap* dout = a.tensor_float(5, "dout");
  TensorWrap* kl = info[6].IsNull() || info[6].IsUndefined() ? nullptr : a.tensor_i32(6, "kvLengths");
  double scale = a.number(7, "scale");
  bool causal = a.boolean(8, "causal");
  AttnShapes s = attn_shapes(a, q, k, v, kl);
  if (o->shape != q->shape || dout->shape != q->shape) a.range_error("o and dout must have the shape of q");
  if (lse->shape != (Shape{s.B, s.H, s.T})) a.range_error("lse must be [B, H, T]");
  if (a.cuda())
    return cuda_attention_backward(a, q, k, v, o, lse, dout, kl, s.B, s.H, s.Hkv, s.T, s.S, s.D, float(scale), causal);
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
  if (a.cuda()) return cuda_gae(a, r, v, d, last, float(gamma), float(lambda));
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

// ---- the rank-r products of loraLinear on AVX-512 (r <= 64): xa = x·aᵀ, gyb = gy·b with
// gb = gyᵀ·xa in the same pass over gy, and ga = gybᵀ·x. Each is one streaming pass over
// an [N, in] or [N, out] matrix with r-wide rows (one to four 16-lane vectors, the last one
// masked) held in registers: through the general SGEMM, an r = 16 product pads the 32-wide
// register tile to 2x the work and reads its operand once per K block. Other ISAs take the
// SGEMM (kt().gemm).
#if defined(__x86_64__) && defined(__GNUC__)
#define TK_LORA_SIMD 1
#define TK_LORA_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")))
namespace lora_simd {

static const int64_t kMaxRank = 64;

// 64-byte aligned scratch of n floats, freed on scope exit
struct Scratch {
  float* p;
  explicit Scratch(int64_t n) {
    size_t bytes = (size_t(n > 0 ? n : 1) * sizeof(float) + 63) & ~size_t(63);
    p = static_cast<float*>(aligned_alloc(64, bytes));
    if (!p) throw std::bad_alloc();
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { free(p); }
};

static inline uint16_t lane_mask(int64_t valid) {
  return valid >= 16 ? uint16_t(0xffff) : valid <= 0 ? uint16_t(0) : uint16_t((1u << valid) - 1u);
}

// dst [rows][16 NV]: src [rows][cols] (row stride lds) zero-padded to 16 NV columns
static void pad_rows(const float* src, int64_t rows, int64_t cols, int64_t lds, int64_t nv, float* dst) {
  for (int64_t i = 0; i < rows; ++i) {
    float* d = dst + i * 16 * nv;
    for (int64_t j = 0; j < 16 * nv; ++j) d[j] = j < cols ? src[i * lds + j] : 0.0f;
  }
}

// xa[n, :] = x[n, :] · at (at = aᵀ zero-padded: [in][16 NV]) for rows [n0, n1)
template <int NV, int RB>
TK_LORA_TARGET static void xa_rows(const float* x, int64_t in, const float* at, int64_t r, float* xa, int64_t n0,
                                   int64_t n1) {
  __mmask16 m[NV];
  for (int u = 0; u < NV; ++u) m[u] = lane_mask(r - 16 * u);
  for (int64_t n = n0; n < n1; n += RB) {
    const int64_t rows = n1 - n < RB ? n1 - n : RB;
    const float* xr[RB];
    for (int i = 0; i < RB; ++i) xr[i] = x + (n + (i < rows ? i : 0)) * in;
    __m512 acc[RB][NV];
#pragma GCC unroll 16
    for (int i = 0; i < RB; ++i)
#pragma GCC unroll 4
      for (int u = 0; u < NV; ++u) acc[i][u] = _mm512_setzero_ps();
    for (int64_t k = 0; k < in; ++k) {
      __m512 av[NV];
#pragma GCC unroll 4
      for (int u = 0; u < NV; ++u) av[u] = _mm512_load_ps(at + (k * NV + u) * 16);
#pragma GCC unroll 16
      for (int i = 0; i < RB; ++i) {
        __m512 xb = _mm512_set1_ps(xr[i][k]);
#pragma GCC unroll 4
        for (int u = 0; u < NV; ++u) acc[i][u] = _mm512_fmadd_ps(xb, av[u], acc[i][u]);
      }
    }
#pragma GCC unroll 16
    for (int i = 0; i < RB; ++i)  // constant indices keep acc in registers
      if (i < rows)
#pragma GCC unroll 4
        for (int u = 0; u < NV; ++u) _mm512_mask_storeu_ps(xa + (n + i) * r + 16 * u, m[u], acc[i][u]);
  }
}

// gyb[n, :] = gy[n, :] · bp (bp = b zero-padded: [out][16 NV]) for rows [n0, n1), and with GB
// gbp[o, :] += sum_n gy[n, o] xa[n, :] (gbp: [out][16 NV], this thread's partial sum)
template <int NV, int RB, bool GB>
TK_LORA_TARGET static void gyb_rows(const float* gy, int64_t out, const float* bp, const float* xa, int64_t r, float* gyb,
                                    float* gbp, int64_t n0, int64_t n1) {
  __mmask16 m[NV];
  for (int u = 0; u < NV; ++u) m[u] = lane_mask(r - 16 * u);
  for (int64_t n = n0; n < n1; n += RB) {
    const int64_t rows = n1 - n < RB ? n1 - n : RB;
    const float* gr[RB];
    __m512 acc[RB][NV], xv[RB][NV];
#pragma GCC unroll 16
    for (int i = 0; i < RB; ++i) {
      gr[i] = gy + (n + (i < rows ? i : 0)) * out;
#pragma GCC unroll 4
      for (int u = 0; u < NV; ++u) {
        acc[i][u] = _mm512_setzero_ps();
        // rows past the end repeat a row for gyb (never stored) and add nothing to gb
        xv[i][u] = GB && i < rows ? _mm512_maskz_loadu_ps(m[u], xa + (n + i) * r + 16 * u) : _mm512_setzero_ps();
      }
    }
    for (int64_t o = 0; o < out; ++o) {
      __m512 g[RB];
#pragma GCC unroll 16
      for (int i = 0; i < RB; ++i) g[i] = _mm512_set1_ps(gr[i][o]);
#pragma GCC unroll 4
      for (int u = 0; u < NV; ++u) {
        __m512 bo = _mm512_load_ps(bp + (o * NV + u) * 16);
#pragma GCC unroll 16
        for (int i = 0; i < RB; ++i) acc[i][u] = _mm512_fmadd_ps(g[i], bo, acc[i][u]);
        if (GB) {  // two short chains instead of one long one
          float* t = gbp + (o * NV + u) * 16;
          __m512 s0 = _mm512_load_ps(t), s1 = _mm512_mul_ps(g[1 % RB], xv[1 % RB][u]);
          if (RB == 1) s1 = _mm512_setzero_ps();
          s0 = _mm512_fmadd_ps(g[0], xv[0][u], s0);
#pragma GCC unroll 16
          for (int i = 2; i < RB; ++i) {
            if (i % 2) s1 = _mm512_fmadd_ps(g[i], xv[i][u], s1);
            else s0 = _mm512_fmadd_ps(g[i], xv[i][u], s0);
          }
          _mm512_store_ps(t, _mm512_add_ps(s0, s1));
        }
      }
    }
#pragma GCC unroll 16
    for (int i = 0; i < RB; ++i)
      if (i < rows)
#pragma GCC unroll 4
        for (int u = 0; u < NV; ++u) _mm512_mask_storeu_ps(gyb + (n + i) * r + 16 * u, m[u], acc[i][u]);
  }
}

// ga rows [j0, j0 + JB), columns [c, c + 16 KV) (lanes past the end masked off by m), over
// the rows [n0, n1) of x: JB x KV accumulators in registers; the first block starts from 0
template <int JB, int KV>
TK_LORA_TARGET static void ga_block(const float* x, int64_t in, const float* gyb, int64_t r, float* ga, int64_t j0, int64_t c,
                                    const __mmask16* m, int64_t n0, int64_t n1) {
  __m512 acc[JB][KV];
#pragma GCC unroll 8
  for (int jj = 0; jj < JB; ++jj)
#pragma GCC unroll 3
    for (int v = 0; v < KV; ++v)
      acc[jj][v] = n0 > 0 ? _mm512_maskz_loadu_ps(m[v], ga + (j0 + jj) * in + c + 16 * v) : _mm512_setzero_ps();
  for (int64_t n = n0; n < n1; ++n) {
    const float* xr = x + n * in + c;
    const float* gr = gyb + n * r + j0;
    __m512 xv[KV];
#pragma GCC unroll 3
    for (int v = 0; v < KV; ++v) xv[v] = _mm512_maskz_loadu_ps(m[v], xr + 16 * v);
#pragma GCC unroll 8
    for (int jj = 0; jj < JB; ++jj) {
      __m512 g = _mm512_set1_ps(gr[jj]);
#pragma GCC unroll 3
      for (int v = 0; v < KV; ++v) acc[jj][v] = _mm512_fmadd_ps(g, xv[v], acc[jj][v]);
    }
  }
#pragma GCC unroll 8
  for (int jj = 0; jj < JB; ++jj)
#pragma GCC unroll 3
    for (int v = 0; v < KV; ++v) _mm512_mask_storeu_ps(ga + (j0 + jj) * in + c + 16 * v, m[v], acc[jj][v]);
}

// ga[j, c] = sum_n gyb[n, j] x[n, c] for the columns [c0, c1) of ga [r, in] (no other thread
// writes them). Blocks of 16 rows of x: each block passes once over the columns, with 8 x 3
// accumulators in registers per (column chunk, group of 8 ranks) and the next block's lines
// prefetched (x is read in order, one row block at a time, each element from memory once).
TK_LORA_TARGET static void ga_cols(const float* x, int64_t N, int64_t in, const float* gyb, int64_t r, float* ga, int64_t c0,
                                   int64_t c1) {
  const int KV = 3;
  const int64_t NB = 16;
  for (int64_t n0 = 0; n0 < N; n0 += NB) {
    const int64_t n1 = N - n0 < NB ? N : n0 + NB;
    const int64_t p1 = N - n1 < NB ? N : n1 + NB;  // the rows to prefetch
    for (int64_t c = c0; c < c1; c += 16 * KV) {
      for (int64_t n = n1; n < p1; ++n)
        for (int64_t cc = c; cc < c + 16 * KV && cc < c1; cc += 16) _mm_prefetch(reinterpret_cast<const char*>(x + n * in + cc), _MM_HINT_T0);
      __mmask16 m[KV];
      for (int v = 0; v < KV; ++v) m[v] = lane_mask(c1 - c - 16 * v);
      for (int64_t j0 = 0; j0 < r; j0 += 8) {
        switch (r - j0 < 8 ? r - j0 : 8) {
          case 1: ga_block<1, KV>(x, in, gyb, r, ga, j0, c, m, n0, n1); break;
          case 2: ga_block<2, KV>(x, in, gyb, r, ga, j0, c, m, n0, n1); break;
          case 3: ga_block<3, KV>(x, in, gyb, r, ga, j0, c, m, n0, n1); break;
          case 4: ga_block<4, KV>(x, in, gyb, r, ga, j0, c, m, n0, n1); break;
          case 5: ga_block<5, KV>(x, in, gyb, r, ga, j0, c, m, n0, n1); break;
          case 6: ga_block<6, KV>(x, in, gyb, r, ga, j0, c, m, n0, n1); break;
          case 7: ga_block<7, KV>(x, in, gyb, r, ga, j0, c, m, n0, n1); break;
          default: ga_block<8, KV>(x, in, gyb, r, ga, j0, c, m, n0, n1); break;
        }
      }
    }
  }
}

template <int NV>
static void xa_all(const float* x, int64_t N, int64_t in, const float* at, int64_t r, float* xa) {
  const int RB = NV == 1 ? 12 : NV == 2 ? 8 : 4;
  par((N + RB - 1) / RB, 8, [&](int64_t b, int64_t e) {
    xa_rows<NV, RB>(x, in, at, r, xa, b * RB, e * RB < N ? e * RB : N);
  });
}

template <int NV, bool GB>
static void gyb_all(const float* gy, int64_t N, int64_t out, const float* bp, const float* xa, int64_t r, float* gyb,
                    float* gbp /* [threads][out][16 NV] */) {
  const int RB = NV == 1 ? 8 : NV == 2 ? 6 : 3;
  const int64_t blocks = (N + RB - 1) / RB;
  const int64_t parts = thread_count();
  par(parts, 1, [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      int64_t r0 = blocks * p / parts * RB, r1 = blocks * (p + 1) / parts * RB;
      if (r1 > N) r1 = N;
      if (r0 < r1) gyb_rows<NV, RB, GB>(gy, out, bp, xa, r, gyb, GB ? gbp + p * out * 16 * NV : nullptr, r0, r1);
    }
  });
}

}  // namespace lora_simd
#endif

// True where the rank-r products take the AVX-512 kernels above.
static bool lora_simd_ok(int64_t r) {
#if defined(TK_LORA_SIMD)
  return r >= 1 && r <= lora_simd::kMaxRank && std::strcmp(active_isa(), "avx512") == 0;
#else
  (void)r;
  return false;
#endif
}

// xa = x·aᵀ  [N, r]
static void lora_xa(const KernelTable& k, const float* x, const float* la, int64_t N, int64_t in, int64_t r, float* xa) {
#if defined(TK_LORA_SIMD)
  if (lora_simd_ok(r)) {
    const int64_t nv = (r + 15) / 16;
    lora_simd::Scratch ats(in * 16 * nv);  // aᵀ, zero-padded to 16 nv columns
    float* at = ats.p;
    for (int64_t c = 0; c < in; ++c)
      for (int64_t j = 0; j < 16 * nv; ++j) at[c * 16 * nv + j] = j < r ? la[j * in + c] : 0.0f;
    switch (nv) {
      case 1: lora_simd::xa_all<1>(x, N, in, at, r, xa); break;
      case 2: lora_simd::xa_all<2>(x, N, in, at, r, xa); break;
      case 3: lora_simd::xa_all<3>(x, N, in, at, r, xa); break;
      default: lora_simd::xa_all<4>(x, N, in, at, r, xa); break;
    }
    return;
  }
#endif
  k.gemm(GemmArgs{N, r, in, x, in, false, la, in, true, xa, r, false});
}

// gyb = gy·b [N, r]; with gb: gb = scale·gyᵀ·xa [out, r] (one pass over gy on AVX-512)
static void lora_gyb_gb(const KernelTable& k, const float* gy, const float* lb, const float* xa, int64_t N, int64_t out,
                        int64_t r, float scale, float* gyb, float* gb) {
#if defined(TK_LORA_SIMD)
  if (lora_simd_ok(r)) {
    const int64_t nv = (r + 15) / 16, w = 16 * nv, parts = thread_count();
    lora_simd::Scratch bps(out * w);  // b, zero-padded to w columns
    float* bp = bps.p;
    lora_simd::pad_rows(lb, out, r, r, nv, bp);
    lora_simd::Scratch gbps(gb ? parts * out * w : 1);  // per-thread partial sums of gb
    float* gbp = gb ? gbps.p : nullptr;
    if (gb) std::memset(gbp, 0, size_t(parts * out) * 4 * w);
#define TK_LORA_GYB(NV)                                                   \
  if (gb) lora_simd::gyb_all<NV, true>(gy, N, out, bp, xa, r, gyb, gbp);  \
  else lora_simd::gyb_all<NV, false>(gy, N, out, bp, xa, r, gyb, gbp);
    switch (nv) {
      case 1: TK_LORA_GYB(1) break;
      case 2: TK_LORA_GYB(2) break;
      case 3: TK_LORA_GYB(3) break;
      default: TK_LORA_GYB(4) break;
    }
#undef TK_LORA_GYB
    if (gb) {
      for (int64_t o = 0; o < out; ++o)
        for (int64_t j = 0; j < r; ++j) {
          float s = 0.0f;
          for (int64_t p = 0; p < parts; ++p) s += gbp[(p * out + o) * w + j];
          gb[o * r + j] = scale * s;
        }
    }
    return;
  }
#endif
  k.gemm(GemmArgs{N, r, out, gy, out, false, lb, r, false, gyb, r, false});
  if (gb) {
    k.gemm(GemmArgs{out, r, N, gy, out, true, xa, r, false, gb, r, false});
    for (int64_t i = 0; i < out * r; ++i) gb[i] *= scale;
  }
}

// ga = scale·gybᵀ·x  [r, in]
static void lora_ga(const KernelTable& k, const float* gyb, const float* x, int64_t N, int64_t in, int64_t r, float scale,
                    float* ga) {
#if defined(TK_LORA_SIMD)
  if (lora_simd_ok(r)) {
    if (N == 0) {
      std::memset(ga, 0, size_t(r * in) * 4);
      return;
    }
    par((in + 15) / 16, 1, [&](int64_t b, int64_t e) {
      lora_simd::ga_cols(x, N, in, gyb, r, ga, b * 16, e * 16 < in ? e * 16 : in);
    });
    for (int64_t i = 0; i < r * in; ++i) ga[i] *= scale;
    return;
  }
#endif
  k.gemm(GemmArgs{r, in, N, gyb, r, true, x, in, false, ga, in, false});
  for (int64_t i = 0; i < r * in; ++i) ga[i] *= scale;
}

// lora_forward(x [..., in], w [out, in], a [r, in], b [out, r], scale, bias | null, fanInFanOut) -> [y [..., out], xa [N, r]]
// y = x·wᵀ + scale·(x·aᵀ)·bᵀ + bias as ONE GEMM over K = in + r (the low-rank
// term is a second K segment of the base product, so y is written once).
static Napi::Value LoraForward(const Napi::CallbackInfo& info) {
  Args a(info, "loraLinear");
  a.count(7);
  TensorWrap* x = a.tensor_float(0, "x");
  TensorWrap* w = a.tensor_float(1, "w");
  TensorWrap* la = a.tensor_float(2, "a");
  TensorWrap* lb = a.tensor_float(3, "b");
  double scale = a.number(4, "scale");
  TensorWrap* bias = info[5].IsNull() || info[5].IsUndefined() ? nullptr : a.tensor_float(5, "bias");
  bool fifo = a.boolean(6, "fanInFanOut");
  LoraShapes s = lora_shapes(a, x, w, la, lb, bias, fifo);
  if (a.cuda()) return cuda_lora_forward(a, x, w, la, lb, bias, float(scale), fifo, s.N, s.in, s.out, s.r);
  Shape ys = x->shape;
  ys.back() = s.out;
  Napi::Object y = TensorWrap::Create(info.Env(), DType::F32, ys);
  Napi::Object xa = TensorWrap::Create(info.Env(), DType::F32, Shape{s.N, s.r});
  float* yp = TensorWrap::Unwrap(y)->f32();
  float* xap = TensorWrap::Unwrap(xa)->f32();
  const KernelTable& k = kt();
  lora_xa(k, x->f32(), la->f32(), s.N, s.in, s.r, xap);  // xa = x·aᵀ  [N, r]
  // the low-rank term as the second K segment: xa · (scale·b)ᵀ
  std::vector<float> bs(static_cast<size_t>(s.out * s.r));
  for (size_t i = 0; i < bs.size(); ++i) bs[i] = float(scale) * lb->f32()[i];
  GemmArgs g{s.N, s.out, s.in, x->f32(), s.in, false, w->f32(), fifo ? s.out : s.in, !fifo, yp, s.out, false};
  g.A2 = xap;
  g.lda2 = s.r;
  g.B2 = bs.data();
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
  TensorWrap* x = a.tensor_float(0, "x");
  TensorWrap* w = a.tensor_float(1, "w");
  TensorWrap* la = a.tensor_float(2, "a");
  TensorWrap* lb = a.tensor_float(3, "b");
  double scale = a.number(4, "scale");
  TensorWrap* xa = a.tensor_f32(5, "xa");
  TensorWrap* gy = a.tensor_float(6, "gy");
  bool need_x = a.boolean(7, "needX"), need_w = a.boolean(8, "needW"), need_a = a.boolean(9, "needA"),
       need_b = a.boolean(10, "needB"), need_bias = a.boolean(11, "needBias");
  bool fifo = a.boolean(12, "fanInFanOut");
  LoraShapes s = lora_shapes(a, x, w, la, lb, nullptr, fifo);
  if (xa->shape != (Shape{s.N, s.r})) a.range_error("xa must be [N, r]");
  Shape ys = x->shape;
  ys.back() = s.out;
  if (gy->shape != ys) a.range_error("gy must be " + shape_str(ys) + ", got " + shape_str(gy->shape));
  if (a.cuda())
    return cuda_lora_backward(a, x, w, la, lb, xa, gy, float(scale), need_x, need_w, need_a, need_b, need_bias, fifo, s.N,
                              s.in, s.out, s.r);
  Napi::Env env = info.Env();
  const KernelTable& k = kt();
  float sc = float(scale);
  // gyb = gy·b  [N, r] (for gx and ga), and gb = scale·gyᵀ·xa [out, r] in the same pass over gy
  Napi::Array res = Napi::Array::New(env, 5);
  for (uint32_t i = 0; i < 5; ++i) res[i] = env.Null();
  std::vector<float> gyb;
  if (need_x || need_a || need_b) {
    gyb.resize(static_cast<size_t>(s.N * s.r));
    float* gbp = nullptr;
    if (need_b) {
      Napi::Object gb = TensorWrap::Create(env, DType::F32, lb->shape);
      gbp = TensorWrap::Unwrap(gb)->f32();
      res[3u] = gb;
    }
    lora_gyb_gb(k, gy->f32(), lb->f32(), xa->f32(), s.N, s.out, s.r, sc, gyb.data(), gbp);
  }
  if (need_x) {
    Napi::Object gx = TensorWrap::Create(env, DType::F32, x->shape);
    std::vector<float> as(static_cast<size_t>(s.r * s.in));  // scale·a
    for (size_t i = 0; i < as.size(); ++i) as[i] = sc * la->f32()[i];
    // op(B) = w as [out, in]: stored [out, in] directly, or [in, out] transposed
    GemmArgs g{s.N, s.in, s.out, gy->f32(), s.out, false, w->f32(), fifo ? s.out : s.in, fifo, TensorWrap::Unwrap(gx)->f32(), s.in, false};
    g.A2 = gyb.data();
    g.lda2 = s.r;
    g.B2 = as.data();
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
    lora_ga(k, gyb.data(), x->f32(), s.N, s.in, s.r, sc, TensorWrap::Unwrap(ga)->f32());
    res[2u] = ga;
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
  TensorWrap* w = a.tensor_float(0, "w");
  if (w->shape.size() != 2) a.range_error("w must be 2-d [out, in], got " + shape_str(w->shape));
  int64_t axis = a.axis(1, "axis", 2);
  if (a.cuda()) return cuda_quantize_int8(a, w, axis);
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
  TensorWrap* x = a.tensor_float(0, "x");
  TensorWrap* q = a.tensor(1, "q");
  if (q->dtype != DType::I8) a.type_error("argument 'q' must have dtype i8, got " + std::string(dtype_name(q->dtype)));
  TensorWrap* sc = a.tensor_f32(2, "scale");
  TensorWrap* bias = info[3].IsNull() || info[3].IsUndefined() ? nullptr : a.tensor_float(3, "bias");
  double threshold = a.number(4, "threshold");
  if (threshold < 0) a.range_error("threshold must be >= 0");
  if (x->shape.empty()) a.range_error("x must be [..., in]");
  int64_t in = x->shape.back(), N = in ? x->numel / in : 0;
  if (q->shape.size() != 2 || q->shape[1] != in) a.range_error("q must be [out, " + std::to_string(in) + "], got " + shape_str(q->shape));
  int64_t out = q->shape[0];
  if (sc->shape != Shape{out}) a.range_error("scale must be [" + std::to_string(out) + "], got " + shape_str(sc->shape));
  if (bias && bias->shape != Shape{out}) a.range_error("bias must be [" + std::to_string(out) + "], got " + shape_str(bias->shape));
  if (a.cuda()) return cuda_int8_linear(a, x, q, sc, bias, threshold, N, in, out);
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
  if (a.cuda()) return cuda_dequantize_int8(a, q, sc);
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
