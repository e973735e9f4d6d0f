// CPU kernels that do not depend on the instruction set: dtype conversion,
// data movement (permute, block copies for slice/concat, broadcast),
// embedding gather/scatter and random fills. Pure C++, no napi.h.
#pragma once
#include <cstdint>
#include <vector>

#include "../runtime/threads.h"

namespace tk {

template <class F>
inline void par(int64_t n, int64_t grain, const F& f) {
  parallel_for_raw(
      n, grain, [](void* c, int64_t b, int64_t e) { (*static_cast<const F*>(c))(b, e); },
      const_cast<void*>(static_cast<const void*>(&f)));
}

// ---- dtype conversion (round to nearest even; NaN stays NaN, overflow goes to inf)
uint16_t f32_to_bf16(float f);
float bf16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
float f16_to_f32(uint16_t h);

// ---- permute: y = x.permute(dims); elem_size in bytes; shapes have `rank` dims
void permute_copy(const void* x, void* y, const std::vector<int64_t>& shape,
                  const std::vector<int64_t>& dims, int64_t elem_size);

// ---- strided broadcast: a view of `src` (shape src_shape, right-aligned) expanded
// to out_shape, written contiguously into dst
void expand_copy(const void* src, const std::vector<int64_t>& src_shape, void* dst,
                 const std::vector<int64_t>& out_shape, int64_t elem_size);

// ---- broadcast iteration for elementwise ops over up to three operands.
// Computes per-operand strides (0 on broadcast dims) for out_shape and merges
// dimensions that are contiguous for all operands.
struct BroadcastPlan {
  std::vector<int64_t> shape;                 // merged shape, innermost last
  std::vector<std::vector<int64_t>> strides;  // per operand, in elements
  int64_t inner() const { return shape.empty() ? 1 : shape.back(); }
  int64_t outer() const;
  // element offsets of operand k for flat outer index o (all dims but the last)
  int64_t offset(int k, int64_t o) const;
};
BroadcastPlan plan_broadcast(const std::vector<int64_t>& out_shape,
                             const std::vector<std::vector<int64_t>>& operand_shapes);

// ---- random fills, deterministic for a seed whatever the thread count
void fill_uniform(float* y, int64_t n, uint64_t seed, float lo, float hi);
void fill_normal(float* y, int64_t n, uint64_t seed, float mean, float std);

}  // namespace tk
