// Internal entry of int8.cu for the kernels/dev harness: int8_gemm with the
// kernel path forced, so that every path is checked on any shape. The backend
// itself only calls tkc::int8_gemm (ops.h), which picks the path.
#pragma once
#include "common.cuh"

namespace tkc {

enum class Int8Path {
  Auto = 0,   // what int8_gemm picks
  Large = 1,  // tensor cores, 128x256 tile, 8 warps, the stage count the device allows (4 on H100, 3 on A100)
  Large3 = 2, // the same with 3 stages
  Small = 3,  // tensor cores, 64x128 tile, 4 warps, 4 stages (for grids that would not fill the device)
  Simple = 4, // dp4a on shared-memory tiles: any K, any alignment
};

// The path Auto takes for these arguments (never Auto).
Int8Path int8_gemm_pick(const int8_t* qx, const int8_t* qw, int64_t M, int64_t N, int64_t K);

// int8_gemm through `path`; a tensor-core path on arguments it cannot take
// (K % 16 != 0, operands not 16-byte aligned) fails with last_error set.
int int8_gemm_path(Int8Path path, tk_dtype dt, const int8_t* qx, const float* sx, const int8_t* qw, const float* sw,
                   const void* bias, int64_t M, int64_t N, int64_t K, void* y, int accumulate);

}  // namespace tkc
