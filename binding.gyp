{
  # The core addon. Portable: no -march=native. The CPU kernels are compiled
  # three times (scalar, AVX2+FMA, AVX-512) as separate static libraries and
  # chosen at load time from cpuid (native/runtime/isa.cc).
  "target_defaults": {
    "cflags_cc": ["-std=c++17", "-O3", "-fno-math-errno", "-fopenmp-simd", "-Wall", "-Wno-unused-function"],
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
    "cflags!": ["-fno-exceptions"],
    "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except_all"],
    "defines": ["NAPI_VERSION=8"]
  },
  "targets": [
    {
      "target_name": "tunekit_isa_scalar",
      "type": "static_library",
      "cflags": ["-fPIC", "-fno-trapping-math"],
      "sources": ["native/cpu/isa_scalar.cc"]
    },
    {
      "target_name": "tunekit_isa_avx2",
      "type": "static_library",
      "cflags": ["-fPIC", "-fno-trapping-math", "-mavx2", "-mfma", "-mf16c"],
      "sources": ["native/cpu/isa_avx2.cc"]
    },
    {
      "target_name": "tunekit_isa_avx512",
      "type": "static_library",
      "cflags": ["-fPIC", "-fno-trapping-math", "-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mavx2", "-mfma", "-mf16c", "-mprefer-vector-width=512"],
      "sources": ["native/cpu/isa_avx512.cc"]
    },
    {
      "target_name": "tunekit",
      "dependencies": ["tunekit_isa_scalar", "tunekit_isa_avx2", "tunekit_isa_avx512"],
      "sources": [
        "native/addon.cc",
        "native/napi/tensor_wrap.cc",
        "native/napi/cuda_storage.cc",
        "native/napi/cuda_ops.cc",
        "native/napi/ops_fused_cuda.cc",
        "native/napi/ops_tensor.cc",
        "native/napi/ops_math.cc",
        "native/napi/runtime.cc",
        "native/napi/ops_io.cc",
        "native/napi/ops_fused.cc",
        "native/napi/ops_optim.cc",
        "native/cpu/baseline.cc",
        "native/runtime/threads.cc",
        "native/runtime/isa.cc",
        "native/runtime/cuda_loader.cc"
      ],
      "libraries": ["-ldl", "-lpthread"]
    }
  ]
}
