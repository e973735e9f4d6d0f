// Helpers of the bindings' CUDA branches: every binding validates its
// arguments once, allocates its outputs on the call's device (Args::device())
// and then calls either the CPU kernel or the CUDA backend's entry of the same
// name. A CUDA branch never reads tensor data on the host.
#pragma once
#include <string>
#include <vector>

#include "../cpu/baseline.h"
#include "../runtime/cuda_loader.h"
#include "tensor_wrap.h"

namespace tk {

// The backend's table; throws naming the op when CUDA is not available.
const tk_backend_api& cuda_backend(const Args& a);
// Throws a RangeError "op: <backend's reason>" when rc != 0.
void cuda_check(const Args& a, int rc);
inline tk_dtype tk_dt(DType d) { return static_cast<tk_dtype>(static_cast<int>(d)); }

// Calls a kernel entry of the backend and throws "op: <reason>" when it fails
// (or when the library does not provide it: the table may have holes).
template <class F, class... A>
void cuda_run(const Args& a, F fn, const char* entry, A... args) {
  if (!fn) a.range_error(std::string("the CUDA backend library has no '") + entry + "' kernel");
  cuda_check(a, fn(args...));
}
#define TK_CUDA(args, entry, ...) ::tk::cuda_run(args, ::tk::cuda_backend(args).entry, #entry, __VA_ARGS__)

// Device scratch memory for one binding call (from the caching allocator; the
// blocks go back when the scratch goes out of scope: stream-ordered reuse makes
// that safe while queued kernels still read them).
class CudaScratch {
 public:
  explicit CudaScratch(const Args& a) : a_(a), api_(cuda_backend(a)) {}
  ~CudaScratch() {
    for (void* p : blocks_) api_.free(p);
  }
  CudaScratch(const CudaScratch&) = delete;
  CudaScratch& operator=(const CudaScratch&) = delete;
  void* get(size_t bytes) {
    void* p = api_.alloc(bytes ? bytes : 1);
    if (!p) a_.range_error(api_.last_error());
    blocks_.push_back(p);
    return p;
  }
  template <class T>
  T* get(int64_t n) { return static_cast<T*>(get(size_t(n) * sizeof(T))); }

 private:
  const Args& a_;
  const tk_backend_api& api_;
  std::vector<void*> blocks_;
};

// Strides (elements) of a broadcast plan's operand k, padded to TK_MAX_DIMS;
// throws when the merged shape has more than TK_MAX_DIMS dimensions.
struct CudaStrides {
  int ndim = 0;
  int64_t sizes[TK_MAX_DIMS] = {};
  int64_t strides[3][TK_MAX_DIMS] = {};
};
CudaStrides cuda_strides(const Args& a, const BroadcastPlan& p);

// Contiguous row-major strides of a shape.
std::vector<int64_t> contiguous_strides(const Shape& s);

// Copies a small device i32 tensor to the host (synchronizes) for validation.
std::vector<int32_t> cuda_read_i32(const Args& a, const TensorWrap* t);

}  // namespace tk
