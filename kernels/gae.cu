// Generalized advantage estimation (PPO), f32; rewards, values, dones, adv,
// ret [B, T] row-major, last_values [B] or NULL (0). As native/cpu/gae.inc:
//   delta_t = r_t + gamma · V_{t+1} · (1 − done_t) − V_t,   V_T = last_values
//   A_t     = delta_t + (gamma · lambda) · (1 − done_t) · A_{t+1},   A_T = 0
//   ret_t   = A_t + V_t
// Exact: the textbook reversed loop in f32, one rounding per operation, left
// to right as written (gamma · lambda rounded once), no FMA contraction
// (__fmul_rn / __fadd_rn are never fused). tests/ops/fused/gae.test.ts checks
// the CPU bit for bit; kernels/dev/gae.cu checks this kernel the same way.
//
// Layout: the recursion is serial in t, so one thread walks one row; but a
// thread per row reading [B, T] directly would load T floats apart (no
// coalescing). So a block takes kGaeRows rows and walks time backwards in
// tiles of kGaeChunk steps:
//   1. load: warp w copies row w's tile of r, v, d into shared memory
//      (coalesced 128-byte lines), plus V at the step after the tile;
//   2. pre-pass (all threads, parallel): delta_t and the coefficient
//      c_t = (gamma · lambda) · (1 − done_t) in place of r and d (the same
//      operations as the serial loop, just done by another thread);
//   3. recurrence: lanes 0..kGaeRows−1 of warp 0 run A = delta + c · A over
//      the tile, one row each (two dependent operations per step);
//   4. store: warp w writes row w's adv and ret = A + V (coalesced).
// Several blocks per SM overlap one block's recurrence with others' loads.
#include "common.cuh"
#include "ops.h"

namespace tkc {
namespace {

constexpr int kGaeRows = 8;                // rows per block, one warp each for loads and stores
constexpr int kGaeChunk = 256;             // time steps per staged tile
constexpr int kGaePitch = kGaeChunk + 1;   // odd pitch: the recurrence lanes (one row each) hit distinct banks
constexpr int kGaeThreads = kGaeRows * 32;

__global__ void __launch_bounds__(kGaeThreads)
    gae_kernel(const float* __restrict__ rewards, const float* __restrict__ values, const float* __restrict__ dones,
               const float* __restrict__ last_values, int64_t B, int64_t T, float gamma, float gl,
               float* __restrict__ adv, float* __restrict__ ret) {
  // [row][step] tiles: rewards → delta → A; values (one more: V after the tile); dones → coefficient
  __shared__ float s_a[kGaeRows][kGaePitch], s_v[kGaeRows][kGaePitch], s_c[kGaeRows][kGaePitch];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t nchunks = (T + kGaeChunk - 1) / kGaeChunk;
  for (int64_t row0 = int64_t(blockIdx.x) * kGaeRows; row0 < B; row0 += int64_t(gridDim.x) * kGaeRows) {
    const int64_t row = row0 + warp;  // the row this warp moves
    const bool has_row = row < B;
    const bool rec = warp == 0 && lane < kGaeRows && row0 + lane < B;  // runs the recurrence of row0 + lane
    float a = 0.0f;                                                   // A_{t+1}, carried across tiles
    for (int64_t ch = nchunks - 1; ch >= 0; --ch) {
      const int64_t t0 = ch * kGaeChunk;
      const int w = static_cast<int>(T - t0 < kGaeChunk ? T - t0 : kGaeChunk);  // steps in this tile
      const int64_t off = row * T + t0;
      // 1. load
      if (has_row) {
#pragma unroll
        for (int k = 0; k < kGaeChunk / 32; ++k) {
          const int j = lane + 32 * k;
          if (j < w) {
            s_a[warp][j] = rewards[off + j];
            s_v[warp][j] = values[off + j];
            s_c[warp][j] = dones[off + j];
          }
        }
        if (lane == 0)  // V_{t0 + w}: the next tile's first value, or last_values past the end
          s_v[warp][w] = t0 + w < T ? values[off + w] : (last_values ? last_values[row] : 0.0f);
      }
      __syncwarp();
      // 2. pre-pass over the warp's own row
      if (has_row) {
#pragma unroll
        for (int k = 0; k < kGaeChunk / 32; ++k) {
          const int j = lane + 32 * k;
          if (j < w) {
            const float nd = __fsub_rn(1.0f, s_c[warp][j]);
            // delta = r + gamma · V_{t+1} · nd − V_t, left to right
            s_a[warp][j] = __fsub_rn(__fadd_rn(s_a[warp][j], __fmul_rn(__fmul_rn(gamma, s_v[warp][j + 1]), nd)),
                                     s_v[warp][j]);
            s_c[warp][j] = __fmul_rn(gl, nd);
          }
        }
      }
      __syncthreads();
      // 3. recurrence, one row per lane: A_t = delta_t + c_t · A_{t+1}
      if (rec) {
        float* da = s_a[lane];
        const float* c = s_c[lane];
#pragma unroll 8
        for (int j = w - 1; j >= 0; --j) {
          a = __fadd_rn(da[j], __fmul_rn(c[j], a));
          da[j] = a;
        }
      }
      __syncthreads();
      // 4. store. No barrier after it: the next tile's loads by this warp touch
      // only its own row (program order), and the next recurrence waits for
      // the barrier after the next pre-pass, which every warp reaches after
      // its store.
      if (has_row) {
#pragma unroll
        for (int k = 0; k < kGaeChunk / 32; ++k) {
          const int j = lane + 32 * k;
          if (j < w) {
            const float av = s_a[warp][j];
            adv[off + j] = av;
            ret[off + j] = __fadd_rn(av, s_v[warp][j]);
          }
        }
      }
    }
    __syncthreads();  // (the next row group's first load must not pass this group's last store reads)
  }
}

}  // namespace

int gae(const float* rewards, const float* values, const float* dones, const float* last_values, int64_t B, int64_t T,
        float gamma, float lambda, float* adv, float* ret) {
  if (B <= 0 || T <= 0) return 0;
  const float gl = gamma * lambda;  // rounded once, as the CPU
  gae_kernel<<<grid_for(ceil_div(B, kGaeRows), 1), kGaeThreads, 0, stream()>>>(rewards, values, dones, last_values, B,
                                                                               T, gamma, gl, adv, ret);
  return launched("gae");
}

}  // namespace tkc
