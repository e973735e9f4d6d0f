// Check-and-bench harness of kernels/gemm.cu (tkc::gemm, the tk_gemm_params contract).
//
// Every case fills fresh random operands (never zeros; the padding of every
// leading dimension holds random values too, so a kernel that reads past K, M
// or N picks up garbage instead of zeros), poisons C with NaN (or fills it
// with random values when beta != 0), runs one path, and checks every output
// against a float64 host product of the values the device holds (bf16-rounded
// for bf16): relative norm error ≤ 1e-5 for f32 operands, ≤ 1e-2 for bf16. It
// also checks that the padding of C (ldc > N, batch strides > M·ldc) was not
// written. A failing case prints where the bad outputs are (first ones, their
// m % 16 / n % 8 classes, edge tiles or not) to tell a fragment-mapping bug
// from an edge-handling one.
//
// Cases: M=77 N=131 K=67 with all four transposes on every path; batch 3
// with a shared (stride 0) A or B; beta = 1 and other alpha/beta; each
// epilogue (bias, gelu, relu, silu, gelu-erf, residual) with f32 and bf16
// outputs; the second K segment (alpha on segment 1 only, awkward K2, other
// transposes, K = 0); lda > K; tiny and multi-tile shapes. Then the timings:
// bf16 4096³ (all four transposes) and 8192³ (TFLOP/s and % of the dense
// bf16 peak), each with a sampled check of the product, and an f32 2048³.
//
// Usage: gemm [--quick | --no-bench]
//   --quick: of the timings only 4096³ and 8192³ NT on the Auto path
//   --no-bench: the checks only
// Build: cmake -DTUNEKIT_CUDA_DEV=ON (target dev_gemm), or alone:
//   cd kernels && nvcc -std=c++17 --expt-relaxed-constexpr -lineinfo -O3 -I. -I../native/include \
//     -gencode arch=compute_90,code=sm_90 dev/gemm.cu gemm.cu runtime.cu copy.cu backend.cu -o /tmp/gemm \
//     -ldl -Xlinker --unresolved-symbols=ignore-all
#include <algorithm>
#include <cstring>
#include <map>

#include "../gemm.cuh"
#include "harness.h"

using namespace dev;
using tkc::GemmPath;

namespace {

uint64_t g_rng = 0x9e3779b97f4a7c15ull;
inline uint64_t next_u64() { return tkc::mix64(g_rng++); }
std::vector<float> rand_vec(size_t n, tk_dtype dt, float scale = 1.0f) { return uniform_vec(n, dt, g_rng, scale); }

const char* path_name(GemmPath p) {
  switch (p) {
    case GemmPath::Auto: return "auto";
    case GemmPath::TcLarge: return "tc128x256";
    case GemmPath::TcSmall: return "tc128x128";
    case GemmPath::Simt: return "simt";
  }
  return "?";
}
const char* act_name(tk_activation a) {
  switch (a) {
    case TK_ACT_NONE: return "";
    case TK_ACT_GELU: return " gelu";
    case TK_ACT_RELU: return " relu";
    case TK_ACT_SILU: return " silu";
    case TK_ACT_GELU_ERF: return " gelu_erf";
  }
  return " ?";
}
double act_ref(double x, tk_activation a) {
  switch (a) {
    case TK_ACT_GELU: {
      double u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
      return x / (1.0 + std::exp(-2.0 * u));
    }
    case TK_ACT_RELU: return x > 0 ? x : 0.0;
    case TK_ACT_SILU: return x / (1.0 + std::exp(-x));
    case TK_ACT_GELU_ERF: return 0.5 * x * (1.0 + std::erf(x * 0.70710678118654752));
    default: return x;
  }
}
int64_t round8(int64_t v) { return (v + 7) / 8 * 8; }

// One operand op(X) of logical shape [I, J], stored [I, J] or (trans) [J, I] with leading dim ld, batch stride.
struct Operand {
  std::vector<float> h;
  void* d = nullptr;
  int64_t I = 0, J = 0, ld = 0, stride = 0;
  bool trans = false;
  double at(int64_t b, int64_t i, int64_t j) const {
    const float* base = h.data() + b * stride;
    return trans ? base[j * ld + i] : base[i * ld + j];
  }
  void free() {
    if (d) api().free(d);
    d = nullptr;
  }
};
// ld: the stored row length (cols) plus `extra`; `align8` rounds it up to a multiple of 8 first
Operand make_operand(int64_t I, int64_t J, bool trans, int64_t extra, bool align8, int64_t batch, bool shared,
                     tk_dtype dt) {
  Operand o;
  o.I = I, o.J = J, o.trans = trans;
  const int64_t rows = trans ? J : I, cols = trans ? I : J;
  o.ld = (align8 ? round8(cols) : cols) + extra;
  if (o.ld < 1) o.ld = align8 ? 8 : 1;
  o.stride = shared ? 0 : rows * o.ld;
  if (!shared && align8) o.stride = round8(o.stride);
  const int64_t n = (shared || batch <= 1 ? rows * o.ld : o.stride * batch) + 1;
  o.h = rand_vec(size_t(n), dt);
  o.d = upload(o.h, dt);
  return o;
}

struct Case {
  std::string tag;
  int64_t M = 0, N = 0, K = 0, batch = 1;
  bool ta = false, tb = false;
  int64_t lda_x = 0, ldb_x = 0, ldc_x = 0, sc_x = 0;  // leading-dim / batch-stride padding
  bool align8 = false;                                  // round leading dims up to 8 (the tensor-core paths)
  bool shared_a = false, shared_b = false;
  float alpha = 1.0f, beta = 0.0f;
  bool bias = false, residual = false;
  tk_activation act = TK_ACT_NONE;
  int64_t K2 = 0;
  bool ta2 = false, tb2 = false;
  tk_dtype dt = TK_F32, c_dt = TK_F32;
};

std::string describe(const Case& c) {
  char s[256];
  std::snprintf(s, sizeof(s), "%lldx%lldx%lld%s %c%c", (long long)c.M, (long long)c.N, (long long)c.K,
                c.batch > 1 ? (std::string(" b") + std::to_string(c.batch)).c_str() : "", c.ta ? 'T' : 'N',
                c.tb ? 'T' : 'N');
  std::string r = s;
  if (c.shared_a) r += " A-shared";
  if (c.shared_b) r += " B-shared";
  if (c.lda_x || c.ldb_x) r += " ld+";
  if (c.align8) r += " ld%8";
  if (c.ldc_x || c.sc_x) r += " ldc+";
  if (c.alpha != 1.0f) r += " a=" + std::to_string(c.alpha).substr(0, 5);
  if (c.beta != 0.0f) r += " b=" + std::to_string(c.beta).substr(0, 4);
  if (c.bias) r += " bias";
  r += act_name(c.act);
  if (c.residual) r += " res";
  if (c.K2) r += std::string(" K2=") + std::to_string(c.K2) + (c.ta2 ? "T" : "N") + (c.tb2 ? "T" : "N");
  if (c.dt == TK_BF16) r += c.c_dt == TK_F32 ? " ->f32" : " ->bf16";
  if (!c.tag.empty()) r += " " + c.tag;
  return r;
}

// the bad outputs of a failing check, located
void diagnose(const Case& c, const std::vector<float>& got, const std::vector<double>& ref,
              const std::vector<int64_t>& b_, const std::vector<int64_t>& m_, const std::vector<int64_t>& n_,
              int bm, int bn) {
  double rms = 0;
  for (double r : ref) rms += r * r;
  rms = std::sqrt(rms / std::max<size_t>(ref.size(), 1));
  const double thr = (c.dt == TK_BF16 ? 3e-2 : 1e-4) * (rms > 0 ? rms : 1.0);
  int64_t bad = 0, nan = 0, edge = 0, shown = 0;
  std::map<int, int64_t> mcls, ncls;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = std::fabs(double(got[i]) - ref[i]);
    if (!(d <= thr)) {
      ++bad;
      if (std::isnan(got[i])) ++nan;
      if (m_[i] >= c.M / bm * bm || n_[i] >= c.N / bn * bn) ++edge;
      mcls[int(m_[i] % 16)]++;
      ncls[int(n_[i] % 8)]++;
      if (shown < 6) {
        std::printf("    bad: b %lld m %lld n %lld: got %.6g want %.6g\n", (long long)b_[i], (long long)m_[i],
                    (long long)n_[i], double(got[i]), ref[i]);
        ++shown;
      }
    }
  }
  std::printf("    %lld of %zu outputs off by > %.2g (%lld NaN, %lld in the last row/column tiles of %dx%d)\n",
              (long long)bad, ref.size(), thr, (long long)nan, (long long)edge, bm, bn);
  std::printf("    m %% 16 of the bad:");
  for (auto& kv : mcls) std::printf(" %d:%lld", kv.first, (long long)kv.second);
  std::printf("\n    n %% 8 of the bad:");
  for (auto& kv : ncls) std::printf(" %d:%lld", kv.first, (long long)kv.second);
  std::printf("\n");
}

void tile_of(GemmPath p, int& bm, int& bn) {
  bm = 128;
  bn = p == GemmPath::TcLarge ? 256 : 128;
}

// runs case c on path p, checks every output (and C's padding), times it
void check(const Case& c, GemmPath path) {
  const bool bf = c.dt == TK_BF16;
  Operand A = make_operand(c.M, c.K, c.ta, c.lda_x, c.align8, c.batch, c.shared_a, c.dt);
  Operand B = make_operand(c.K, c.N, c.tb, c.ldb_x, c.align8, c.batch, c.shared_b, c.dt);
  Operand A2, B2;
  if (c.K2) {
    A2 = make_operand(c.M, c.K2, c.ta2, c.lda_x, c.align8, c.batch, false, c.dt);
    B2 = make_operand(c.K2, c.N, c.tb2, c.ldb_x, c.align8, c.batch, false, c.dt);
  }
  const int64_t ldc = c.N + c.ldc_x, sc = c.M * ldc + c.sc_x;
  const size_t csize = size_t(c.batch * sc);
  std::vector<float> c0 = c.beta != 0.0f ? rand_vec(csize, c.c_dt) : std::vector<float>(csize, NAN);
  std::vector<float> bias = rand_vec(size_t(c.N), c.c_dt), res = rand_vec(csize, c.c_dt);
  void* dc = upload(c0, c.c_dt);
  void* dbias = c.bias ? upload(bias, c.c_dt) : nullptr;
  void* dres = c.residual ? upload(res, c.c_dt) : nullptr;

  tk_gemm_params g{};
  g.M = c.M, g.N = c.N, g.K = c.K, g.batch = c.batch, g.dt = c.dt;
  g.A = A.d, g.lda = A.ld, g.stride_a = A.stride, g.trans_a = c.ta;
  g.B = B.d, g.ldb = B.ld, g.stride_b = B.stride, g.trans_b = c.tb;
  g.C = dc, g.ldc = ldc, g.stride_c = sc, g.c_dt = c.c_dt;
  g.alpha = c.alpha, g.beta = c.beta;
  g.bias = dbias, g.activation = c.act, g.residual = dres;
  if (c.K2) {
    g.A2 = A2.d, g.lda2 = A2.ld, g.stride_a2 = A2.stride, g.trans_a2 = c.ta2;
    g.B2 = B2.d, g.ldb2 = B2.ld, g.stride_b2 = B2.stride, g.trans_b2 = c.tb2;
    g.K2 = c.K2;
  }
  const GemmPath picked = tkc::gemm_pick(&g);
  std::string op = std::string("gemm[") + path_name(path);
  if (path == GemmPath::Auto) op += std::string(">") + path_name(picked);
  op += "]";
  const std::string shape = describe(c);
  const int rc = path == GemmPath::Auto && api().gemm ? api().gemm(&g) : tkc::gemm_path(path, &g);
  const int sync = rc == 0 ? api().synchronize() : 0;
  if (rc != 0 || sync != 0) {
    std::printf("%-22s %-44s %s failed: %s FAIL\n", op.c_str(), shape.c_str(), rc ? "launch" : "kernel",
                api().last_error());
    std::fflush(stdout);
    ++g_failures;
  } else {
    std::vector<float> out = download(dc, csize, c.c_dt);
    std::vector<float> got;
    std::vector<double> ref;
    std::vector<int64_t> bs, ms, ns;
    std::vector<char> valid(csize, 0);
    for (int64_t b = 0; b < c.batch; ++b)
      for (int64_t m = 0; m < c.M; ++m)
        for (int64_t n = 0; n < c.N; ++n) {
          const int64_t off = b * sc + m * ldc + n;
          double s = 0;
          for (int64_t k = 0; k < c.K; ++k) s += A.at(b, m, k) * B.at(b, k, n);
          double v = double(c.alpha) * s;
          if (c.beta != 0.0f) v += double(c.beta) * double(c0[size_t(off)]);
          if (c.K2) {
            double s2 = 0;
            for (int64_t k = 0; k < c.K2; ++k) s2 += A2.at(b, m, k) * B2.at(b, k, n);
            v += s2;
          }
          if (c.bias) v += double(bias[size_t(n)]);
          v = act_ref(v, c.act);
          if (c.residual) v += double(res[size_t(off)]);
          got.push_back(out[size_t(off)]);
          ref.push_back(v);
          bs.push_back(b), ms.push_back(m), ns.push_back(n);
          valid[size_t(off)] = 1;
        }
    int64_t pad_bad = 0;
    for (size_t i = 0; i < csize; ++i)
      if (!valid[i]) {
        const bool same = (std::isnan(out[i]) && std::isnan(c0[i])) || out[i] == c0[i];
        if (!same) ++pad_bad;
      }
    double err = rel_err(got, ref);
    if (pad_bad) {
      std::printf("    %lld elements of C's padding were written\n", (long long)pad_bad);
      err = NAN;
    }
    const double tol = bf ? 1e-2 : 1e-5;
    if (!(err <= tol)) {
      int bm, bn;
      tile_of(path == GemmPath::Auto ? picked : path, bm, bn);
      diagnose(c, got, ref, bs, ms, ns, bm, bn);
    }
    const double ms_ = time_ms([&] { tkc::gemm_path(path, &g); }, 3, 1);
    report(op.c_str(), shape, c.dt, ms_, 2.0 * double(c.M) * double(c.N) * double(c.K + c.K2) * double(c.batch), true,
           err, tol);
    std::fflush(stdout);
  }
  A.free(), B.free(), A2.free(), B2.free();
  api().free(dc);
  if (dbias) api().free(dbias);
  if (dres) api().free(dres);
}

// a tensor-core path must refuse what it cannot load
void check_refusal(const Case& c, GemmPath path, const char* why) {
  Operand A = make_operand(c.M, c.K, c.ta, c.lda_x, c.align8, 1, false, c.dt);
  Operand B = make_operand(c.K, c.N, c.tb, c.ldb_x, c.align8, 1, false, c.dt);
  void* dc = poisoned(size_t(c.M * c.N), c.c_dt);
  tk_gemm_params g{};
  g.M = c.M, g.N = c.N, g.K = c.K, g.batch = 1, g.dt = c.dt;
  g.A = A.d, g.lda = A.ld, g.trans_a = c.ta;
  g.B = B.d, g.ldb = B.ld, g.trans_b = c.tb;
  g.C = dc, g.ldc = c.N, g.c_dt = c.c_dt, g.alpha = 1.0f;
  const int rc = tkc::gemm_path(path, &g);
  const bool pass = rc != 0;
  if (!pass) ++g_failures;
  std::printf("%-22s %-44s refuses %s: %s\n", (std::string("gemm[") + path_name(path) + "]").c_str(),
              describe(c).c_str(), why, pass ? "PASS" : "FAIL");
  A.free(), B.free();
  api().free(dc);
}

// an unsupported dtype must fail with a reason
void check_bad_dtype() {
  tk_gemm_params g{};
  g.M = g.N = g.K = 8, g.batch = 1, g.dt = TK_F16, g.c_dt = TK_F16;
  const int rc1 = tkc::gemm(&g);
  g.dt = TK_F32, g.c_dt = TK_BF16;
  const int rc2 = tkc::gemm(&g);
  const bool pass = rc1 != 0 && rc2 != 0;
  if (!pass) ++g_failures;
  std::printf("%-22s %-44s refuses f16 and f32->bf16: %s (%s)\n", "gemm", "8x8x8", pass ? "PASS" : "FAIL",
              api().last_error());
}

// timing of a big bf16 product with a sampled check (512 outputs, the corners among them)
void bench(int64_t M, int64_t N, int64_t K, bool ta, bool tb, tk_dtype dt, GemmPath path) {
  Operand A = make_operand(M, K, ta, 0, false, 1, false, dt);
  Operand B = make_operand(K, N, tb, 0, false, 1, false, dt);
  void* dc = poisoned(size_t(M * N), dt);
  tk_gemm_params g{};
  g.M = M, g.N = N, g.K = K, g.batch = 1, g.dt = dt;
  g.A = A.d, g.lda = A.ld, g.trans_a = ta;
  g.B = B.d, g.ldb = B.ld, g.trans_b = tb;
  g.C = dc, g.ldc = N, g.c_dt = dt, g.alpha = 1.0f;
  const GemmPath picked = tkc::gemm_pick(&g);
  std::string op = std::string("gemm[") + path_name(path);
  if (path == GemmPath::Auto) op += std::string(">") + path_name(picked);
  op += "]";
  char shape[96];
  std::snprintf(shape, sizeof(shape), "%lldx%lldx%lld %c%c", (long long)M, (long long)N, (long long)K, ta ? 'T' : 'N',
                tb ? 'T' : 'N');
  const int rc = tkc::gemm_path(path, &g);
  if (rc != 0 || api().synchronize() != 0) {
    std::printf("%-22s %-44s failed: %s FAIL\n", op.c_str(), shape, api().last_error());
    ++g_failures;
  } else {
    std::vector<float> out = download(dc, size_t(M * N), dt);
    std::vector<float> gs;
    std::vector<double> rs;
    for (int i = 0; i < 512; ++i) {
      int64_t m, n;
      if (i < 4) {
        m = (i & 1) ? M - 1 : 0;
        n = (i & 2) ? N - 1 : 0;
      } else {
        m = int64_t(next_u64() % uint64_t(M));
        n = int64_t(next_u64() % uint64_t(N));
      }
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += A.at(0, m, k) * B.at(0, k, n);
      gs.push_back(out[size_t(m * N + n)]);
      rs.push_back(s);
    }
    const double err = rel_err(gs, rs);
    const double ms = time_ms([&] { tkc::gemm_path(path, &g); }, 20, 3);
    report(op.c_str(), std::string(shape) + " sampled", dt, ms, 2.0 * double(M) * double(N) * double(K), true, err,
           dt == TK_BF16 ? 1e-2 : 1e-5);
  }
  std::fflush(stdout);
  A.free(), B.free();
  api().free(dc);
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const bool no_bench = argc > 1 && std::strcmp(argv[1], "--no-bench") == 0;
  api();  // init (sm_count() below)
  Limits l = limits();
  std::printf("device: %s, %d SMs, bf16 peak %.0f TFLOP/s, DRAM %.0f GB/s, opt-in smem %d B\n", l.name.c_str(),
              tkc::sm_count(), l.bf16_tflops, l.dram_gbs, tkc::gemm_detail::optin_smem());
  check_bad_dtype();

  const GemmPath kTc[] = {GemmPath::TcLarge, GemmPath::TcSmall};

  // ---- 77x131x67, all four transposes
  for (int t = 0; t < 4; ++t) {
    Case c;
    c.M = 77, c.N = 131, c.K = 67, c.ta = t & 1, c.tb = t & 2;
    c.dt = TK_F32, c.c_dt = TK_F32;
    check(c, GemmPath::Auto);  // simt
    c.dt = TK_BF16, c.c_dt = TK_BF16;
    check(c, GemmPath::Auto);  // tight ld (67, 77, 131 % 8 != 0): simt
    c.align8 = true;           // ld rounded up to 8 (> K where K is the row): the tensor cores
    check(c, GemmPath::Auto);
    for (GemmPath p : kTc) check(c, p);
    c.align8 = false, c.lda_x = 13, c.ldb_x = 5;  // lda > K, unaligned
    check(c, GemmPath::Simt);
  }
  // ---- lda > K on the tensor cores (ld = K + 16 + rounding), rows past K hold garbage
  for (int t = 0; t < 4; ++t) {
    Case c;
    c.M = 77, c.N = 131, c.K = 67, c.ta = t & 1, c.tb = t & 2, c.align8 = true, c.lda_x = 16, c.ldb_x = 24;
    c.dt = TK_BF16, c.c_dt = TK_F32;
    for (GemmPath p : kTc) check(c, p);
    c.dt = TK_F32;
    check(c, GemmPath::Simt);
  }
  // ---- batch 3 with a shared operand, padded C (ldc > N, stride > M·ldc)
  for (tk_dtype dt : {TK_F32, TK_BF16}) {
    Case c;
    c.M = 77, c.N = 131, c.K = 67, c.batch = 3, c.dt = dt, c.c_dt = dt, c.align8 = dt == TK_BF16;
    c.shared_a = true, c.tb = true, c.ldc_x = 3, c.sc_x = 11;
    check(c, GemmPath::Auto);
    if (dt == TK_BF16) check(c, GemmPath::TcLarge);
    c.shared_a = false, c.shared_b = true, c.ta = true, c.tb = false, c.ldc_x = 6, c.sc_x = 4;
    check(c, GemmPath::Auto);
    if (dt == TK_BF16) check(c, GemmPath::TcLarge), check(c, GemmPath::Simt);
  }
  // ---- alpha, beta
  for (tk_dtype dt : {TK_F32, TK_BF16}) {
    Case c;
    c.M = 77, c.N = 131, c.K = 67, c.dt = dt, c.c_dt = dt, c.align8 = dt == TK_BF16;
    c.beta = 1.0f;
    check(c, GemmPath::Auto);
    c.alpha = 0.5f, c.beta = 0.75f, c.ta = c.tb = true, c.batch = 2;
    check(c, GemmPath::Auto);
    if (dt == TK_BF16) check(c, GemmPath::TcSmall), check(c, GemmPath::Simt);
  }
  // ---- epilogues
  const tk_activation acts[] = {TK_ACT_NONE, TK_ACT_GELU, TK_ACT_RELU, TK_ACT_SILU, TK_ACT_GELU_ERF};
  for (tk_dtype dt : {TK_F32, TK_BF16})
    for (tk_dtype cdt : {TK_F32, TK_BF16}) {
      if (dt == TK_F32 && cdt == TK_BF16) continue;
      for (int a = 0; a < 5; ++a) {
        Case c;
        c.M = 77, c.N = 131, c.K = 67, c.dt = dt, c.c_dt = cdt, c.align8 = dt == TK_BF16, c.tb = true;
        c.act = acts[a], c.bias = a != 3, c.residual = a >= 3, c.beta = a == 4 ? 1.0f : 0.0f;
        check(c, GemmPath::Auto);
        if (dt == TK_BF16 && a >= 3) check(c, GemmPath::Simt);
      }
      Case c;  // N even: the paired epilogue loads and stores
      c.M = 70, c.N = 130, c.K = 40, c.dt = dt, c.c_dt = cdt, c.align8 = dt == TK_BF16, c.batch = 2;
      c.bias = c.residual = true, c.act = TK_ACT_GELU, c.beta = 0.5f;
      check(c, GemmPath::Auto);
    }
  // ---- the second K segment
  for (tk_dtype dt : {TK_F32, TK_BF16}) {
    Case c;
    c.M = 77, c.N = 131, c.K = 67, c.dt = dt, c.c_dt = dt, c.align8 = dt == TK_BF16;
    c.tb = true, c.K2 = 16, c.tb2 = true, c.alpha = 0.5f, c.bias = true;  // the LoRA layout
    check(c, GemmPath::Auto);
    if (dt == TK_BF16) check(c, GemmPath::TcSmall), check(c, GemmPath::Simt);
    c.K2 = 5, c.tb = false, c.tb2 = false, c.beta = 1.0f, c.batch = 2;  // awkward K2, NN, accumulate
    check(c, GemmPath::Auto);
    if (dt == TK_BF16) check(c, GemmPath::TcLarge);
    c.K2 = 40, c.ta2 = true, c.tb2 = true, c.batch = 1, c.beta = 0.0f;  // other transposes: simt
    check(c, GemmPath::Auto);
    c.K = 0, c.K2 = 33, c.ta2 = false, c.tb2 = false;  // segment 1 empty
    check(c, GemmPath::Auto);
    c.K = 100, c.K2 = 70, c.ta = c.ta2 = true, c.tb = c.tb2 = false, c.act = TK_ACT_SILU, c.residual = true;
    check(c, GemmPath::Auto);
  }
  // ---- K = 0: C = beta·C + bias; tiny and multi-tile shapes
  for (tk_dtype dt : {TK_F32, TK_BF16}) {
    Case c;
    c.M = 5, c.N = 9, c.K = 0, c.dt = dt, c.c_dt = dt, c.beta = 0.5f, c.bias = true, c.align8 = true;
    check(c, GemmPath::Auto);
    c.M = 1, c.N = 8, c.K = 16, c.beta = 0.0f, c.bias = false;
    check(c, GemmPath::Auto);
    c.M = 16, c.N = 3000, c.K = 40, c.tb = true;
    check(c, GemmPath::Auto);
    c.M = 515, c.N = 1029, c.K = 333, c.tb = false, c.ta = true;  // 11 K tiles: wraps the stage ring
    check(c, GemmPath::Auto);
    if (dt == TK_BF16) check(c, GemmPath::TcLarge), check(c, GemmPath::TcSmall);
  }
  // ---- refusals
  {
    Case c;
    c.M = 77, c.N = 131, c.K = 67, c.dt = TK_F32, c.c_dt = TK_F32, c.align8 = true;
    check_refusal(c, GemmPath::TcLarge, "f32");
    c.dt = TK_BF16, c.c_dt = TK_BF16, c.align8 = false;
    check_refusal(c, GemmPath::TcSmall, "lda % 8 != 0");
  }

  if (!no_bench) {
    bench(4096, 4096, 4096, false, true, TK_BF16, GemmPath::Auto);
    bench(8192, 8192, 8192, false, true, TK_BF16, GemmPath::Auto);
    if (!quick) {
      bench(4096, 4096, 4096, false, true, TK_BF16, GemmPath::TcSmall);
      bench(4096, 4096, 4096, false, false, TK_BF16, GemmPath::Auto);
      bench(4096, 4096, 4096, true, false, TK_BF16, GemmPath::Auto);
      bench(4096, 4096, 4096, true, true, TK_BF16, GemmPath::Auto);
      bench(8192, 8192, 8192, false, false, TK_BF16, GemmPath::Auto);
      bench(2048, 2048, 2048, false, true, TK_F32, GemmPath::Auto);
    }
  }
  std::printf("%d failure(s)\n", g_failures);
  return g_failures ? 1 : 0;
}
