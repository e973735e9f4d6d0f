// The dense GEMM of the CUDA backend (the contract of tk_gemm_params in
// native/include/tunekit/backend.h): batched C = alpha·opA(A)·opB(B)
// (+ beta·C) (+ A2·B2) + bias, activation, + residual. The kernels and their
// design are in gemm.cuh; this file picks the path and launches.
//
// Paths: bf16 operands whose rows are 16-byte aligned (ld % 8 == 0, bases
// and batch strides aligned; a second segment with the same transposes) run
// on tensor cores, with the 128x256 tile once the grid fills the device and
// the 128x128 tile below that. Everything else (f32, which must match a
// float64 reference to ~1e-5 and so gets no TF32, and unaligned bf16) runs
// on the SIMT kernel.
#include <cstdint>

#include "common.cuh"
#include "gemm.cuh"
#include "ops.h"

namespace tkc {
namespace gemm_detail {

int optin_smem() {
  static const int v = [] {
    int dev = 0, bytes = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
    return bytes;
  }();
  return v;
}

}  // namespace gemm_detail

namespace {
using namespace gemm_detail;

bool has_seg2(const tk_gemm_params* g) { return g->A2 && g->B2 && g->K2 > 0; }

bool aligned_to(const void* q, size_t n) { return (reinterpret_cast<uintptr_t>(q) % n) == 0; }

// bf16 operands that the tensor-core loader can take (16-byte rows)
bool tc_ok(const tk_gemm_params* g) {
  if (g->dt != TK_BF16) return false;
  const bool batched = g->batch > 1;
  auto ok = [&](const void* x, int64_t ld, int64_t stride) {
    return aligned16(x) && ld % 8 == 0 && (!batched || stride % 8 == 0);
  };
  if (!ok(g->A, g->lda, g->stride_a) || !ok(g->B, g->ldb, g->stride_b)) return false;
  if (has_seg2(g)) {
    if (!ok(g->A2, g->lda2, g->stride_a2) || !ok(g->B2, g->ldb2, g->stride_b2)) return false;
    if ((g->trans_a2 != 0) != (g->trans_a != 0) || (g->trans_b2 != 0) != (g->trans_b != 0)) return false;
  }
  return true;
}

Params make_params(const tk_gemm_params* g) {
  Params p{};
  p.M = g->M;
  p.N = g->N;
  p.s1 = Seg{g->A, g->B, g->lda, g->ldb, g->stride_a, g->stride_b, g->K, g->trans_a ? 1 : 0, g->trans_b ? 1 : 0};
  p.has2 = has_seg2(g) ? 1 : 0;
  if (p.has2)
    p.s2 = Seg{g->A2, g->B2, g->lda2, g->ldb2, g->stride_a2, g->stride_b2, g->K2, g->trans_a2 ? 1 : 0,
               g->trans_b2 ? 1 : 0};
  p.alpha = g->alpha;
  const size_t pair = g->c_dt == TK_F32 ? 8 : 4;
  const bool batched = g->batch > 1;
  const int vec2 = aligned_to(g->C, pair) && g->ldc % 2 == 0 && (!batched || g->stride_c % 2 == 0) &&
                   (!g->bias || aligned_to(g->bias, pair)) && (!g->residual || aligned_to(g->residual, pair));
  p.e = Epi{g->C, g->ldc, g->stride_c, g->beta, g->bias, g->residual, static_cast<int>(g->activation), vec2};
  return p;
}

template <class Cfg, class TC>
int run_tc(const Params& p, int64_t batch, bool ta, bool tb) {
  constexpr int smem = Cfg::smem_bytes(0);
  if (optin_smem() < smem)
    return fail("gemm: the %dx%d tensor-core tile needs %d bytes of shared memory, the device has %d", Cfg::BM,
                Cfg::BN, smem, optin_smem());
  if (!ta && !tb) return launch_tiles<mma_kernel<Cfg, false, false, TC, 0>>(p, batch, Cfg::BM, Cfg::BN, Cfg::THREADS, smem, "gemm");
  if (!ta && tb) return launch_tiles<mma_kernel<Cfg, false, true, TC, 0>>(p, batch, Cfg::BM, Cfg::BN, Cfg::THREADS, smem, "gemm");
  if (ta && !tb) return launch_tiles<mma_kernel<Cfg, true, false, TC, 0>>(p, batch, Cfg::BM, Cfg::BN, Cfg::THREADS, smem, "gemm");
  return launch_tiles<mma_kernel<Cfg, true, true, TC, 0>>(p, batch, Cfg::BM, Cfg::BN, Cfg::THREADS, smem, "gemm");
}

template <class T, class TC>
int run_simt(const Params& p, int64_t batch) {
  return launch_tiles<simt_kernel<T, TC, 0>>(p, batch, simt::BM, simt::BN, simt::THREADS, 0, "gemm");
}

}  // namespace

GemmPath gemm_pick(const tk_gemm_params* g) {
  if (!tc_ok(g)) return GemmPath::Simt;
  const int smem = optin_smem();
  if (smem >= CfgLarge::smem_bytes(0) &&
      ceil_div(g->M, CfgLarge::BM) * ceil_div(g->N, CfgLarge::BN) * g->batch >= sm_count())
    return GemmPath::TcLarge;
  if (smem >= CfgSmall::smem_bytes(0)) return GemmPath::TcSmall;
  return GemmPath::Simt;
}

int gemm_path(GemmPath path, const tk_gemm_params* g) {
  if (!g) return fail("gemm: no parameters");
  if (g->dt != TK_F32 && g->dt != TK_BF16)
    return fail("gemm: dtype %d is not supported on CUDA (f32 or bf16)", int(g->dt));
  if (g->c_dt != TK_F32 && g->c_dt != g->dt)
    return fail("gemm: output dtype %d with operands of dtype %d (f32 or the operands' dtype)", int(g->c_dt),
                int(g->dt));
  if (static_cast<int>(g->activation) < TK_ACT_NONE || static_cast<int>(g->activation) > TK_ACT_GELU_ERF)
    return fail("gemm: unknown activation %d", int(g->activation));
  if (g->M < 0 || g->N < 0 || g->K < 0 || g->batch < 0 || (has_seg2(g) && g->K2 < 0))
    return fail("gemm: negative size [%lld, %lld, %lld] x %lld", (long long)g->M, (long long)g->N,
                (long long)g->K, (long long)g->batch);
  if (g->M == 0 || g->N == 0 || g->batch == 0) return 0;
  if (g->K + (has_seg2(g) ? g->K2 : 0) > (int64_t(1) << 33))  // K tiles of 8 counted in int
    return fail("gemm: K = %lld is too large", (long long)(g->K + (has_seg2(g) ? g->K2 : 0)));
  if (path == GemmPath::Auto) path = gemm_pick(g);
  const Params p = make_params(g);
  const bool f32out = g->c_dt == TK_F32;
  switch (path) {
    case GemmPath::TcLarge:
    case GemmPath::TcSmall: {
      if (!tc_ok(g))
        return fail("gemm: the tensor-core path takes bf16 operands with 16-byte aligned rows (ld %% 8 == 0) and a "
                    "second segment of the same transposes");
      const bool ta = g->trans_a != 0, tb = g->trans_b != 0;
      if (path == GemmPath::TcLarge)
        return f32out ? run_tc<CfgLarge, float>(p, g->batch, ta, tb) : run_tc<CfgLarge, bf16>(p, g->batch, ta, tb);
      return f32out ? run_tc<CfgSmall, float>(p, g->batch, ta, tb) : run_tc<CfgSmall, bf16>(p, g->batch, ta, tb);
    }
    default:
      if (g->dt == TK_F32) return run_simt<float, float>(p, g->batch);
      return f32out ? run_simt<bf16, float>(p, g->batch) : run_simt<bf16, bf16>(p, g->batch);
  }
}

int gemm(const tk_gemm_params* p) { return gemm_path(GemmPath::Auto, p); }

}  // namespace tkc
