// Check-and-bench harness of kernels/lora.cu (tkc::lora_forward, the tk_lora_params contract):
//   y = x·wᵀ + scale·(x·aᵀ)·bᵀ + bias,  xa = x·aᵀ (f32)
//
// Every case fills fresh random x, w, a, b, bias (never zeros), poisons y and
// xa with NaN, runs one path, and checks every y and xa against a float64
// host reference from the values the device holds (bf16-rounded for bf16):
// y within 1e-5 (f32) / 1e-2 (bf16) relative norm error, xa within 1e-5 /
// 1e-4. Paths: the fused tensor-core kernels (128x256 and 128x128 tiles), the
// fused SIMT kernel, the unfused gemm sequence, Auto. Shapes: N=77, in=67 or
// 72, out=131 (ragged everywhere), r from 4 to 80 (r > 64 is unfused), r % 8
// != 0 (the b tile by plain loads), several column tiles (xa written once per
// row tile), a misaligned x, in = 0.
// Then the timing at x [8192, 4096], w [4096, 4096], r = 16 (bf16): the fused
// kernel against the unfused sequence of gemm calls in the same run (with and
// without xa) and against the plain x·wᵀ + bias GEMM, with a sampled check;
// the ratios are printed on their own "ratio" lines.
//
// Usage: lora [--no-bench]
// Build: cmake -DTUNEKIT_CUDA_DEV=ON (target dev_lora), or alone:
//   cd kernels && nvcc -std=c++17 --expt-relaxed-constexpr -lineinfo -O3 -I. -I../native/include \
//     -gencode arch=compute_90,code=sm_90 dev/lora.cu lora.cu gemm.cu runtime.cu copy.cu backend.cu -o /tmp/lora \
//     -ldl -Xlinker --unresolved-symbols=ignore-all
#include <cstring>

#include "../gemm.cuh"
#include "harness.h"

using namespace dev;
using tkc::LoraPath;

namespace {

uint64_t g_rng = 0x2545f4914f6cdd1dull;
inline uint64_t next_u64() { return tkc::mix64(g_rng++); }
std::vector<float> rand_vec(size_t n, tk_dtype dt, float scale = 1.0f) { return uniform_vec(n, dt, g_rng, scale); }

const char* path_name(LoraPath p) {
  switch (p) {
    case LoraPath::Auto: return "auto";
    case LoraPath::TcLarge: return "tc128x256";
    case LoraPath::TcSmall: return "tc128x128";
    case LoraPath::Simt: return "simt";
    case LoraPath::Unfused: return "unfused";
  }
  return "?";
}

struct Lora {
  int64_t N, in, out, r;
  tk_dtype dt;
  float scale = 0.75f;
  std::vector<float> x, w, a, b, bias;
  void *dx = nullptr, *dw = nullptr, *da = nullptr, *db = nullptr, *dbias = nullptr;
  void* dx_base = nullptr;
  Lora(int64_t N_, int64_t in_, int64_t out_, int64_t r_, tk_dtype dt_, int x_offset = 0)
      : N(N_), in(in_), out(out_), r(r_), dt(dt_) {
    x = rand_vec(size_t(N * in), dt, 1.0f);
    w = rand_vec(size_t(out * in), dt, 1.0f);
    a = rand_vec(size_t(r * in), dt, 1.0f);
    b = rand_vec(size_t(out * r), dt, 0.5f);
    bias = rand_vec(size_t(out), dt, 1.0f);
    if (x_offset) {  // x starts x_offset elements into its buffer (not 16-byte aligned)
      std::vector<float> xs(size_t(N * in + x_offset), 1.0f);
      std::copy(x.begin(), x.end(), xs.begin() + x_offset);
      dx_base = upload(xs, dt);
      dx = static_cast<char*>(dx_base) + x_offset * (dt == TK_BF16 ? 2 : 4);
    } else {
      dx = dx_base = upload(x, dt);
    }
    dw = upload(w, dt);
    da = upload(a, dt);
    db = upload(b, dt);
    dbias = upload(bias, dt);
  }
  ~Lora() {
    for (void* p : {dx_base, dw, da, db, dbias}) api().free(p);
  }
  double t(int64_t i, int64_t c) const {
    double s = 0;
    for (int64_t k = 0; k < in; ++k) s += double(x[size_t(i * in + k)]) * double(a[size_t(c * in + k)]);
    return s;
  }
  // y(i, j) given the row t_i
  double y(int64_t i, int64_t j, const double* ti, bool with_bias) const {
    double s = 0;
    for (int64_t k = 0; k < in; ++k) s += double(x[size_t(i * in + k)]) * double(w[size_t(j * in + k)]);
    double l = 0;
    for (int64_t c = 0; c < r; ++c) l += ti[c] * double(b[size_t(j * r + c)]);
    return s + double(scale) * l + (with_bias ? double(bias[size_t(j)]) : 0.0);
  }
  tk_lora_params params(void* dy, float* dxa, bool with_bias) const {
    tk_lora_params q{};
    q.dt = dt, q.N = N, q.in = in, q.out = out, q.r = r;
    q.x = dx, q.w = dw, q.a = da, q.b = db, q.bias = with_bias ? dbias : nullptr;
    q.scale = scale, q.y = dy, q.xa = dxa;
    return q;
  }
};

int run(LoraPath path, const tk_lora_params& q) {
  if (path == LoraPath::Auto && api().lora_forward) return api().lora_forward(&q);
  return tkc::lora_forward_path(path, &q);
}

void diagnose(const std::vector<float>& got, const std::vector<double>& ref, int64_t cols, const char* what) {
  double rms = 0;
  for (double v : ref) rms += v * v;
  rms = std::sqrt(rms / std::max<size_t>(ref.size(), 1));
  const double thr = 1e-3 * (rms > 0 ? rms : 1.0);
  int64_t bad = 0, nan = 0, shown = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = std::fabs(double(got[i]) - ref[i]);
    if (!(d <= thr)) {
      ++bad;
      if (std::isnan(got[i])) ++nan;
      if (shown < 5) {
        std::printf("    %s bad at row %lld col %lld: got %.6g want %.6g\n", what, (long long)(i / cols),
                    (long long)(i % cols), double(got[i]), ref[i]);
        ++shown;
      }
    }
  }
  std::printf("    %s: %lld of %zu off by > %.2g (%lld NaN)\n", what, (long long)bad, ref.size(), thr, (long long)nan);
}

void check(const Lora& L, LoraPath path, bool with_bias, bool with_xa, const char* tag = "") {
  const size_t ny = size_t(L.N * L.out), nxa = size_t(L.N * L.r);
  void* dy = poisoned(ny, L.dt);
  float* dxa = with_xa ? static_cast<float*>(poisoned(nxa, TK_F32)) : nullptr;
  tk_lora_params q = L.params(dy, dxa, with_bias);
  std::string op = std::string("lora[") + path_name(path);
  if (path == LoraPath::Auto) op += std::string(">") + path_name(tkc::lora_pick(&q));
  op += "]";
  char shape[128];
  std::snprintf(shape, sizeof(shape), "N%lld in%lld out%lld r%lld%s%s%s", (long long)L.N, (long long)L.in,
                (long long)L.out, (long long)L.r, with_bias ? " bias" : "", with_xa ? " xa" : "", tag);
  const int rc = run(path, q);
  const int sync = rc == 0 ? api().synchronize() : 0;
  if (rc != 0 || sync != 0) {
    std::printf("%-22s %-40s %s failed: %s FAIL\n", op.c_str(), shape, rc ? "launch" : "kernel", api().last_error());
    ++g_failures;
  } else {
    std::vector<float> y = download(dy, ny, L.dt);
    std::vector<double> yref(ny), tref(nxa);
    std::vector<double> ti(size_t(std::max<int64_t>(L.r, 1)));
    for (int64_t i = 0; i < L.N; ++i) {
      for (int64_t c = 0; c < L.r; ++c) ti[size_t(c)] = tref[size_t(i * L.r + c)] = L.t(i, c);
      for (int64_t j = 0; j < L.out; ++j) yref[size_t(i * L.out + j)] = L.y(i, j, ti.data(), with_bias);
    }
    const double tol = L.dt == TK_BF16 ? 1e-2 : 1e-5;
    double err = rel_err(y, yref);
    if (!(err <= tol)) diagnose(y, yref, L.out, "y");
    if (with_xa && nxa) {
      std::vector<float> xa = download(dxa, nxa, TK_F32);
      const double exa = rel_err(xa, tref);
      const double txa = L.dt == TK_BF16 ? 1e-4 : 1e-5;
      if (!(exa <= txa)) {
        std::printf("    xa rel. error %.3e (tol %.0e)\n", exa, txa);
        diagnose(xa, tref, L.r, "xa");
        err = NAN;
      }
    }
    const double ms = time_ms([&] { run(path, q); }, 3, 1);
    report(op.c_str(), shape, L.dt, ms, 2.0 * double(L.N) * double(L.in) * double(L.out + L.r) +
                                            2.0 * double(L.N) * double(L.r) * double(L.out),
           true, err, tol);
  }
  std::fflush(stdout);
  api().free(dy);
  if (dxa) api().free(dxa);
}

// x [8192, 4096] · w [4096, 4096]ᵀ, r = 16: fused against the unfused gemm sequence and the plain GEMM
void bench(tk_dtype dt, int64_t N, int64_t in, int64_t out, int64_t r) {
  Lora L(N, in, out, r, dt);
  const size_t ny = size_t(N * out), nxa = size_t(N * r);
  void* dy = poisoned(ny, dt);
  float* dxa = static_cast<float*>(poisoned(nxa, TK_F32));
  tk_lora_params q = L.params(dy, dxa, true);
  tk_lora_params q0 = L.params(dy, nullptr, true);
  const LoraPath picked = tkc::lora_pick(&q);
  char shape[128];
  std::snprintf(shape, sizeof(shape), "x[%lld,%lld] w[%lld,%lld] r%lld", (long long)N, (long long)in, (long long)out,
                (long long)in, (long long)r);
  const double flops = 2.0 * double(N) * double(in) * double(out + r) + 2.0 * double(N) * double(r) * double(out);

  // correctness of the fused output on samples (y: 512 entries over 16 rows; xa: those rows)
  if (run(LoraPath::Auto, q) != 0 || api().synchronize() != 0) {
    std::printf("lora bench %s: fused run failed: %s FAIL\n", shape, api().last_error());
    ++g_failures;
    api().free(dy), api().free(dxa);
    return;
  }
  std::vector<float> y = download(dy, ny, dt), xa = download(dxa, nxa, TK_F32);
  std::vector<float> gy, gxa;
  std::vector<double> ry, rxa;
  std::vector<double> ti(static_cast<size_t>(r));
  for (int s = 0; s < 16; ++s) {
    const int64_t i = s == 0 ? 0 : s == 1 ? N - 1 : int64_t(next_u64() % uint64_t(N));
    for (int64_t c = 0; c < r; ++c) {
      ti[size_t(c)] = L.t(i, c);
      gxa.push_back(xa[size_t(i * r + c)]);
      rxa.push_back(ti[size_t(c)]);
    }
    for (int k = 0; k < 32; ++k) {
      const int64_t j = k == 0 ? 0 : k == 1 ? out - 1 : int64_t(next_u64() % uint64_t(out));
      gy.push_back(y[size_t(i * out + j)]);
      ry.push_back(L.y(i, j, ti.data(), true));
    }
  }
  double err = rel_err(gy, ry);
  const double exa = rel_err(gxa, rxa);
  if (!(exa <= (dt == TK_BF16 ? 1e-4 : 1e-5))) {
    std::printf("    sampled xa rel. error %.3e\n", exa);
    err = NAN;
  }
  const double tol = dt == TK_BF16 ? 1e-2 : 1e-5;

  const double t_fused = time_ms([&] { run(LoraPath::Auto, q); }, 20, 3);
  const double t_fused0 = time_ms([&] { run(LoraPath::Auto, q0); }, 20, 3);
  const double t_unf = time_ms([&] { run(LoraPath::Unfused, q); }, 20, 3);
  const double t_unf0 = time_ms([&] { run(LoraPath::Unfused, q0); }, 20, 3);
  tk_gemm_params g{};  // the plain y = x·wᵀ + bias, the floor
  g.M = N, g.N = out, g.K = in, g.batch = 1, g.dt = dt;
  g.A = L.dx, g.lda = in, g.B = L.dw, g.ldb = in, g.trans_b = 1;
  g.C = dy, g.ldc = out, g.c_dt = dt, g.alpha = 1.0f, g.bias = L.dbias;
  const double t_plain = time_ms([&] { tkc::gemm(&g); }, 20, 3);
  // the unfused output must match the fused one too
  ok(run(LoraPath::Unfused, q), "lora unfused");
  std::vector<float> yu = download(dy, ny, dt);
  std::vector<double> yf(y.begin(), y.end());
  const double e_uf = rel_err(yu, yf);

  const std::string op = std::string("lora[auto>") + path_name(picked) + "]";
  report(op.c_str(), std::string(shape) + " xa", dt, t_fused, flops, true, err, tol);
  report(op.c_str(), shape, dt, t_fused0, flops, true, err, tol);
  report("lora[unfused]", std::string(shape) + " xa", dt, t_unf, flops, true, e_uf, tol);
  report("lora[unfused]", shape, dt, t_unf0, flops, true, e_uf, tol);
  report("gemm x·wT+bias", shape, dt, t_plain, 2.0 * double(N) * double(in) * double(out), true, 0.0, tol);
  std::printf("ratio %s %s: unfused/fused = %.3f with xa (%.4f / %.4f ms), %.3f without xa (%.4f / %.4f ms)\n",
              dt == TK_BF16 ? "bf16" : "f32", shape, t_unf / t_fused, t_unf, t_fused, t_unf0 / t_fused0, t_unf0,
              t_fused0);
  std::printf("ratio %s %s: fused/plain-gemm = %.3f (the cost of the low-rank term on top of x·wT)\n",
              dt == TK_BF16 ? "bf16" : "f32", shape, t_fused / t_plain);
  std::fflush(stdout);
  api().free(dy);
  api().free(dxa);
}

}  // namespace

int main(int argc, char** argv) {
  const bool no_bench = argc > 1 && std::strcmp(argv[1], "--no-bench") == 0;
  api();
  Limits l = limits();
  std::printf("device: %s, %d SMs, bf16 peak %.0f TFLOP/s, opt-in smem %d B\n", l.name.c_str(), tkc::sm_count(),
              l.bf16_tflops, tkc::gemm_detail::optin_smem());

  // ---- f32: the fused SIMT kernel (any alignment) and the unfused sequence
  for (int64_t r : {4, 16, 33, 64, 80}) {
    Lora L(77, 67, 131, r, TK_F32);
    check(L, LoraPath::Auto, r != 33, true);
    if (r == 16) check(L, LoraPath::Unfused, true, true), check(L, LoraPath::Auto, true, false);
  }
  {
    Lora L(300, 150, 520, 16, TK_F32);  // 3 row tiles, 5 column tiles
    check(L, LoraPath::Auto, true, true);
    Lora Z(5, 0, 9, 16, TK_F32);  // in = 0: y = bias, xa = 0
    check(Z, LoraPath::Auto, true, true);
    Lora O(7, 20, 0, 4, TK_F32);  // out = 0: xa only
    check(O, LoraPath::Auto, true, true);
  }
  // ---- bf16 with in % 8 == 0: the tensor-core kernels
  for (int64_t r : {8, 13, 16, 32, 40, 64, 80}) {
    Lora L(77, 72, 131, r, TK_BF16);
    check(L, LoraPath::Auto, true, true);
    if (r <= 64) {
      check(L, LoraPath::TcLarge, r != 13, true);
      check(L, LoraPath::TcSmall, true, r != 8);
      check(L, LoraPath::Simt, true, true);
    }
    if (r == 16) check(L, LoraPath::Unfused, true, true);
  }
  {
    Lora L(300, 264, 520, 16, TK_BF16);  // 3 row tiles, 3 / 5 column tiles, 9 K tiles
    check(L, LoraPath::TcLarge, true, true);
    check(L, LoraPath::TcSmall, true, true);
    Lora R(300, 264, 520, 24, TK_BF16);  // r % 16 != 0 with r % 8 == 0 (cp.async b tile, padded t columns)
    check(R, LoraPath::TcSmall, true, true);
    Lora Z(5, 0, 9, 16, TK_BF16);  // in = 0
    check(Z, LoraPath::TcLarge, true, true);
  }
  // ---- bf16 the tensor cores cannot take: the SIMT kernel
  {
    Lora L(77, 67, 131, 16, TK_BF16);  // in % 8 != 0
    check(L, LoraPath::Auto, true, true);
    Lora X(77, 72, 131, 16, TK_BF16, 1);  // x not 16-byte aligned
    check(X, LoraPath::Auto, true, true, " x+1");
  }

  if (!no_bench) {
    bench(TK_BF16, 8192, 4096, 4096, 16);
    bench(TK_F32, 2048, 1024, 1024, 16);
  }
  std::printf("%d failure(s)\n", g_failures);
  return g_failures ? 1 : 0;
}
