// The CPU kernels compiled for avx2 (flags set per target in binding.gyp).
#define TK_ISA_NS isa_avx2
#define TK_ISA_NAME "avx2"
#define TK_ISA_AVX2 1
#include "kernels_impl.inc"

namespace tk {
const KernelTable& kernels_avx2() { return isa_avx2::kTable; }
}  // namespace tk
