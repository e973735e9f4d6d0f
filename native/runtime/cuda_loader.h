// Finds and opens the CUDA backend library (built from kernels/ by cmake-js)
// at run time with dlopen. The core addon never links CUDA: when the library
// is missing or cannot find a device, everything runs on the CPU and
// `reason` says why.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "../include/tunekit/backend.h"

namespace tk {

struct CudaDevice {
  std::string name;
  std::string compute_capability;
  uint64_t memory_bytes = 0;
};

struct CudaStatus {
  bool built = false;
  bool available = false;
  std::string reason;
  std::string library_path;
  std::vector<CudaDevice> devices;
};

// Probes once (thread-safe); TUNEKIT_CUDA_LIB overrides the library path.
// When a device is found the backend is initialized on device 0 (or
// TUNEKIT_CUDA_DEVICE) and TUNEKIT_CUDA_SYNC=1 turns on its sync mode.
const CudaStatus& cuda_status();
// The loaded backend's table, or nullptr when CUDA is not available.
const tk_backend_api* cuda_api();
void set_addon_path(const std::string& addon_dir);

}  // namespace tk
