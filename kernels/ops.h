// The kernel entries of the CUDA backend, one group per .cu file. Each has the
// signature (and the contract) of the tk_backend_api member of the same name
// in native/include/tunekit/backend.h; backend.cu puts them in the table.
#pragma once
#include "tunekit/backend.h"

namespace tkc {

// ---- copy.cu
int fill(void* y, tk_dtype dt, int64_t n, double value);
int random(void* y, tk_dtype dt, int64_t n, uint64_t seed, int normal, float a, float b);
int copy_strided(void* y, tk_dtype ydt, const int64_t* y_strides, const void* x, tk_dtype xdt,
                 const int64_t* x_strides, int ndim, const int64_t* sizes);

// ---- elementwise.cu
int unary_forward(tk_unary_op op, tk_dtype dt, const void* x, void* y, int64_t n, float p);
int unary_backward(tk_unary_op op, tk_dtype dt, const void* x, const void* y, const void* gy, void* gx, int64_t n,
                   float p);
int binary(tk_binary_op op, tk_dtype dt, const void* a, const int64_t* a_strides, const void* b,
           const int64_t* b_strides, void* y, int ndim, const int64_t* sizes);
int where(const void* cond, tk_dtype cdt, const int64_t* c_strides, const void* a, const int64_t* a_strides,
          const void* b, const int64_t* b_strides, tk_dtype dt, void* y, int ndim, const int64_t* sizes);
int dropout(tk_dtype dt, const void* x, void* y, int64_t n, float p, uint64_t seed);
int scale_inplace(tk_dtype dt, void* x, int64_t n, float s);

// ---- reduce.cu
int reduce_axis(tk_reduce_op op, tk_dtype dt, const void* x, int64_t outer, int64_t n, int64_t inner, void* y,
                int32_t* idx);
int max_backward(tk_dtype dt, const void* gy, const int32_t* idx, int64_t outer, int64_t n, int64_t inner, void* gx);
int softmax_forward(tk_dtype dt, const void* x, void* y, int64_t outer, int64_t n, int64_t inner, int log);
int softmax_backward(tk_dtype dt, const void* y, const void* gy, void* gx, int64_t outer, int64_t n, int64_t inner,
                     int log);
int sum_squares(tk_dtype dt, const void* x, int64_t n, float* acc);

// ---- loss.cu
int cross_entropy_forward(tk_dtype dt, const void* logits, const int32_t* targets, int64_t N, int64_t V,
                          int32_t ignore_index, float* loss, float* lse);
int cross_entropy_backward(tk_dtype dt, const void* logits, const float* lse, const int32_t* targets,
                           const float* g_row, int64_t N, int64_t V, int32_t ignore_index, void* gx);

// ---- norm.cu
int layer_norm_forward(tk_dtype dt, const void* x, const void* w, const void* b, int64_t rows, int64_t C, float eps,
                       void* y, float* mean, float* rstd);
int layer_norm_backward(tk_dtype dt, const void* x, const void* w, const float* mean, const float* rstd,
                        const void* gy, int64_t rows, int64_t C, void* gx, void* gw, void* gb);
int rms_norm_forward(tk_dtype dt, const void* x, const void* w, int64_t rows, int64_t C, float eps, void* y,
                     float* rstd);
int rms_norm_backward(tk_dtype dt, const void* x, const void* w, const float* rstd, const void* gy, int64_t rows,
                      int64_t C, void* gx, void* gw);

// ---- embedding.cu
int embedding_forward(tk_dtype dt, const void* table, const int32_t* ids, int64_t n, int64_t vocab, int64_t dim,
                      void* y);
int embedding_backward(tk_dtype dt, const void* gy, const int32_t* ids, int64_t n, int64_t vocab, int64_t dim,
                       float* gtable);
int rope(tk_dtype dt, const void* x, const int32_t* positions, int64_t BH, int64_t T, int64_t D, float theta,
         int inverse, void* y);

// ---- gemm.cu, lora.cu
int gemm(const tk_gemm_params* p);
int lora_forward(const tk_lora_params* p);

// ---- attention.cu
int attention_forward(const tk_attention_params* p);
int attention_backward(const tk_attention_params* p);

// ---- int8.cu
int quantize_rows_int8(tk_dtype dt, const void* x, int64_t rows, int64_t cols, int8_t* q, float* scale);
int int8_gemm(tk_dtype dt, const int8_t* qx, const float* sx, const int8_t* qw, const float* sw, const void* bias,
              int64_t M, int64_t N, int64_t K, void* y, int accumulate);

// ---- gae.cu
int gae(const float* rewards, const float* values, const float* dones, const float* last_values, int64_t B,
        int64_t T, float gamma, float lambda, float* adv, float* ret);

// ---- optim.cu
int adamw_step(float* p, const void* g, tk_dtype gdt, float* m, float* v, int64_t n, float lr, float b1, float b2,
               float eps, float wd, int64_t t);
int sgd_step(float* p, const void* g, tk_dtype gdt, float* buf, int64_t n, float lr, float mu, float dampening,
             float wd, int nesterov, int first);

}  // namespace tkc
