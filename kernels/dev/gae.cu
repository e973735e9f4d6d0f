// Check and bench of the CUDA gae kernel (kernels/gae.cu). Needs a GPU.
//   build-cuda/dev/gae
// Correctness: bit equality with the textbook reversed loop in f32 on the host
// (one rounding per operation, the kernel's contract), on random rewards and
// values with dones scattered through the rows (and forced at the first and
// last step of some rows), with and without last_values, at odd sizes
// (B = 37, T = 123), sizes around the kernel's 256-step tiles, and the bench
// size. Speed: B = 4096, T = 1024 against api().memcpy_d2d moving the same
// number of bytes (reads + writes) in the same run; target ≥ 70 % of copy.
#include <cstring>

#include "harness.h"

namespace {

using dev::api;
using dev::ok;

// rounds x to f32 (a volatile store): no contraction of the operations below into FMA
inline float rn(float x) {
  volatile float v = x;
  return v;
}

// the textbook loop, left to right, gamma · lambda rounded once
void gae_host(const std::vector<float>& r, const std::vector<float>& v, const std::vector<float>& d,
              const float* last, int64_t B, int64_t T, float gamma, float lambda, std::vector<float>& adv,
              std::vector<float>& ret) {
  const float gl = rn(gamma * lambda);
  for (int64_t b = 0; b < B; ++b) {
    float a = 0.0f, vnext = last ? last[b] : 0.0f;
    for (int64_t t = T - 1; t >= 0; --t) {
      const int64_t k = b * T + t;
      const float nd = rn(1.0f - d[k]);
      const float delta = rn(rn(r[k] + rn(rn(gamma * vnext) * nd)) - v[k]);
      a = rn(delta + rn(rn(gl * nd) * a));
      adv[k] = a;
      ret[k] = rn(a + v[k]);
      vnext = v[k];
    }
  }
}

// dones: ~5 % ones anywhere, plus the first step of every 3rd row and the last of every 4th
std::vector<float> make_dones(int64_t B, int64_t T, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  std::vector<float> d(size_t(B * T));
  for (auto& x : d) x = u(g) < 0.05f ? 1.0f : 0.0f;
  for (int64_t b = 0; b < B; ++b) {
    if (b % 3 == 0) d[size_t(b * T)] = 1.0f;
    if (b % 4 == 1) d[size_t(b * T + T - 1)] = 1.0f;
  }
  return d;
}

struct Case {
  int64_t B, T;
  bool last;
};

// runs one case: checks bit equality, times the kernel (and, for the bench
// case, the copy baseline into *ms_copy); returns the kernel's mean ms
double run_case(const Case& c, bool timed, double* ms_copy) {
  const int64_t B = c.B, T = c.T, n = B * T;
  const float gamma = 0.99f, lambda = 0.95f;
  std::vector<float> r = dev::randn(size_t(n), 1000 + uint64_t(B * 7 + T), 1.0f);
  std::vector<float> v = dev::randn(size_t(n), 2000 + uint64_t(B * 7 + T), 2.0f);
  std::vector<float> d = make_dones(B, T, 3000 + uint64_t(B * 7 + T));
  std::vector<float> lv = dev::randn(size_t(B), 4000 + uint64_t(B), 2.0f);
  void* dr = dev::upload(r, TK_F32);
  void* dv = dev::upload(v, TK_F32);
  void* dd = dev::upload(d, TK_F32);
  void* dl = c.last ? dev::upload(lv, TK_F32) : nullptr;
  void* da = dev::poisoned(size_t(n), TK_F32);
  void* dt = dev::poisoned(size_t(n), TK_F32);
  // through the ABI table once the entry is registered there, else the kernel entry itself
  auto gae_fn = api().gae ? api().gae : &tkc::gae;
  auto call = [&] {
    ok(gae_fn(static_cast<const float*>(dr), static_cast<const float*>(dv), static_cast<const float*>(dd),
              static_cast<const float*>(dl), B, T, gamma, lambda, static_cast<float*>(da), static_cast<float*>(dt)),
       "gae");
  };
  call();
  ok(api().synchronize(), "synchronize");
  std::vector<float> adv = dev::download(da, size_t(n), TK_F32), ret = dev::download(dt, size_t(n), TK_F32);
  std::vector<float> radv(static_cast<size_t>(n)), rret(static_cast<size_t>(n));
  gae_host(r, v, d, c.last ? lv.data() : nullptr, B, T, gamma, lambda, radv, rret);
  // bit equality; on a mismatch the error printed is the relative norm error
  int64_t bad = 0, first_bad = -1;
  for (int64_t i = 0; i < n; ++i) {
    const bool same = std::memcmp(&adv[size_t(i)], &radv[size_t(i)], 4) == 0 &&
                      std::memcmp(&ret[size_t(i)], &rret[size_t(i)], 4) == 0;
    if (!same) {
      if (first_bad < 0) first_bad = i;
      ++bad;
    }
  }
  double err = 0.0;
  if (bad) {
    std::vector<double> ref(radv.begin(), radv.end());
    ref.insert(ref.end(), rret.begin(), rret.end());
    std::vector<float> got(adv);
    got.insert(got.end(), ret.begin(), ret.end());
    err = dev::rel_err(got, ref);
    if (!(err > 0)) err = 1.0;  // differing bits that the norm does not see (NaN, -0): still a failure
    std::printf("  %lld of %lld elements differ; first at b = %lld, t = %lld: adv %.9g (want %.9g), ret %.9g (want %.9g)\n",
                (long long)bad, (long long)n, (long long)(first_bad / T), (long long)(first_bad % T),
                adv[size_t(first_bad)], radv[size_t(first_bad)], ret[size_t(first_bad)], rret[size_t(first_bad)]);
  }
  const double bytes = 5.0 * double(n) * 4.0 + (c.last ? double(B) * 4.0 : 0.0);  // 3 in, 2 out (+ last_values)
  const double ms = dev::time_ms(call, timed ? 50 : 10, timed ? 5 : 2);
  if (timed) {
    // the copy baseline: memcpy_d2d of half the bytes reads and writes as many bytes in all
    const size_t half = size_t(bytes / 2.0) / 4 * 4;
    void* src = api().alloc(half);
    void* dst = api().alloc(half);
    if (!src || !dst) {
      std::fprintf(stderr, "alloc: %s\n", api().last_error());
      std::exit(2);
    }
    ok(api().fill(src, TK_F32, int64_t(half / 4), 1.0), "fill");
    *ms_copy = dev::time_ms([&] { ok(api().memcpy_d2d(dst, src, half), "memcpy_d2d"); }, 50, 5);
    api().free(src);
    api().free(dst);
  }
  char shape[64];
  std::snprintf(shape, sizeof(shape), "[%lld, %lld]%s", (long long)B, (long long)T, c.last ? " +last" : "");
  dev::report("gae", shape, TK_F32, ms, bytes, false, err, 0.0);
  for (void* p : {dr, dv, dd, dl, da, dt})
    if (p) api().free(p);
  return ms;
}

}  // namespace

int main() {
  const Case cases[] = {
      {37, 123, true}, {37, 123, false}, {1, 1, true},     {3, 1, false},     {5, 256, true},
      {9, 257, false}, {17, 1000, true}, {64, 512, false}, {130, 769, true},
  };
  double unused = 0.0;
  for (const Case& c : cases) run_case(c, false, &unused);
  double ms_copy = 0.0;
  const double ms = run_case({4096, 1024, true}, true, &ms_copy);
  const double bytes = 5.0 * 4096.0 * 1024.0 * 4.0 + 4096.0 * 4.0;
  const double gbs = bytes / (ms * 1e-3) / 1e9, copy_gbs = bytes / (ms_copy * 1e-3) / 1e9;
  std::printf("%-22s %-28s %-5s %9.4f ms %9.2f GB/s (memcpy_d2d of %.1f MB, read + write counted)\n", "copy (baseline)",
              "same bytes", "f32", ms_copy, copy_gbs, bytes / 2e6);
  const double pct = 100.0 * gbs / copy_gbs;
  std::printf("gae at B = 4096, T = 1024: %.1f %% of copy bandwidth (target >= 70 %%)%s\n", pct,
              pct >= 70.0 ? "" : "  BELOW TARGET");
  if (dev::g_failures) std::printf("%d case(s) FAILED\n", dev::g_failures);
  return dev::g_failures ? 1 : 0;
}
