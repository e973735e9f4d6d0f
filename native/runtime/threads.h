// Worker-thread pool used by every CPU kernel.
// C-style interface (function pointer + context) so that kernels compiled for
// different ISAs never share template instantiations with this file.
#pragma once
#include <cstdint>

namespace tk {

// fn(ctx, begin, end) is called on disjoint chunks covering [0, n).
// Chunks are at least `grain` long; with n <= grain everything runs inline.
using RangeFn = void (*)(void* ctx, int64_t begin, int64_t end);
void parallel_for_raw(int64_t n, int64_t grain, RangeFn fn, void* ctx);

int thread_count();           // workers + the calling thread
void set_thread_count(int n); // restarts the pool (tests, TUNEKIT_THREADS)

}  // namespace tk
