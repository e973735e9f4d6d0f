// The CPU kernels compiled for avx512 (flags set per target in binding.gyp).
#define TK_ISA_NS isa_avx512
#define TK_ISA_NAME "avx512"
#define TK_ISA_AVX512 1
#include "kernels_impl.inc"

namespace tk {
const KernelTable& kernels_avx512() { return isa_avx512::kTable; }
}  // namespace tk
