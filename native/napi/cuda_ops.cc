#include "cuda_ops.h"

namespace tk {

const tk_backend_api& cuda_backend(const Args& a) {
  const tk_backend_api* api = cuda_api();
  if (!api) a.type_error("CUDA is not available: " + cuda_status().reason);
  return *api;
}

void cuda_check(const Args& a, int rc) {
  if (rc == 0) return;
  const tk_backend_api* api = cuda_api();
  a.range_error(api ? api->last_error() : "CUDA backend error");
}

CudaStrides cuda_strides(const Args& a, const BroadcastPlan& p) {
  CudaStrides c;
  if (p.shape.size() > TK_MAX_DIMS)
    a.range_error("broadcasting over " + std::to_string(p.shape.size()) + " non-mergeable dimensions; CUDA supports " +
                  std::to_string(TK_MAX_DIMS));
  c.ndim = static_cast<int>(p.shape.size());
  for (int k = 0; k < c.ndim; ++k) {
    c.sizes[k] = p.shape[k];
    for (size_t op = 0; op < p.strides.size() && op < 3; ++op) c.strides[op][k] = p.strides[op][k];
  }
  if (c.ndim == 0) {  // a 0-d result: one element
    c.ndim = 1;
    c.sizes[0] = 1;
  }
  return c;
}

std::vector<int64_t> contiguous_strides(const Shape& s) {
  std::vector<int64_t> st(s.size());
  int64_t acc = 1;
  for (size_t k = s.size(); k-- > 0;) {
    st[k] = acc;
    acc *= s[k];
  }
  return st;
}

std::vector<int32_t> cuda_read_i32(const Args& a, const TensorWrap* t) {
  std::vector<int32_t> h(static_cast<size_t>(t->numel));
  if (t->numel) cuda_check(a, cuda_backend(a).memcpy_d2h(h.data(), t->raw(), size_t(t->numel) * 4));
  return h;
}

}  // namespace tk
