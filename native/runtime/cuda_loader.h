// Finds and opens the CUDA backend library (built from kernels/ by cmake-js)
// at run time with dlopen. The core addon never links CUDA: when the library
// is missing or cannot find a device, everything runs on the CPU and
// `reason` says why.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

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
const CudaStatus& cuda_status();
void set_addon_path(const std::string& addon_dir);

}  // namespace tk
