// The CPU kernels compiled for scalar (flags set per target in binding.gyp).
#define TK_ISA_NS isa_scalar
#define TK_ISA_NAME "scalar"

#include "kernels_impl.inc"

namespace tk {
const KernelTable& kernels_scalar() { return isa_scalar::kTable; }
}  // namespace tk
