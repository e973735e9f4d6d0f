#include "baseline.h"

#include <cmath>
#include <cstring>

#include "kernels.h"

namespace tk {

// ---------------------------------------------------------------- conversion
uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

float bf16_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint32_t sign = (u >> 16) & 0x8000u;
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds past 65504: inf
  if (a < 0x38800000u) {  // result is subnormal or zero: scale so the integer part is the mantissa
    float af;
    std::memcpy(&af, &a, 4);
    float scaled = af * 16777216.0f;  // 2^24: f16 subnormal step is 2^-24
    // round half to even
    float r = std::nearbyint(scaled);
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(r));
  }
  uint32_t mant_odd = (a >> 13) & 1u;
  a += 0xc8000fffu + mant_odd;  // rebias exponent (-112 << 23) and round
  return static_cast<uint16_t>(sign | (a >> 13));
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  float f;
  if (exp == 0) {
    f = std::ldexp(static_cast<float>(mant), -24);
    uint32_t u;
    std::memcpy(&u, &f, 4);
    u |= sign;
    std::memcpy(&f, &u, 4);
    return f;
  }
  uint32_t u;
  if (exp == 31) u = sign | 0x7f800000u | (mant << 13);
  else u = sign | ((exp + 112) << 23) | (mant << 13);
  std::memcpy(&f, &u, 4);
  return f;
}

// ---------------------------------------------------------------- permute
void permute_copy(const void* x, void* y, const std::vector<int64_t>& shape,
                  const std::vector<int64_t>& dims, int64_t es) {
  const int64_t rank = static_cast<int64_t>(shape.size());
  std::vector<int64_t> in_stride(rank, 1);
  for (int64_t k = rank - 2; k >= 0; --k) in_stride[k] = in_stride[k + 1] * shape[k + 1];
  std::vector<int64_t> out_shape(rank), src_stride(rank);
  int64_t n = 1;
  for (int64_t k = 0; k < rank; ++k) {
    out_shape[k] = shape[dims[k]];
    src_stride[k] = in_stride[dims[k]];
    n *= out_shape[k];
  }
  if (n == 0) return;
  if (rank == 0) {
    std::memcpy(y, x, es);
    return;
  }
  const char* src = static_cast<const char*>(x);
  char* dst = static_cast<char*>(y);
  int64_t inner = out_shape[rank - 1], inner_stride = src_stride[rank - 1];
  int64_t rows = n / inner;
  par(rows, inner >= 1024 ? 1 : (1024 + inner - 1) / inner, [&](int64_t b, int64_t e) {
    std::vector<int64_t> idx(rank, 0);
    for (int64_t r = b; r < e; ++r) {
      // offset of row r in the source
      int64_t rem = r, off = 0;
      for (int64_t k = rank - 2; k >= 0; --k) {
        int64_t i = rem % out_shape[k];
        rem /= out_shape[k];
        off += i * src_stride[k];
      }
      char* d = dst + r * inner * es;
      if (inner_stride == 1) {
        std::memcpy(d, src + off * es, inner * es);
      } else if (es == 4) {
        const uint32_t* s = reinterpret_cast<const uint32_t*>(src) + off;
        uint32_t* dd = reinterpret_cast<uint32_t*>(d);
        for (int64_t j = 0; j < inner; ++j) dd[j] = s[j * inner_stride];
      } else if (es == 2) {
        const uint16_t* s = reinterpret_cast<const uint16_t*>(src) + off;
        uint16_t* dd = reinterpret_cast<uint16_t*>(d);
        for (int64_t j = 0; j < inner; ++j) dd[j] = s[j * inner_stride];
      } else {
        for (int64_t j = 0; j < inner; ++j) std::memcpy(d + j * es, src + (off + j * inner_stride) * es, es);
      }
    }
  });
}

// ---------------------------------------------------------------- broadcasting
int64_t BroadcastPlan::outer() const {
  int64_t n = 1;
  for (size_t k = 0; k + 1 < shape.size(); ++k) n *= shape[k];
  return n;
}

int64_t BroadcastPlan::offset(int op, int64_t o) const {
  int64_t off = 0;
  for (int64_t k = static_cast<int64_t>(shape.size()) - 2; k >= 0; --k) {
    int64_t i = o % shape[k];
    o /= shape[k];
    off += i * strides[op][k];
  }
  return off;
}

BroadcastPlan plan_broadcast(const std::vector<int64_t>& out_shape,
                             const std::vector<std::vector<int64_t>>& operand_shapes) {
  const size_t rank = out_shape.size();
  const size_t nops = operand_shapes.size();
  std::vector<std::vector<int64_t>> st(nops, std::vector<int64_t>(rank, 0));
  for (size_t o = 0; o < nops; ++o) {
    const auto& s = operand_shapes[o];
    int64_t stride = 1;
    for (size_t k = rank; k-- > 0;) {
      size_t ks = k + s.size();
      if (ks < rank) break;  // missing leading dim: stride 0
      int64_t d = s[ks - rank];
      st[o][k] = d == 1 ? 0 : stride;
      stride *= d;
    }
  }
  // drop size-1 dims, then merge neighbours contiguous for every operand
  BroadcastPlan p;
  p.strides.assign(nops, {});
  for (size_t k = 0; k < rank; ++k) {
    if (out_shape[k] == 1) continue;
    if (!p.shape.empty()) {
      bool mergeable = true;
      for (size_t o = 0; o < nops; ++o)
        if (p.strides[o].back() != st[o][k] * out_shape[k]) mergeable = false;
      if (mergeable) {
        p.shape.back() *= out_shape[k];
        for (size_t o = 0; o < nops; ++o) p.strides[o].back() = st[o][k];
        continue;
      }
    }
    p.shape.push_back(out_shape[k]);
    for (size_t o = 0; o < nops; ++o) p.strides[o].push_back(st[o][k]);
  }
  if (p.shape.empty()) {
    p.shape.push_back(1);
    for (size_t o = 0; o < nops; ++o) p.strides[o].push_back(0);
  }
  return p;
}

void expand_copy(const void* src, const std::vector<int64_t>& src_shape, void* dst,
                 const std::vector<int64_t>& out_shape, int64_t es) {
  int64_t n = 1;
  for (int64_t d : out_shape) n *= d;
  if (n == 0) return;
  BroadcastPlan p = plan_broadcast(out_shape, {src_shape});
  int64_t inner = p.inner(), s_in = p.strides[0].back();
  const char* s = static_cast<const char*>(src);
  char* d = static_cast<char*>(dst);
  par(p.outer(), inner >= 1024 ? 1 : (1024 + inner - 1) / inner, [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) {
      const char* so = s + p.offset(0, o) * es;
      char* dd = d + o * inner * es;
      if (s_in == 1) {
        std::memcpy(dd, so, inner * es);
      } else {
        for (int64_t j = 0; j < inner; ++j) std::memcpy(dd + j * es, so, es);
      }
    }
  });
}

// ---------------------------------------------------------------- random fills
void fill_uniform(float* y, int64_t n, uint64_t seed, float lo, float hi) {
  par(n, 1 << 15, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) y[i] = lo + (hi - lo) * uniform01(seed, static_cast<uint64_t>(i));
  });
}

void fill_normal(float* y, int64_t n, uint64_t seed, float mean, float std) {
  // Box-Muller on pairs (2i, 2i+1), 53-bit uniforms in double
  int64_t pairs = (n + 1) / 2;
  par(pairs, 1 << 14, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      uint64_t r1 = mix64(seed * 0xD1B54A32D192ED03ull + 2 * i);
      uint64_t r2 = mix64(seed * 0xD1B54A32D192ED03ull + 2 * i + 1);
      double u1 = (static_cast<double>(r1 >> 11) + 1.0) * (1.0 / 9007199254740992.0);  // (0, 1]
      double u2 = static_cast<double>(r2 >> 11) * (1.0 / 9007199254740992.0);
      double rad = std::sqrt(-2.0 * std::log(u1));
      double z0 = rad * std::cos(6.283185307179586 * u2), z1 = rad * std::sin(6.283185307179586 * u2);
      y[2 * i] = static_cast<float>(mean + std * z0);
      if (2 * i + 1 < n) y[2 * i + 1] = static_cast<float>(mean + std * z1);
    }
  });
}

}  // namespace tk
