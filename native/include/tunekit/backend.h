/* The C ABI between the core addon and the CUDA backend library.
 * Plain structs and function pointers only, so that the two sides can be
 * built by different compilers (g++ for the addon, nvcc for kernels/).
 * The core opens the library with dlopen and calls tk_backend_get_api.
 *
 * Conventions of every entry below:
 * - Pointers to tensor data are device pointers from `alloc` (or offsets into
 *   them); every tensor is contiguous row-major unless strides are given.
 *   Strides and offsets count elements, not bytes.
 * - Kernels are enqueued on the backend's one stream and return at once. An
 *   entry returns 0, or -1 after writing the reason to last_error() (a bad
 *   launch, an unsupported dtype). Faults inside a kernel surface at the next
 *   `synchronize` (or `memcpy_d2h`), which then returns -1 with the reason.
 * - Float tensors of an op share one dtype `dt` (TK_F32 or TK_BF16; bf16 is
 *   storage only, every kernel computes and accumulates in f32) unless an
 *   entry names another. Statistics saved for a backward (mean, rstd, lse)
 *   and losses are always f32. Index tensors are i32.
 * - The addon validates shapes before it calls; the backend trusts them.
 */
#ifndef TUNEKIT_BACKEND_H
#define TUNEKIT_BACKEND_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TK_BACKEND_ABI_VERSION 2
#define TK_MAX_DIMS 8

/* the numbering of tk::DType (native/napi/tensor_wrap.h) */
typedef enum tk_dtype { TK_F32 = 0, TK_BF16 = 1, TK_F16 = 2, TK_I8 = 3, TK_I32 = 4 } tk_dtype;

/* the numbering of tk::UnaryOp / BinaryOp / ReduceOp (native/cpu/kernels.h) */
typedef enum tk_unary_op {
  TK_NEG = 0, TK_EXP, TK_LOG, TK_SQRT, TK_SCALE, TK_POW, TK_GELU, TK_SILU, TK_RELU, TK_TANH, TK_GELU_ERF
} tk_unary_op;
typedef enum tk_binary_op { TK_ADD = 0, TK_SUB, TK_MUL, TK_DIV } tk_binary_op;
typedef enum tk_reduce_op { TK_SUM = 0, TK_MEAN, TK_MAX } tk_reduce_op;
/* GEMM epilogue activations: the forward of the unary ops of the same name */
typedef enum tk_activation { TK_ACT_NONE = 0, TK_ACT_GELU, TK_ACT_RELU, TK_ACT_SILU, TK_ACT_GELU_ERF } tk_activation;

typedef struct tk_device_info {
  char name[256];
  int cc_major, cc_minor;
  uint64_t memory_bytes;
} tk_device_info;

typedef struct tk_memory_stats {
  uint64_t allocated_bytes; /* in blocks handed out and not yet freed */
  uint64_t reserved_bytes;  /* held from the driver (allocated + cached) */
  uint64_t peak_bytes;      /* highest allocated_bytes since start or reset_peak */
  uint64_t alloc_count;     /* alloc calls served */
  uint64_t device_alloc_count; /* of which needed a cudaMalloc */
  uint64_t free_bytes, total_bytes; /* the device's, from cudaMemGetInfo */
} tk_memory_stats;

/* C[b] = alpha · opA(A[b]) · opB(B[b]) (+ beta · C[b]) (+ A2·B2 segment), then
 * + bias, activation, + residual, in that order, for b < batch.
 * opA(A) is [M, K]: A is stored [M, K] (lda ≥ K) or, with trans_a, [K, M]
 * (lda ≥ M). opB(B) is [K, N]: B stored [K, N] or, with trans_b, [N, K]. */
typedef struct tk_gemm_params {
  int64_t M, N, K, batch;
  tk_dtype dt; /* of A, B (and A2, B2) */
  const void* A;
  int64_t lda, stride_a; /* stride_a: elements between batches (0: shared) */
  int trans_a;
  const void* B;
  int64_t ldb, stride_b;
  int trans_b;
  void* C;
  int64_t ldc, stride_c;
  tk_dtype c_dt; /* TK_F32 or dt; accumulation is f32 either way */
  float alpha, beta; /* beta != 0 reads C first (gradient accumulation) */
  const void* bias;  /* [N] of c_dt, or NULL */
  tk_activation activation;
  const void* residual; /* [batch, M, N] of c_dt laid out like C, or NULL */
  /* optional second K segment, same batch: C += opA2(A2) · opB2(B2), K2 terms
   * (the low-rank update of a LoRA linear); A2 NULL when unused */
  const void* A2;
  int64_t lda2, stride_a2;
  int trans_a2;
  const void* B2;
  int64_t ldb2, stride_b2;
  int trans_b2;
  int64_t K2;
} tk_gemm_params;

/* y = x·wᵀ + scale·(x·aᵀ)·bᵀ + bias with the [N, r] product x·aᵀ kept on
 * chip. x [N, in], w [out, in], a [r, in], b [out, r], bias [out] or NULL,
 * y [N, out]; xa [N, r] (f32) receives x·aᵀ for the backward when not NULL. */
typedef struct tk_lora_params {
  tk_dtype dt;
  int64_t N, in, out, r;
  const void *x, *w, *a, *b, *bias;
  float scale;
  void* y;
  float* xa;
} tk_lora_params;

/* Flash attention. q [B, H, T, D], k, v [B, Hkv, S, D], o [B, H, T, D],
 * lse [B, H, T] (f32), kv_len [B] or NULL (device i32). With causal, query i
 * sees keys j ≤ i + (S − T); keys j ≥ kv_len[b] are masked; a row that sees
 * no key gives o = 0 and lse = -inf. The backward reads q, k, v, o, lse, dout
 * and writes dq, dk, dv (zeroing them itself). */
typedef struct tk_attention_params {
  tk_dtype dt;
  int64_t B, H, Hkv, T, S, D;
  float scale;
  int causal;
  const void *q, *k, *v;
  const int32_t* kv_len;
  void* o;
  float* lse;
  const void* dout;
  void *dq, *dk, *dv;
} tk_attention_params;

typedef struct tk_backend_api {
  int abi_version;
  /* ---- discovery (no context is created) */
  /* number of devices (>= 0), or -1 with a reason written to msg */
  int (*device_count)(char* msg, size_t msg_len);
  int (*device_info)(int device, tk_device_info* out);

  /* ---- runtime: one device and one stream per process */
  const char* (*last_error)(void); /* the reason of the last -1 (thread-local) */
  int (*init)(int device); /* creates the context and the stream; idempotent */
  /* a block of at least `bytes` (256-byte aligned) from the caching allocator;
   * on out of memory it empties the cache and retries once, then returns NULL
   * with "CUDA out of memory: tried to allocate N bytes (F free of T)" */
  void* (*alloc)(size_t bytes);
  void (*free)(void* ptr); /* back to the cache, reusable by later work on the stream */
  void (*memory_stats)(tk_memory_stats* out);
  void (*reset_peak)(void);
  void (*empty_cache)(void); /* synchronizes, then returns cached blocks to the driver */
  void (*set_sync_mode)(int on); /* 1: synchronize after every kernel (TUNEKIT_CUDA_SYNC) */
  int (*synchronize)(void);
  int (*memcpy_h2d)(void* dst, const void* src, size_t bytes); /* src may be reused on return */
  int (*memcpy_d2h)(void* dst, const void* src, size_t bytes); /* synchronizes */
  int (*memcpy_d2d)(void* dst, const void* src, size_t bytes);

  /* ---- creation and copies */
  /* y[0..n) = value (any dtype) */
  int (*fill)(void* y, tk_dtype dt, int64_t n, double value);
  /* y[0..n) uniform in [a, b) (normal = 0) or normal(mean a, std b) (normal = 1),
   * from the same counter-based bits as the CPU's fill_uniform / fill_normal
   * (native/cpu/baseline.cc): the CPU's values up to rounding */
  int (*random)(void* y, tk_dtype dt, int64_t n, uint64_t seed, int normal, float a, float b);
  /* y[i] = convert(x[i]) over the index space `sizes` (ndim ≤ TK_MAX_DIMS),
   * element i at offset Σ i_k·y_strides[k] in y and Σ i_k·x_strides[k] in x.
   * Covers clone, cast, permute, slice, slice backward, concat and expand
   * (stride 0). Any dtypes; float conversions round to nearest even. */
  int (*copy_strided)(void* y, tk_dtype ydt, const int64_t* y_strides, const void* x, tk_dtype xdt,
                      const int64_t* x_strides, int ndim, const int64_t* sizes);

  /* ---- elementwise; x, y, gy, gx: [n] */
  int (*unary_forward)(tk_unary_op op, tk_dtype dt, const void* x, void* y, int64_t n, float p);
  /* gx = gy · dy/dx, reading x and y as the op needs */
  int (*unary_backward)(tk_unary_op op, tk_dtype dt, const void* x, const void* y, const void* gy, void* gx,
                        int64_t n, float p);
  /* y (contiguous over sizes) = a op b, a and b read at their strides (0: broadcast) */
  int (*binary)(tk_binary_op op, tk_dtype dt, const void* a, const int64_t* a_strides, const void* b,
                const int64_t* b_strides, void* y, int ndim, const int64_t* sizes);
  /* y = cond != 0 ? a : b; cond of cdt (f32, i32 or i8); a, b of dt */
  int (*where)(const void* cond, tk_dtype cdt, const int64_t* c_strides, const void* a, const int64_t* a_strides,
               const void* b, const int64_t* b_strides, tk_dtype dt, void* y, int ndim, const int64_t* sizes);

  /* ---- reductions over the middle axis of x viewed as [outer, n, inner]; y [outer, inner];
   * idx (TK_MAX only, may be NULL): the first index of the maximum */
  int (*reduce_axis)(tk_reduce_op op, tk_dtype dt, const void* x, int64_t outer, int64_t n, int64_t inner, void* y,
                     int32_t* idx);
  /* gx [outer, n, inner] = 0 except gx[o, idx[o, i], i] = gy[o, i] */
  int (*max_backward)(tk_dtype dt, const void* gy, const int32_t* idx, int64_t outer, int64_t n, int64_t inner,
                      void* gx);
  /* softmax (log = 0) or logSoftmax over the middle axis of [outer, n, inner] */
  int (*softmax_forward)(tk_dtype dt, const void* x, void* y, int64_t outer, int64_t n, int64_t inner, int log);
  int (*softmax_backward)(tk_dtype dt, const void* y, const void* gy, void* gx, int64_t outer, int64_t n,
                          int64_t inner, int log);
  /* sum of squares of x[0..n) added into *acc (one f32 on the device; block
   * partials are added with atomics, so the last bits may vary run to run) */
  int (*sum_squares)(tk_dtype dt, const void* x, int64_t n, float* acc);

  /* ---- losses and normalizations (rows of the last axis) */
  /* logits [N, V] of dt, targets [N]; loss, lse [N] f32 (loss 0 for ignored rows) */
  int (*cross_entropy_forward)(tk_dtype dt, const void* logits, const int32_t* targets, int64_t N, int64_t V,
                               int32_t ignore_index, float* loss, float* lse);
  /* gx[i, :] = g_row[i] · (softmax(logits[i]) − onehot(target[i])), 0 for ignored rows; g_row f32 */
  int (*cross_entropy_backward)(tk_dtype dt, const void* logits, const float* lse, const int32_t* targets,
                                const float* g_row, int64_t N, int64_t V, int32_t ignore_index, void* gx);
  /* x, y [rows, C]; w, b [C] (b may be NULL); mean, rstd [rows] f32 */
  int (*layer_norm_forward)(tk_dtype dt, const void* x, const void* w, const void* b, int64_t rows, int64_t C,
                            float eps, void* y, float* mean, float* rstd);
  /* gw, gb [C] overwritten (either may be NULL) */
  int (*layer_norm_backward)(tk_dtype dt, const void* x, const void* w, const float* mean, const float* rstd,
                             const void* gy, int64_t rows, int64_t C, void* gx, void* gw, void* gb);
  int (*rms_norm_forward)(tk_dtype dt, const void* x, const void* w, int64_t rows, int64_t C, float eps, void* y,
                          float* rstd);
  int (*rms_norm_backward)(tk_dtype dt, const void* x, const void* w, const float* rstd, const void* gy,
                           int64_t rows, int64_t C, void* gx, void* gw);

  /* ---- lookups and position ops */
  /* y [n, dim] = table[ids[i], :]; ids checked in range by the kernel (out of range: a zero row) */
  int (*embedding_forward)(tk_dtype dt, const void* table, const int32_t* ids, int64_t n, int64_t vocab,
                           int64_t dim, void* y);
  /* gtable [vocab, dim] (f32, overwritten) = Σ over i with ids[i] = v of gy[i, :] */
  int (*embedding_backward)(tk_dtype dt, const void* gy, const int32_t* ids, int64_t n, int64_t vocab, int64_t dim,
                            float* gtable);
  /* y = x · keep / (1 − p), keep[i] = tk::uniform01(seed, i) ≥ p: the CPU's mask */
  int (*dropout)(tk_dtype dt, const void* x, void* y, int64_t n, float p, uint64_t seed);
  /* rotate-half rotary embedding; x, y [BH, T, D]; positions [T]; inverse: rotate by −angle */
  int (*rope)(tk_dtype dt, const void* x, const int32_t* positions, int64_t BH, int64_t T, int64_t D, float theta,
              int inverse, void* y);

  /* ---- dense and fused kernels */
  int (*gemm)(const tk_gemm_params* p);
  int (*lora_forward)(const tk_lora_params* p);
  int (*attention_forward)(const tk_attention_params* p);
  int (*attention_backward)(const tk_attention_params* p);
  /* symmetric absmax per row: x [rows, cols] of dt → q [rows, cols] i8, scale [rows] f32
   * (scale = max|row| / 127, q = round(x / scale) clamped to ±127; a zero row: scale 0, q 0) */
  int (*quantize_rows_int8)(tk_dtype dt, const void* x, int64_t rows, int64_t cols, int8_t* q, float* scale);
  /* y [M, N] (of dt) = (qx[M, K] · qw[N, K]ᵀ in i32) · sx[m] · sw[n] + bias[n] (+ y when accumulate) */
  int (*int8_gemm)(tk_dtype dt, const int8_t* qx, const float* sx, const int8_t* qw, const float* sw,
                   const void* bias, int64_t M, int64_t N, int64_t K, void* y, int accumulate);
  /* rewards, values, dones, adv, ret [B, T] f32; last_values [B] or NULL */
  int (*gae)(const float* rewards, const float* values, const float* dones, const float* last_values, int64_t B,
             int64_t T, float gamma, float lambda, float* adv, float* ret);

  /* ---- optimizers, in place over f32 parameters and state; g of gdt */
  int (*adamw_step)(float* p, const void* g, tk_dtype gdt, float* m, float* v, int64_t n, float lr, float b1,
                    float b2, float eps, float wd, int64_t t);
  int (*sgd_step)(float* p, const void* g, tk_dtype gdt, float* buf, int64_t n, float lr, float mu,
                  float dampening, float wd, int nesterov, int first);
  /* x[0..n) *= s */
  int (*scale_inplace)(tk_dtype dt, void* x, int64_t n, float s);
} tk_backend_api;

typedef const tk_backend_api* (*tk_backend_get_api_fn)(int abi_version);

#ifdef __cplusplus
}
#endif
#endif
