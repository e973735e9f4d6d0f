// Optimizer steps in place over f32 parameters and state, the gradient of
// dtype gdt (f32 or bf16): one fused pass each, the formulas of
// native/cpu/optim.inc (torch.optim semantics).
#include <cmath>

#include "common.cuh"
#include "ops.h"

namespace tkc {
namespace {

constexpr int kThreads = 256;

// AdamW (decoupled weight decay), step t ≥ 1; step = lr / (1 − b1^t),
// inv_sqrt_bc2 = 1 / sqrt(1 − b2^t) (in double on the host), decay = 1 − lr·wd:
//   m = b1 m + (1 − b1) g ; v = b2 v + (1 − b2) g²
//   p = p · decay − step · m / (sqrt(v) · inv_sqrt_bc2 + eps)
template <class G>
__global__ void adamw_kernel(float* __restrict__ p, const G* __restrict__ g, float* __restrict__ m,
                             float* __restrict__ v, int64_t n, float b1, float b2, float eps, float step,
                             float inv_sqrt_bc2, float decay) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float gi = to_f32<G>(g[i]);
    const float mi = b1 * m[i] + (1.0f - b1) * gi;
    const float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay - step * mi / (sqrtf(vi) * inv_sqrt_bc2 + eps);
  }
}

// SGD with momentum: d = g + wd p ; buf = mu buf + (1 − dampening) d (buf = d
// on the first step) ; d = nesterov ? d + mu buf : buf ; p −= lr d. No
// momentum (mu = 0): buf is neither read nor written.
template <class G>
__global__ void sgd_kernel(float* __restrict__ p, const G* __restrict__ g, float* __restrict__ buf, int64_t n,
                           float lr, float mu, float dampening, float wd, bool nesterov, bool first) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float d = to_f32<G>(g[i]) + wd * p[i];
    if (mu != 0.0f) {
      const float bi = first ? d : mu * buf[i] + (1.0f - dampening) * d;
      buf[i] = bi;
      d = nesterov ? d + mu * bi : bi;
    }
    p[i] -= lr * d;
  }
}

}  // namespace

int adamw_step(float* p, const void* g, tk_dtype gdt, float* m, float* v, int64_t n, float lr, float b1, float b2,
               float eps, float wd, int64_t t) {
  if (n <= 0) return 0;
  const double bc1 = 1.0 - std::pow(static_cast<double>(b1), static_cast<double>(t));
  const double bc2 = 1.0 - std::pow(static_cast<double>(b2), static_cast<double>(t));
  const float step = static_cast<float>(lr / bc1), inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  const float decay = 1.0f - lr * wd;
  TK_DISPATCH_FLOAT("adamw_step", gdt, {
    adamw_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(p, static_cast<const T*>(g), m, v, n, b1, b2, eps,
                                                                      step, inv_sqrt_bc2, decay);
  });
  return launched("adamw_step");
}

int sgd_step(float* p, const void* g, tk_dtype gdt, float* buf, int64_t n, float lr, float mu, float dampening,
             float wd, int nesterov, int first) {
  if (n <= 0) return 0;
  TK_DISPATCH_FLOAT("sgd_step", gdt, {
    sgd_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(p, static_cast<const T*>(g), buf, n, lr, mu,
                                                                    dampening, wd, nesterov != 0, first != 0);
  });
  return launched("sgd_step");
}

}  // namespace tkc
