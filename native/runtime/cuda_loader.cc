#include "cuda_loader.h"

#include <dlfcn.h>
#include <sys/stat.h>

#include <cstdlib>
#include <mutex>

#include "../include/tunekit/backend.h"

namespace tk {
namespace {
std::string g_addon_dir;
std::once_flag g_once;
CudaStatus g_status;
const tk_backend_api* g_api = nullptr;

bool file_exists(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

void probe() {
  std::string path;
  if (const char* env = std::getenv("TUNEKIT_CUDA_LIB")) {
    path = env;
  } else {
    // next to the addon (build/Release) or in build-cuda/ of the package
    const char* candidates[] = {"/libtunekit_cuda.so", "/../../build-cuda/libtunekit_cuda.so",
                                "/../../build-cuda/Release/libtunekit_cuda.so"};
    for (const char* c : candidates)
      if (!g_addon_dir.empty() && file_exists(g_addon_dir + c)) {
        path = g_addon_dir + c;
        break;
      }
  }
  if (path.empty() || !file_exists(path)) {
    g_status.reason = path.empty()
                          ? "no library: the CUDA backend (libtunekit_cuda.so) was not built (nvcc not found at install, or TUNEKIT_CUDA=0)"
                          : "no library: " + path + " does not exist";
    return;
  }
  g_status.built = true;
  g_status.library_path = path;
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* e = dlerror();
    g_status.reason = std::string("library failed to load: ") + (e ? e : "unknown dlopen error");
    return;
  }
  auto get_api = reinterpret_cast<tk_backend_get_api_fn>(dlsym(h, "tk_backend_get_api"));
  if (!get_api) {
    g_status.reason = "library is not a tunekit CUDA backend (no tk_backend_get_api symbol)";
    return;
  }
  const tk_backend_api* api = get_api(TK_BACKEND_ABI_VERSION);
  if (!api || api->abi_version != TK_BACKEND_ABI_VERSION) {
    g_status.reason = "library was built for another backend ABI version";
    return;
  }
  // the runtime entries must all be there (a kernel entry may be missing: the
  // op that needs it then throws)
  if (!api->device_count || !api->device_info || !api->last_error || !api->init || !api->alloc || !api->free ||
      !api->memory_stats || !api->reset_peak || !api->empty_cache || !api->set_sync_mode || !api->synchronize ||
      !api->memcpy_h2d || !api->memcpy_d2h || !api->memcpy_d2d || !api->fill) {
    g_status.reason = "library is an incomplete tunekit CUDA backend (a runtime entry is missing)";
    return;
  }
  char msg[512] = {0};
  int count = api->device_count(msg, sizeof(msg));
  if (count <= 0) {
    g_status.reason = msg[0] ? msg : "no device";
    return;
  }
  for (int i = 0; i < count; ++i) {
    tk_device_info di{};
    if (api->device_info(i, &di) != 0) continue;
    CudaDevice d;
    d.name = di.name;
    d.compute_capability = std::to_string(di.cc_major) + "." + std::to_string(di.cc_minor);
    d.memory_bytes = di.memory_bytes;
    g_status.devices.push_back(d);
  }
  if (g_status.devices.empty()) {
    g_status.reason = "no device";
    return;
  }
  int device = 0;
  if (const char* env = std::getenv("TUNEKIT_CUDA_DEVICE")) device = std::atoi(env);
  if (device < 0 || device >= int(g_status.devices.size())) {
    g_status.reason = "TUNEKIT_CUDA_DEVICE=" + std::to_string(device) + " is not one of the " +
                      std::to_string(g_status.devices.size()) + " devices";
    return;
  }
  if (api->init(device) != 0) {
    g_status.reason = std::string("device ") + std::to_string(device) + " failed to start: " + api->last_error();
    return;
  }
  if (const char* env = std::getenv("TUNEKIT_CUDA_SYNC")) api->set_sync_mode(env[0] == '1');
  g_api = api;
  g_status.available = true;
}
}  // namespace

const tk_backend_api* cuda_api() {
  std::call_once(g_once, probe);
  return g_api;
}

void set_addon_path(const std::string& dir) { g_addon_dir = dir; }

const CudaStatus& cuda_status() {
  std::call_once(g_once, probe);
  return g_status;
}

}  // namespace tk
