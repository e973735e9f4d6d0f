// Check-and-bench harness of kernels/int8.cu (quantize_rows_int8, int8_gemm).
//
// quantize_rows_int8 is checked EXACTLY (every q and the bits of every scale)
// against the CPU rule (native/napi/ops_fused.cc): scale = float32(amax / 127),
// q = nearbyint(double(x) · 127 / amax), amax = 0 → scale 0 and q 0, a row
// with NaN or inf → scale NaN and q 0. Special rows: zeros, exact ties (both
// rounding directions of half-even), tiny rows (amax < 1e-36: the f64 path),
// NaN, inf, values near FLT_MAX.
//
// int8_gemm is checked against an exact int64 host product times the scales
// (f32 output: rel. norm error ≤ 1e-6, bf16: ≤ 1e-2) on awkward shapes through
// every path (Simple, Small, Large, Large3 and Auto), bias on/off, accumulate
// on/off, then timed at 8192³ (int8 TOPS and % of the int8 tensor-core peak,
// taken as 2× the dense bf16 peak of dev::limits()), with a sampled check of
// the big product.
//
// Usage: int8 [--quick | --no-bench]
//   --quick: of the 8192³ timings only the bf16-output Auto one
//   --no-bench: the checks only (fast under compute-sanitizer --tool memcheck / racecheck)
// Build: cmake -DTUNEKIT_CUDA_DEV=ON (target dev_int8), or alone, before every op of backend.cu has landed
// (the table's missing entries are never called here):
//   cd kernels && nvcc -std=c++17 --expt-relaxed-constexpr -lineinfo -O3 -I. -I../native/include \
//     -gencode arch=compute_90,code=sm_90 dev/int8.cu int8.cu runtime.cu copy.cu backend.cu -o /tmp/int8 \
//     -ldl -Xlinker --unresolved-symbols=ignore-all
#include <cstring>

#include "../int8.cuh"
#include "harness.h"

using namespace dev;
using tkc::Int8Path;

namespace {

uint64_t g_rng = 0x1234567887654321ull;
inline uint64_t next_u64() { return tkc::mix64(g_rng++); }

std::vector<int8_t> rand_i8(size_t n) {
  std::vector<int8_t> v(n);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t r = next_u64();
    std::memcpy(v.data() + i, &r, 8);  // the full range, -128 included
  }
  for (; i < n; ++i) v[i] = static_cast<int8_t>(next_u64());
  return v;
}
std::vector<float> rand_uniform(size_t n, float lo, float hi) {
  std::vector<float> v(n);
  for (auto& x : v) x = lo + (hi - lo) * static_cast<float>(next_u64() >> 40) * (1.0f / 16777216.0f);
  return v;
}
std::vector<float> rounded(std::vector<float> v, tk_dtype dt) {
  if (dt == TK_BF16)
    for (auto& x : v) x = round_bf16(x);
  return v;
}

void* upload_bytes(const void* h, size_t n) {
  void* d = api().alloc(n + 16);
  if (!d) {
    std::fprintf(stderr, "alloc: %s\n", api().last_error());
    std::exit(2);
  }
  if (n) ok(api().memcpy_h2d(d, h, n), "upload");
  return d;
}

const char* path_name(Int8Path p) {
  switch (p) {
    case Int8Path::Auto: return "auto";
    case Int8Path::Large: return "large";
    case Int8Path::Large3: return "large3";
    case Int8Path::Small: return "small";
    case Int8Path::Simple: return "simple";
  }
  return "?";
}

// one result line like dev::report, with the % column against the int8 peak (2× dense bf16)
void report_int8(const std::string& op, const std::string& shape, tk_dtype dt, double ms, double ops, double err,
                 double tol) {
  Limits l = limits();
  double rate = ops / (ms * 1e-3);
  double pct = 100.0 * rate / (2.0 * l.bf16_tflops * 1e12);
  bool pass = std::isfinite(err) && err <= tol;
  if (!pass) ++g_failures;
  std::printf("%-22s %-28s %-5s %9.4f ms %9.2f %-6s %6.1f%% of limit  err %.2e (tol %.0e) %s\n", op.c_str(),
              shape.c_str(), dt == TK_BF16 ? "bf16" : "f32", ms, rate / 1e12, "TOPS", pct, err, tol,
              pass ? "PASS" : "FAIL");
  std::fflush(stdout);
}

// ---------------------------------------------------------------- quantize

void check_quantize(int64_t rows, int64_t cols, tk_dtype dt, bool specials, int iters) {
  std::vector<float> x = randn(size_t(rows * cols), 7 + rows * 31 + cols, 3.0f);
  if (specials && rows >= 8 && cols >= 8) {
    float* r;
    r = &x[0 * cols];  // zeros
    for (int64_t c = 0; c < cols; ++c) r[c] = 0.0f;
    r = &x[1 * cols];  // amax 127: q = x exactly, x = k / 2: ties on both sides
    for (int64_t c = 0; c < cols; ++c) r[c] = 0.5f * static_cast<float>((c * 37) % 509 - 254);
    r[cols / 2] = 127.0f;
    r = &x[2 * cols];  // tiny: amax < 1e-36, subnormals included
    for (int64_t c = 0; c < cols; ++c) r[c] *= 1e-38f;
    r[3] = 3e-39f;
    r = &x[3 * cols];  // NaN
    r[cols / 3] = NAN;
    r = &x[4 * cols];  // inf
    r[cols - 1] = -INFINITY;
    r = &x[5 * cols];  // amax 254: q = x / 2, odd integers tie
    for (int64_t c = 0; c < cols; ++c) r[c] = static_cast<float>((c * 53) % 509 - 254);
    r[1] = -254.0f;
    r = &x[6 * cols];  // near FLT_MAX
    for (int64_t c = 0; c < cols; ++c) r[c] *= 1e37f;
    r[2] = 3.3e38f;
    r = &x[7 * cols];  // a single nonzero
    for (int64_t c = 0; c < cols; ++c) r[c] = 0.0f;
    r[cols - 2] = -1e-3f;
  }
  x = rounded(std::move(x), dt);

  // the CPU rule
  std::vector<int8_t> qref(static_cast<size_t>(rows * cols));
  std::vector<float> sref(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) {
    const float* r = &x[size_t(i * cols)];
    float m = 0.0f;
    bool bad = false;
    for (int64_t c = 0; c < cols; ++c) {
      if (!std::isfinite(r[c])) bad = true;
      m = std::max(m, std::fabs(r[c]));
    }
    sref[i] = bad ? NAN : m / 127.0f;
    for (int64_t c = 0; c < cols; ++c) {
      int8_t q = 0;
      if (!bad && m > 0.0f) {
        double v = std::nearbyint(static_cast<double>(r[c]) * 127.0 / static_cast<double>(m));
        v = v > 127.0 ? 127.0 : (v < -127.0 ? -127.0 : v);
        q = static_cast<int8_t>(v);
      }
      qref[size_t(i * cols + c)] = q;
    }
  }

  void* dx = upload(x, dt);
  void* dq = api().alloc(size_t(rows * cols) + 16);
  void* ds = api().alloc(size_t(rows) * 4 + 16);
  ok(api().fill(dq, TK_I8, rows * cols, 85.0), "poison q");
  ok(api().fill(ds, TK_F32, rows, -1.0), "poison scale");
  ok(api().quantize_rows_int8(dt, dx, rows, cols, static_cast<int8_t*>(dq), static_cast<float*>(ds)),
     "quantize_rows_int8");
  std::vector<int8_t> q(static_cast<size_t>(rows * cols));
  std::vector<float> s(static_cast<size_t>(rows));
  ok(api().memcpy_d2h(q.data(), dq, q.size()), "download q");
  ok(api().memcpy_d2h(s.data(), ds, s.size() * 4), "download scale");
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < q.size(); ++i)
    if (q[i] != qref[i]) {
      if (first < 0) first = int64_t(i);
      ++bad;
    }
  for (int64_t i = 0; i < rows; ++i) {
    bool same = (std::isnan(s[i]) && std::isnan(sref[i])) || std::memcmp(&s[i], &sref[i], 4) == 0;
    if (!same) {
      if (first < 0) first = i * cols;
      ++bad;
    }
  }
  if (bad)
    std::printf("  quantize mismatch: %lld values, first at row %lld col %lld: x %.9g q %d (want %d), scale %.9g (want %.9g)\n",
                (long long)bad, (long long)(first / cols), (long long)(first % cols), double(x[size_t(first)]),
                int(q[size_t(first)]), int(qref[size_t(first)]), double(s[size_t(first / cols)]),
                double(sref[size_t(first / cols)]));
  double ms = time_ms([&] { api().quantize_rows_int8(dt, dx, rows, cols, static_cast<int8_t*>(dq), static_cast<float*>(ds)); },
                      iters, 1);
  double bytes = double(rows * cols) * ((dt == TK_BF16 ? 2 : 4) + 1) + double(rows) * 4;
  report("quantize_rows_int8", "[" + std::to_string(rows) + ", " + std::to_string(cols) + "]", dt, ms, bytes, false,
         double(bad), 0.0);
  api().free(dx);
  api().free(dq);
  api().free(ds);
}

// ---------------------------------------------------------------- gemm

struct GemmCase {
  int64_t M, N, K;
  std::vector<int8_t> qx, qw;
  std::vector<float> sx, sw, bias;
  void *dqx = nullptr, *dqw = nullptr, *dsx = nullptr, *dsw = nullptr;
  GemmCase(int64_t M_, int64_t N_, int64_t K_) : M(M_), N(N_), K(K_) {
    qx = rand_i8(size_t(M * K));
    qw = rand_i8(size_t(N * K));
    // scales of the size quantization gives (amax / 127 of unit-normal data)
    sx = rand_uniform(size_t(M), 0.01f, 0.04f);
    sw = rand_uniform(size_t(N), 0.01f, 0.04f);
    bias = randn(size_t(N), 99 + N, 1.0f);
    dqx = upload_bytes(qx.data(), qx.size());
    dqw = upload_bytes(qw.data(), qw.size());
    dsx = upload(sx, TK_F32);
    dsw = upload(sw, TK_F32);
  }
  ~GemmCase() {
    api().free(dqx);
    api().free(dqw);
    api().free(dsx);
    api().free(dsw);
  }
  double dot(int64_t m, int64_t n) const {
    int64_t acc = 0;
    const int8_t* a = &qx[size_t(m * K)];
    const int8_t* b = &qw[size_t(n * K)];
    for (int64_t k = 0; k < K; ++k) acc += int64_t(a[k]) * int64_t(b[k]);
    return double(acc) * double(sx[size_t(m)]) * double(sw[size_t(n)]);
  }
};

int run(Int8Path path, tk_dtype dt, const GemmCase& c, const void* bias, void* y, int accumulate) {
  if (path == Int8Path::Auto)
    return api().int8_gemm(dt, static_cast<const int8_t*>(c.dqx), static_cast<const float*>(c.dsx),
                           static_cast<const int8_t*>(c.dqw), static_cast<const float*>(c.dsw), bias, c.M, c.N, c.K, y,
                           accumulate);
  return tkc::int8_gemm_path(path, dt, static_cast<const int8_t*>(c.dqx), static_cast<const float*>(c.dsx),
                             static_cast<const int8_t*>(c.dqw), static_cast<const float*>(c.dsw), bias, c.M, c.N, c.K,
                             y, accumulate);
}

std::string shape_of(const GemmCase& c) {
  return std::to_string(c.M) + "x" + std::to_string(c.N) + "x" + std::to_string(c.K);
}

void check_gemm(const GemmCase& c, tk_dtype dt, Int8Path path, bool with_bias, bool accumulate) {
  const size_t MN = size_t(c.M * c.N);
  std::vector<float> bias = rounded(c.bias, dt);
  std::vector<float> y0 = accumulate ? rounded(randn(MN, 5 + MN, 1.0f), dt) : std::vector<float>();
  void* db = with_bias ? upload(bias, dt) : nullptr;
  void* dy = accumulate ? upload(y0, dt) : poisoned(MN, dt);
  std::string op = std::string("int8_gemm[") + path_name(path);
  if (path == Int8Path::Auto)
    op += std::string(">") +
          path_name(tkc::int8_gemm_pick(static_cast<const int8_t*>(c.dqx), static_cast<const int8_t*>(c.dqw), c.M,
                                        c.N, c.K));
  op += "]";
  std::string shape = shape_of(c) + (with_bias ? " bias" : "") + (accumulate ? " +=y" : "");
  int rc = run(path, dt, c, db, dy, accumulate);
  if (rc != 0) {
    std::printf("%-22s %-28s %-5s launch failed: %s FAIL\n", op.c_str(), shape.c_str(), dt == TK_BF16 ? "bf16" : "f32",
                api().last_error());
    ++g_failures;
  } else {
    std::vector<float> got = download(dy, MN, dt);
    std::vector<double> ref(MN);
    for (int64_t m = 0; m < c.M; ++m)
      for (int64_t n = 0; n < c.N; ++n) {
        double v = c.dot(m, n) + (with_bias ? double(bias[size_t(n)]) : 0.0);
        ref[size_t(m * c.N + n)] = accumulate ? double(y0[size_t(m * c.N + n)]) + v : v;
      }
    double err = rel_err(got, ref);
    double ms = time_ms([&] { run(path, dt, c, db, dy, 0); }, 5, 1);
    report_int8(op, shape, dt, ms, 2.0 * double(c.M) * double(c.N) * double(c.K), err, dt == TK_F32 ? 1e-6 : 1e-2);
  }
  if (db) api().free(db);
  api().free(dy);
}

// a tensor-core path must refuse K % 16 != 0 (it would read rows misaligned)
void check_refusal(const GemmCase& c, Int8Path path) {
  void* dy = poisoned(size_t(c.M * c.N), TK_F32);
  int rc = run(path, TK_F32, c, nullptr, dy, 0);
  bool pass = rc != 0;
  if (!pass) ++g_failures;
  std::printf("%-22s %-28s %-5s refuses K %% 16 != 0: %s\n",
              (std::string("int8_gemm[") + path_name(path) + "]").c_str(), shape_of(c).c_str(), "f32",
              pass ? "PASS" : "FAIL");
  api().free(dy);
}

void bench_gemm(const GemmCase& c, tk_dtype dt, Int8Path path) {
  const size_t MN = size_t(c.M * c.N);
  std::vector<float> bias = rounded(c.bias, dt);
  void* db = upload(bias, dt);
  void* dy = poisoned(MN, dt);
  std::string op = std::string("int8_gemm[") + path_name(path);
  if (path == Int8Path::Auto)
    op += std::string(">") +
          path_name(tkc::int8_gemm_pick(static_cast<const int8_t*>(c.dqx), static_cast<const int8_t*>(c.dqw), c.M,
                                        c.N, c.K));
  op += "]";
  int rc = run(path, dt, c, db, dy, 0);
  if (rc != 0) {
    std::printf("%-22s %-28s launch failed: %s FAIL\n", op.c_str(), shape_of(c).c_str(), api().last_error());
    ++g_failures;
  } else {
    std::vector<float> got = download(dy, MN, dt);
    // sampled check: 512 entries, the four corners among them
    std::vector<float> gs;
    std::vector<double> rs;
    for (int i = 0; i < 512; ++i) {
      int64_t m, n;
      if (i < 4) {
        m = (i & 1) ? c.M - 1 : 0;
        n = (i & 2) ? c.N - 1 : 0;
      } else {
        m = int64_t(next_u64() % uint64_t(c.M));
        n = int64_t(next_u64() % uint64_t(c.N));
      }
      gs.push_back(got[size_t(m * c.N + n)]);
      rs.push_back(c.dot(m, n) + double(bias[size_t(n)]));
    }
    double err = rel_err(gs, rs);
    double ms = time_ms([&] { run(path, dt, c, db, dy, 0); }, 20, 3);
    report_int8(op, shape_of(c) + " bias", dt, ms, 2.0 * double(c.M) * double(c.N) * double(c.K), err,
                dt == TK_F32 ? 1e-6 : 1e-2);
  }
  api().free(db);
  api().free(dy);
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const bool no_bench = argc > 1 && std::strcmp(argv[1], "--no-bench") == 0;
  Limits l = limits();
  std::printf("device: %s, bf16 peak %.0f TFLOP/s (int8 peak taken as %.0f TOPS), DRAM %.0f GB/s\n", l.name.c_str(),
              l.bf16_tflops, 2 * l.bf16_tflops, l.dram_gbs);

  // ---- quantize: exact
  for (tk_dtype dt : {TK_F32, TK_BF16}) {
    check_quantize(77, 67, dt, true, 3);     // scalar path (cols odd)
    check_quantize(130, 320, dt, true, 3);   // vector path
    check_quantize(33, 4104, dt, true, 3);   // long rows, bf16 vector path on 4104 = 8·513
    check_quantize(5, 1, dt, false, 3);      // one column
  }

  // ---- gemm: awkward shapes through every path
  {
    GemmCase c(77, 131, 67);  // K % 16 != 0: the simple kernel only
    for (tk_dtype dt : {TK_F32, TK_BF16})
      for (int f = 0; f < 4; ++f) check_gemm(c, dt, Int8Path::Auto, f & 1, f & 2);
    check_refusal(c, Int8Path::Large);
    check_refusal(c, Int8Path::Small);
  }
  {
    GemmCase c(130, 257, 320);  // K = 2.5 tiles, ragged M and N, N odd (scalar stores)
    for (tk_dtype dt : {TK_F32, TK_BF16})
      for (Int8Path p : {Int8Path::Auto, Int8Path::Large, Int8Path::Large3, Int8Path::Small, Int8Path::Simple})
        for (int f = 0; f < 4; ++f) check_gemm(c, dt, p, f & 1, f & 2);
  }
  {
    GemmCase c(259, 520, 1040);  // K = 8 tiles + 16: wraps the stage ring; N even (paired stores)
    for (tk_dtype dt : {TK_F32, TK_BF16})
      for (Int8Path p : {Int8Path::Large, Int8Path::Large3, Int8Path::Small, Int8Path::Simple})
        for (int f = 0; f < 4; f += 3) check_gemm(c, dt, p, f & 1, f & 2);
  }
  {
    GemmCase c(1, 8, 16);  // one row, one k chunk
    for (Int8Path p : {Int8Path::Large, Int8Path::Small, Int8Path::Simple}) check_gemm(c, TK_BF16, p, true, true);
  }
  {
    GemmCase c(3, 5, 0);  // K = 0: y = bias (+ y)
    for (Int8Path p : {Int8Path::Large, Int8Path::Small, Int8Path::Simple}) check_gemm(c, TK_F32, p, true, true);
  }

  // ---- 8192³
  if (!no_bench) {
    GemmCase c(8192, 8192, 8192);
    bench_gemm(c, TK_BF16, Int8Path::Auto);
    if (!quick) {
      bench_gemm(c, TK_BF16, Int8Path::Large3);
      bench_gemm(c, TK_BF16, Int8Path::Small);
      bench_gemm(c, TK_F32, Int8Path::Auto);
    }
  }
  if (!no_bench)
    for (tk_dtype dt : {TK_F32, TK_BF16}) check_quantize(8192, 8192, dt, false, 10);

  std::printf("%d failure(s)\n", g_failures);
  return g_failures ? 1 : 0;
}
