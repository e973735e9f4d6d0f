// A small persistent thread pool. The calling thread takes chunk 0 and the
// workers take the rest; completion is an atomic counter (no per-call alloc).
#include "threads.h"

#include <sched.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace tk {
namespace {

thread_local bool t_in_parallel = false;  // nested parallel_for runs inline

struct Pool {
  std::vector<std::thread> workers;
  std::mutex mu;
  std::condition_variable cv;
  // current job
  RangeFn fn = nullptr;
  void* ctx = nullptr;
  int64_t n = 0;
  int chunks = 0;
  // high 32 bits: job generation, low 32 bits: next chunk to claim. A worker
  // that wakes late can never claim a chunk of a newer job with a stale view.
  std::atomic<uint64_t> claim{0};
  std::atomic<int> remaining{0};
  uint64_t generation = 0;
  std::atomic<uint64_t> published{0};  // == generation, readable without the lock
  bool stop = false;
  std::atomic<bool> stop_flag{false};
  int size = 1;  // including the caller

  struct Job {
    RangeFn fn;
    void* ctx;
    int64_t n;
    int chunks;
    uint32_t gen;
  };

  void run_chunks(const Job& job) {
    t_in_parallel = true;
    struct Reset {
      ~Reset() { t_in_parallel = false; }
    } reset;
    for (;;) {
      uint64_t v = claim.load(std::memory_order_acquire);
      for (;;) {
        if (static_cast<uint32_t>(v >> 32) != job.gen) return;
        if (static_cast<int>(v & 0xffffffffu) >= job.chunks) return;
        if (claim.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel)) break;
      }
      int c = static_cast<int>(v & 0xffffffffu);
      int64_t b = job.n * c / job.chunks, e = job.n * (c + 1) / job.chunks;
      job.fn(job.ctx, b, e);
      remaining.fetch_sub(1, std::memory_order_release);
    }
  }

  void worker_loop() {
    uint64_t seen = 0;
    for (;;) {
      Job job;
      // Back-to-back parallel regions (GEMM packs then computes, op after op)
      // follow each other within microseconds: spin briefly before sleeping,
      // so that a new job does not pay a futex wake-up.
      for (int spin = 0; spin < 4096 && published.load(std::memory_order_acquire) == seen && !stop_flag.load(std::memory_order_relaxed); ++spin) {
#if defined(__x86_64__)
        __builtin_ia32_pause();
#endif
      }
      {
        std::unique_lock<std::mutex> lk(mu);
        cv.wait(lk, [&] { return stop || generation != seen; });
        if (stop) return;
        seen = generation;
        job = Job{fn, ctx, n, chunks, static_cast<uint32_t>(generation)};
      }
      run_chunks(job);
    }
  }

  void start(int threads) {
    size = threads < 1 ? 1 : threads;
    stop = false;
    stop_flag.store(false);
    for (int i = 1; i < size; ++i) workers.emplace_back([this] { worker_loop(); });
  }

  void shutdown() {
    {
      std::lock_guard<std::mutex> lk(mu);
      stop = true;
      stop_flag.store(true);
    }
    cv.notify_all();
    for (auto& t : workers) t.join();
    workers.clear();
  }
};

int default_threads() {
  if (const char* env = std::getenv("TUNEKIT_THREADS")) {
    int v = std::atoi(env);
    if (v >= 1 && v <= 1024) return v;
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int c = CPU_COUNT(&set);
    if (c >= 1) return c;
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc ? static_cast<int>(hc) : 1;
}

Pool* g_pool = nullptr;
std::mutex g_call_mu;  // one parallel job at a time (worker_threads share the pool)

Pool& pool() {
  if (!g_pool) {
    g_pool = new Pool();  // intentionally leaked: outlives every addon instance
    g_pool->start(default_threads());
  }
  return *g_pool;
}

}  // namespace

int thread_count() { return pool().size; }

void set_thread_count(int n) {
  std::lock_guard<std::mutex> lk(g_call_mu);
  Pool& p = pool();
  p.shutdown();
  p.start(n);
}

void parallel_for_raw(int64_t n, int64_t grain, RangeFn fn, void* ctx) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  Pool& p = pool();
  int64_t max_chunks = (n + grain - 1) / grain;
  int chunks = static_cast<int>(max_chunks < p.size ? max_chunks : p.size);
  if (chunks <= 1 || t_in_parallel) {
    fn(ctx, 0, n);
    return;
  }
  std::unique_lock<std::mutex> call_lock(g_call_mu, std::try_to_lock);
  if (!call_lock.owns_lock()) {  // another thread is using the pool: run inline
    fn(ctx, 0, n);
    return;
  }
  Pool::Job job;
  {
    std::lock_guard<std::mutex> lk(p.mu);
    p.fn = fn;
    p.ctx = ctx;
    p.n = n;
    p.chunks = chunks;
    ++p.generation;
    p.published.store(p.generation, std::memory_order_release);
    job = Pool::Job{fn, ctx, n, chunks, static_cast<uint32_t>(p.generation)};
    p.remaining.store(chunks);
    p.claim.store(static_cast<uint64_t>(job.gen) << 32, std::memory_order_release);
  }
  p.cv.notify_all();
  p.run_chunks(job);
  while (p.remaining.load(std::memory_order_acquire) > 0) {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#endif
  }
}

}  // namespace tk
