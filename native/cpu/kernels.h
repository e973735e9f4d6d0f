// The table of CPU kernels that exist once per instruction set.
// Every entry is plain C++ over contiguous float32 buffers (no napi.h); the
// N-API layer validates arguments, allocates outputs and calls through here.
// isa_scalar.cc, isa_avx2.cc and isa_avx512.cc compile the same sources
// (kernels_impl.inc) with different compiler flags; runtime/isa.cc picks one.
#pragma once
#include <cstdint>

namespace tk {

enum class UnaryOp : int { Neg, Exp, Log, Sqrt, Scale, Pow, Gelu, Silu, Relu, Tanh, GeluErf };
enum class BinaryOp : int { Add, Sub, Mul, Div };
enum class ReduceOp : int { Sum, Mean, Max };

// C[m, n] = sum_k opA(A)[m, k] * opB(B)[k, n]   (+ C when accumulate)
// A is stored row-major [M, K] (or [K, M] when trans_a), B is [K, N] (or [N, K]).
struct GemmArgs {
  int64_t M, N, K;
  const float* A;
  int64_t lda;  // row stride of A as stored
  bool trans_a;
  const float* B;
  int64_t ldb;
  bool trans_b;
  float* C;
  int64_t ldc;
  bool accumulate;
  // Optional second K segment with the same layouts: C += opA(A2) · opB(B2)
  // over K2 more terms, in the same pass (used by the fused low-rank matmul).
  const float* A2 = nullptr;
  int64_t lda2 = 0;
  const float* B2 = nullptr;
  int64_t ldb2 = 0;
  int64_t K2 = 0;
  bool trans_a2 = false;
  bool trans_b2 = false;
  // Epilogue, applied once per element after the whole product (both segments),
  // while the tile is still in cache: C[m, n] += bias[n] (bias: [N], or null);
  // then C[m, n] += residual[m, n] (row stride ld_res, or null; may not alias C);
  // then, with act_out, act_out[m, n] = gelu_tanh(C[m, n]) (row stride ld_act;
  // C keeps the value before the activation, which the backward needs).
  const float* bias = nullptr;
  const float* residual = nullptr;
  int64_t ld_res = 0;
  float* act_out = nullptr;
  int64_t ld_act = 0;
  // After bias and residual: C[m, n] *= gelu_tanh'(c_gelu_grad[m, n]) (row stride ld_cgg;
  // the gradient through an input GELU), before act_out.
  const float* c_gelu_grad = nullptr;
  int64_t ld_cgg = 0;
  // Operand transforms of the first segment, applied as it is packed: opA(A) is
  // gelu_tanh(opA(A)) with a_gelu, likewise B with b_gelu.
  bool a_gelu = false;
  bool b_gelu = false;
  // A layer norm applied to A (or B) as stored, as it is packed: X[r, c] becomes
  // (X[r, c] - mean[r]) * rstd[r] * w[c] + b[c] (r the stored row, c the stored column;
  // b may be null), the operation layer_norm_forward writes. Not with the gelu transform.
  const float *a_ln_mean = nullptr, *a_ln_rstd = nullptr, *a_ln_w = nullptr, *a_ln_b = nullptr;
  const float *b_ln_mean = nullptr, *b_ln_rstd = nullptr, *b_ln_w = nullptr, *b_ln_b = nullptr;
};

// A strided view of a [B, heads, T, D] tensor for the fused attention: element (b, h, t, d)
// at p + b·sb + h·sh + t·st + d (rows of D contiguous). Contiguous: sb = heads·T·D,
// sh = T·D, st = D; q of a fused projection [B, T, 3·heads·D]: sb = T·3·heads·D, sh = D,
// st = 3·heads·D.
struct AttnView {
  float* p;
  int64_t sb, sh, st;
  float* at(int64_t b, int64_t h, int64_t t) const { return p + b * sb + h * sh + t * st; }
};
// The fused attention's arguments: q [B, H, T, D], k, v [B, Hkv, S, D] views; forward writes
// o and lse [B, H, T] (contiguous); backward reads q, k, v, o, dout, lse and writes dq, dk, dv.
struct AttnArgs {
  AttnView q, k, v, o, dout, dq, dk, dv;
  float* lse;
  const int32_t* kv_len;  // [B] or null
  int64_t B, H, Hkv, T, S, D;
  float scale;
  bool causal;
};

struct KernelTable {
  const char* name;
  // ---- matmul
  void (*gemm)(const GemmArgs& g);
  // ---- elementwise; x, y, gy, gx: [n]
  void (*unary_forward)(UnaryOp op, const float* x, float* y, int64_t n, float p);
  // backward reads x (input) and y (output) as the op needs; gx = gy * dy/dx
  void (*unary_backward)(UnaryOp op, const float* x, const float* y, const float* gy, float* gx,
                         int64_t n, float p);
  // y[i] = a[i * sa] op b[i * sb] for i < n, sa and sb in {0, 1}
  void (*binary_inner)(BinaryOp op, const float* a, int64_t sa, const float* b, int64_t sb, float* y,
                       int64_t n);
  // ---- reductions over the middle axis of x viewed as [outer, n, inner]; y: [outer, inner]
  // idx (Max only): argmax along the axis, [outer, inner]
  void (*reduce_axis)(ReduceOp op, const float* x, int64_t outer, int64_t n, int64_t inner, float* y,
                      int32_t* idx);
  // ---- softmax / logSoftmax over the middle axis of [outer, n, inner]
  void (*softmax_forward)(const float* x, float* y, int64_t outer, int64_t n, int64_t inner, bool log);
  void (*softmax_backward)(const float* y, const float* gy, float* gx, int64_t outer, int64_t n,
                           int64_t inner, bool log);
  // ---- cross entropy; logits [N, V], targets [N]; loss [N] (0 for ignored rows), lse [N]
  void (*cross_entropy_forward)(const float* logits, const int32_t* targets, int64_t N, int64_t V,
                                int32_t ignore_index, float* loss, float* lse);
  // gx[i, :] = g_row[i] * (softmax(logits[i]) - onehot(target[i])), zero for ignored rows
  void (*cross_entropy_backward)(const float* logits, const float* lse, const int32_t* targets,
                                 const float* g_row, int64_t N, int64_t V, int32_t ignore_index,
                                 float* gx);
  // ---- normalizations over the last axis; x, y: [rows, C]; mean, rstd: [rows]
  // (layer_norm_forward with y null computes mean and rstd only)
  void (*layer_norm_forward)(const float* x, const float* w, const float* b, int64_t rows, int64_t C,
                             float eps, float* y, float* mean, float* rstd);
  // gw, gb: [C] (may be null); they are overwritten, not accumulated
  void (*layer_norm_backward)(const float* x, const float* w, const float* mean, const float* rstd,
                              const float* gy, int64_t rows, int64_t C, float* gx, float* gw,
                              float* gb);
  void (*rms_norm_forward)(const float* x, const float* w, int64_t rows, int64_t C, float eps,
                           float* y, float* rstd);
  void (*rms_norm_backward)(const float* x, const float* w, const float* rstd, const float* gy,
                            int64_t rows, int64_t C, float* gx, float* gw);
  // ---- rotary embedding (rotate-half convention, as Hugging Face Llama)
  // x, y: [BH, T, D]; positions: [T]; inverse rotates by -angle (the backward)
  void (*rope)(const float* x, const int32_t* positions, int64_t BH, int64_t T, int64_t D, float theta,
               bool inverse, float* y);
  // ---- dropout: y = x * keep / (1 - p), keep drawn from (seed, element index)
  void (*dropout)(const float* x, float* y, int64_t n, float p, uint64_t seed);
  // ---- benchmark support: a register-only FMA loop; returns the flops it did
  double (*fma_loop)(int64_t iters, float* sink);
  // ---- fused attention (attention.inc); q [B, H, T, D], k, v [B, Hkv, S, D],
  // kv_len [B] or null; o [B, H, T, D], lse [B, H, T]
  void (*attention_forward)(const float* q, const float* k, const float* v, const int32_t* kv_len,
                            int64_t B, int64_t H, int64_t Hkv, int64_t T, int64_t S, int64_t D,
                            float scale, bool causal, float* o, float* lse);
  void (*attention_backward)(const float* q, const float* k, const float* v, const float* o,
                             const float* lse, const float* dout, const int32_t* kv_len, int64_t B,
                             int64_t H, int64_t Hkv, int64_t T, int64_t S, int64_t D, float scale,
                             bool causal, float* dq, float* dk, float* dv);
  // ---- GAE (gae.inc); rewards, values, dones, adv, ret: [B, T]; last_values: [B] or null
  void (*gae)(const float* rewards, const float* values, const float* dones, const float* last_values,
              int64_t B, int64_t T, float gamma, float lambda, float* adv, float* ret);
  // ---- INT8 GEMM (int8.inc): y[M, N] = (qx[M, K] · qw[N, K]ᵀ) * sx[m] * sw[n] + bias[n]
  void (*int8_gemm)(const int8_t* qx, const float* sx, const int8_t* qw, const float* sw, const float* bias,
                    int64_t M, int64_t N, int64_t K, float* y, bool accumulate);
  // ---- optimizers (optim.inc), in place
  void (*adamw_step)(float* p, const float* g, float* m, float* v, int64_t n, float lr, float b1, float b2,
                     float eps, float wd, int64_t t);
  void (*sgd_step)(float* p, const float* g, float* buf, int64_t n, float lr, float mu, float dampening, float wd,
                   bool nesterov, bool first);
  double (*sum_squares)(const float* x, int64_t n);
  void (*scale_inplace)(float* x, int64_t n, float s);
  // ---- the backward of a linear layer's epilogue (bias, gelu); g, h, gh: [rows, C]
  // with h: gh = g * gelu_tanh'(h) (else g is used as it is); gb[c] = sum over rows of
  // gh[r, c] in row order (gb may be null). Columns split across threads, so the sums
  // do not depend on the thread count.
  void (*linear_epilogue_backward)(const float* g, const float* h, int64_t rows, int64_t C, float* gh, float* gb);
  // ---- the fused attention over strided views (attention.inc): the same computation as
  // attention_forward / attention_backward, reading and writing in place in other layouts
  void (*attention_forward_ex)(const AttnArgs& a);
  void (*attention_backward_ex)(const AttnArgs& a);
};

const KernelTable& kernels_scalar();
const KernelTable& kernels_avx2();
const KernelTable& kernels_avx512();

// Counter-based random bits shared by every ISA (splitmix64 of seed and index).
inline uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
// uniform in [0, 1) with 24 bits
inline float uniform01(uint64_t seed, uint64_t i) {
  return static_cast<float>(mix64(seed * 0x9E3779B97F4A7C15ull + i) >> 40) * (1.0f / 16777216.0f);
}

}  // namespace tk
