// The fused LoRA linear of the CUDA backend (the contract of tk_lora_params
// in native/include/tunekit/backend.h):
//   y = x·wᵀ + scale·(x·aᵀ)·bᵀ + bias,  x [N, in], w [out, in], a [r, in], b [out, r]
// with the [N, r] product t = x·aᵀ kept on chip: the GEMM kernels of
// gemm.cuh with R > 0. While a CTA streams the x tiles along K for x·wᵀ it
// also brings the [R, 32] (tensor cores) or [8, R] (SIMT) tile of `a` and
// accumulates t for its BM rows; the epilogue adds scale·t·b_tileᵀ from
// shared memory before the bias. The CTAs of column tile 0 write t to xa
// (f32 [N, r]) when the backward wants it. Each column tile recomputes t for
// its rows: r/BN more MMA work (6% at r = 16 with the 128x256 tile) against
// a separate pass over x and a round trip of t through memory.
//
// Paths: bf16 with 16-byte aligned rows (in % 8 == 0, aligned x, w, a) and
// r <= 64: tensor cores (b rows 16-byte aligned, r % 8 == 0, load by
// cp.async; else by plain loads in the epilogue). f32, or bf16 that the
// tensor cores cannot take, with r <= 64: the fused SIMT kernel. r > 64:
// three gemm calls (xa; t = scale·x·aᵀ in dt; y = x·wᵀ + t·bᵀ + bias as one
// GEMM with a second K segment).
#include <cstdint>

#include "common.cuh"
#include "gemm.cuh"
#include "ops.h"

namespace tkc {
namespace {
using namespace gemm_detail;

constexpr int64_t kMaxFusedR = 64;

int r_pad(int64_t r) { return r <= 16 ? 16 : r <= 32 ? 32 : 64; }

bool tc_ok(const tk_lora_params* q) {
  return q->dt == TK_BF16 && q->r > 0 && q->r <= kMaxFusedR && q->in % 8 == 0 && aligned16(q->x) &&
         aligned16(q->w) && aligned16(q->a);
}

Params lora_params(const tk_lora_params* q) {
  Params p{};
  p.M = q->N;
  p.N = q->out;
  // x [N, in] (A, K-major) · w [out, in]ᵀ (B stored [N, K]: trans_b)
  p.s1 = Seg{q->x, q->w, q->in, q->in, 0, 0, q->in, 0, 1};
  p.has2 = 0;
  p.alpha = 1.0f;
  const size_t pair = q->dt == TK_F32 ? 8 : 4;
  const int vec2 = reinterpret_cast<uintptr_t>(q->y) % pair == 0 && q->out % 2 == 0 &&
                   (!q->bias || reinterpret_cast<uintptr_t>(q->bias) % pair == 0);
  p.e = Epi{q->y, q->out, 0, 0.0f, q->bias, nullptr, TK_ACT_NONE, vec2};
  p.la = q->a;
  p.lb = q->b;
  p.r = q->r;
  p.lscale = q->scale;
  p.xa = q->xa;
  p.lb_async = q->r % 8 == 0 && aligned16(q->b);
  return p;
}

template <class Cfg, int R>
int launch_tc(const Params& p) {
  constexpr int smem = Cfg::smem_bytes(R);
  if (optin_smem() < smem)
    return fail("lora_forward: the %dx%d tile with r <= %d needs %d bytes of shared memory, the device has %d",
                Cfg::BM, Cfg::BN, R, smem, optin_smem());
  return launch_tiles<mma_kernel<Cfg, false, true, bf16, R>>(p, 1, Cfg::BM, Cfg::BN, Cfg::THREADS, smem,
                                                             "lora_forward");
}
// (the 128x128 tile holds t for two m16 tiles per warp: at r > 32 that spills, so r > 32 always takes 128x256)
template <class Cfg>
int run_tc(const Params& p) {
  switch (r_pad(p.r)) {
    case 16: return launch_tc<Cfg, 16>(p);
    case 32: return launch_tc<Cfg, 32>(p);
    default: return launch_tc<CfgLarge, 64>(p);
  }
}

template <class T>
int run_simt(const Params& p) {
  switch (r_pad(p.r)) {
    case 16: return launch_tiles<simt_kernel<T, T, 16>>(p, 1, simt::BM, simt::BN, simt::THREADS, 0, "lora_forward");
    case 32: return launch_tiles<simt_kernel<T, T, 32>>(p, 1, simt::BM, simt::BN, simt::THREADS, 0, "lora_forward");
    default: return launch_tiles<simt_kernel<T, T, 64>>(p, 1, simt::BM, simt::BN, simt::THREADS, 0, "lora_forward");
  }
}

// xa = x·aᵀ (f32) when wanted
int xa_gemm(const tk_lora_params* q) {
  if (!q->xa || q->r == 0 || q->N == 0) return 0;
  tk_gemm_params g{};
  g.M = q->N, g.N = q->r, g.K = q->in, g.batch = 1, g.dt = q->dt;
  g.A = q->x, g.lda = q->in;
  g.B = q->a, g.ldb = q->in, g.trans_b = 1;
  g.C = q->xa, g.ldc = q->r, g.c_dt = TK_F32;
  g.alpha = 1.0f;
  return gemm(&g);
}

// the same result through gemm calls (any r, any alignment)
int unfused(const tk_lora_params* q) {
  if (const int rc = xa_gemm(q)) return rc;
  tk_gemm_params g{};
  g.M = q->N, g.N = q->out, g.K = q->in, g.batch = 1, g.dt = q->dt;
  g.A = q->x, g.lda = q->in;
  g.B = q->w, g.ldb = q->in, g.trans_b = 1;
  g.C = q->y, g.ldc = q->out, g.c_dt = q->dt;
  g.alpha = 1.0f;
  g.bias = q->bias;
  if (q->r == 0) return gemm(&g);
  // t = scale·x·aᵀ in dt: the A2 operand of the low-rank segment
  const size_t esize = q->dt == TK_F32 ? 4 : 2;
  void* t = scratch_alloc(static_cast<size_t>(q->N * q->r) * esize);
  if (!t) return -1;
  tk_gemm_params gt{};
  gt.M = q->N, gt.N = q->r, gt.K = q->in, gt.batch = 1, gt.dt = q->dt;
  gt.A = q->x, gt.lda = q->in;
  gt.B = q->a, gt.ldb = q->in, gt.trans_b = 1;
  gt.C = t, gt.ldc = q->r, gt.c_dt = q->dt;
  gt.alpha = q->scale;
  int rc = gemm(&gt);
  if (rc == 0) {
    g.A2 = t, g.lda2 = q->r;
    g.B2 = q->b, g.ldb2 = q->r, g.trans_b2 = 1;
    g.K2 = q->r;
    rc = gemm(&g);
  }
  scratch_free(t);  // stream-ordered: reused only by later work
  return rc;
}

}  // namespace

LoraPath lora_pick(const tk_lora_params* q) {
  if (q->r <= 0 || q->r > kMaxFusedR) return LoraPath::Unfused;
  if (tc_ok(q)) {
    const int smem = optin_smem(), R = r_pad(q->r);
    const int large = R == 16 ? CfgLarge::smem_bytes(16) : R == 32 ? CfgLarge::smem_bytes(32) : CfgLarge::smem_bytes(64);
    const int small = R == 16 ? CfgSmall::smem_bytes(16) : CfgSmall::smem_bytes(32);
    if (smem >= large && (R > 32 || ceil_div(q->N, CfgLarge::BM) * ceil_div(q->out, CfgLarge::BN) >= sm_count()))
      return LoraPath::TcLarge;
    if (R <= 32 && smem >= small) return LoraPath::TcSmall;
  }
  return LoraPath::Simt;
}

int lora_forward_path(LoraPath path, const tk_lora_params* q) {
  if (!q) return fail("lora_forward: no parameters");
  if (q->dt != TK_F32 && q->dt != TK_BF16)
    return fail("lora_forward: dtype %d is not supported on CUDA (f32 or bf16)", int(q->dt));
  if (q->N < 0 || q->in < 0 || q->out < 0 || q->r < 0)
    return fail("lora_forward: negative size N %lld, in %lld, out %lld, r %lld", (long long)q->N,
                (long long)q->in, (long long)q->out, (long long)q->r);
  if (q->N == 0) return 0;
  if (q->out == 0) return xa_gemm(q);  // no y, but xa still wanted
  if (path == LoraPath::Auto) path = lora_pick(q);
  if (path == LoraPath::Unfused || q->r == 0) return unfused(q);
  if (q->r > kMaxFusedR) return fail("lora_forward: the fused kernels take r <= %lld, got %lld", (long long)kMaxFusedR, (long long)q->r);
  const Params p = lora_params(q);
  switch (path) {
    case LoraPath::TcLarge:
    case LoraPath::TcSmall:
      if (!tc_ok(q))
        return fail("lora_forward: the tensor-core path takes bf16 with in %% 8 == 0 and 16-byte aligned x, w, a");
      return path == LoraPath::TcLarge ? run_tc<CfgLarge>(p) : run_tc<CfgSmall>(p);
    default:
      return q->dt == TK_F32 ? run_simt<float>(p) : run_simt<bf16>(p);
  }
}

int lora_forward(const tk_lora_params* p) { return lora_forward_path(LoraPath::Auto, p); }

}  // namespace tkc
