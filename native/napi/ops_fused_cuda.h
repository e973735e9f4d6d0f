// The CUDA branches of the fused ops' bindings (ops_fused.cc validates the
// arguments and calls these when the tensors are on CUDA). Float tensors of a
// call share one dtype (f32 or bf16); saved statistics (lse, xa) are f32.
#pragma once
#include "tensor_wrap.h"

namespace tk {

// -> [o, lse]; kv_len (i32 [B]) already validated on the host
Napi::Value cuda_attention_forward(const Args& a, TensorWrap* q, TensorWrap* k, TensorWrap* v, TensorWrap* kv_len,
                                   int64_t B, int64_t H, int64_t Hkv, int64_t T, int64_t S, int64_t D, float scale,
                                   bool causal);
// -> [dq, dk, dv]
Napi::Value cuda_attention_backward(const Args& a, TensorWrap* q, TensorWrap* k, TensorWrap* v, TensorWrap* o,
                                    TensorWrap* lse, TensorWrap* dout, TensorWrap* kv_len, int64_t B, int64_t H,
                                    int64_t Hkv, int64_t T, int64_t S, int64_t D, float scale, bool causal);
// -> [advantages, returns]
Napi::Value cuda_gae(const Args& a, TensorWrap* r, TensorWrap* v, TensorWrap* d, TensorWrap* last, float gamma,
                     float lambda);
// -> [y [..., out], xa f32 [N, r]]
Napi::Value cuda_lora_forward(const Args& a, TensorWrap* x, TensorWrap* w, TensorWrap* la, TensorWrap* lb,
                              TensorWrap* bias, float scale, bool fifo, int64_t N, int64_t in, int64_t out, int64_t r);
// -> [gx | null, gw | null, ga | null, gb | null, gbias | null]
Napi::Value cuda_lora_backward(const Args& a, TensorWrap* x, TensorWrap* w, TensorWrap* la, TensorWrap* lb,
                               TensorWrap* xa, TensorWrap* gy, float scale, bool need_x, bool need_w, bool need_a,
                               bool need_b, bool need_bias, bool fifo, int64_t N, int64_t in, int64_t out, int64_t r);
// -> [q i8, scale f32]
Napi::Value cuda_quantize_int8(const Args& a, TensorWrap* w, int64_t axis);
Napi::Value cuda_dequantize_int8(const Args& a, TensorWrap* q, TensorWrap* scale);
Napi::Value cuda_int8_linear(const Args& a, TensorWrap* x, TensorWrap* q, TensorWrap* scale, TensorWrap* bias,
                             double threshold, int64_t N, int64_t in, int64_t out);

}  // namespace tk
