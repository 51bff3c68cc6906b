// theon's CUDA simulator (backends/cuda/simulator.py) force-includes this header when it
// compiles kernel text with g++; it began as the team's GPU testing study (shared/gpu/,
// described in REPORT.md section 3). The CPU tests of the CUDA dialect use it through the
// same module (tests/backends/cuda_cpu/harness.py).
//
// theon_cuda_cpu.h -- execute CUDA C kernel source on the CPU.
//
// The same generated .cu text that goes to NVRTC/nvcc is compiled by g++ with
// this header force-included (simulator.FLAGS; no -fopenmp there):
//
//   g++ -std=c++17 -O1 -fPIC -shared -fvisibility=hidden  (continued:)
//       -include theon_cuda_cpu.h -x c++ kern.cu -o kern.so
//
// and every `extern "C" __global__` kernel gets a line THEON_CPU_EXPORT(name)
// appended (the Python side does that), which exports
//   int theon_launch_<name>(gx,gy,gz, bx,by,bz, shmem, void** args, mode)
// with the same void** kernelParams convention as cuLaunchKernel.
//
// Execution model
//   * blocks: independent; run in an OpenMP loop when built with -fopenmp.
//   * threads of a block: one fiber each (own stack, guard page).  A fiber runs
//     until it reaches __syncthreads() / a warp collective or returns; the
//     scheduler then resumes the next fiber.  A block barrier opens when all
//     live threads wait at it; a warp collective when all lanes of its mask do.
//   * fast path (mode bit 0 clear): thread 0 of each block runs first; if it
//     finishes without touching a barrier the rest of the block runs as plain
//     calls (no fibers).  A barrier hit in that state is a divergent barrier
//     and is reported as an error.
//   * __shared__ -> `static thread_local`: one copy per OS thread, i.e. per
//     block in flight.  Dynamic shared memory: THEON_DYN_SHARED(T, name).
//   * errors (divergent/mismatched barriers, deadlock, shuffles that read
//     exited or inactive lanes) abort the launch; the launcher returns 1 and
//     theon_cpu_last_error() says why.
// mode bits: 1 = always use fibers, 2 = resume fibers in reverse order.
#ifndef THEON_CUDA_CPU_H
#define THEON_CUDA_CPU_H
#define THEON_CPU 1

#include <math.h>
#include <cmath>
#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>
#include <sys/mman.h>
#include <ucontext.h>

// Context switch.  x86-64: a 16-instruction switch that saves only the
// callee-saved registers + MXCSR/x87 control word (no signal-mask syscall,
// unlike swapcontext).  Elsewhere, or with -DTHEON_CPU_UCONTEXT: ucontext.
#if defined(__x86_64__) && !defined(THEON_CPU_UCONTEXT)
#define THEON_CPU_ASM_SWITCH 1
extern "C" void theon_ctx_switch(void** save_sp, void* load_sp);
asm(R"(
.text
.globl theon_ctx_switch
.hidden theon_ctx_switch
.type theon_ctx_switch,@function
theon_ctx_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
.size theon_ctx_switch, .-theon_ctx_switch
)");
namespace theon_cpu {
struct Ctx { void* sp = nullptr; };
inline void ctx_switch(Ctx* from, Ctx* to) { theon_ctx_switch(&from->sp, to->sp); }
// Fresh stack: [mxcsr|fpucw] r15 r14 r13 r12 rbx rbp <entry> <0>, so that the
// first switch "returns" into entry with the ABI's rsp % 16 == 8.
inline void ctx_make(Ctx* c, char* lo, size_t size, void (*entry)(), Ctx*) {
  uintptr_t top = ((uintptr_t)(lo + size)) & ~(uintptr_t)15;
  uint64_t* sp = (uint64_t*)(top - 72);
  std::memset(sp, 0, 72);
  uint32_t csr[2] = {0x1F80u, 0x037Fu};  // default MXCSR, x87 control word
  std::memcpy(sp, csr, 8);
  sp[7] = (uint64_t)(uintptr_t)entry;
  c->sp = sp;
}
}  // namespace theon_cpu
#else
namespace theon_cpu {
struct Ctx { ucontext_t uc; };
inline void ctx_switch(Ctx* from, Ctx* to) { swapcontext(&from->uc, &to->uc); }
inline void ctx_make(Ctx* c, char* lo, size_t size, void (*entry)(), Ctx* link) {
  getcontext(&c->uc);
  c->uc.uc_stack.ss_sp = lo;
  c->uc.uc_stack.ss_size = size;
  c->uc.uc_link = &link->uc;
  makecontext(&c->uc, entry, 0);
}
}  // namespace theon_cpu
#endif

// ---------------------------------------------------------------- qualifiers
#define __global__
#define __device__
#define __host__
#define __constant__
#define __managed__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
#define __shared__ static thread_local
#define THEON_DYN_SHARED(T, name) T* name = reinterpret_cast<T*>(theon_cpu::dyn_smem())

struct uint3 { unsigned x, y, z; };
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
inline thread_local uint3 threadIdx, blockIdx;
inline thread_local dim3 blockDim, gridDim;
constexpr int warpSize = 32;

namespace theon_cpu {

enum State : int { RUNNABLE, AT_BAR, AT_WARP, DONE };

struct Fiber {
  Ctx ctx;
  State st = RUNNABLE;
  int line = 0;        // source line of the barrier it waits at
  unsigned mask = 0;   // member mask of the warp collective it waits at
  uint3 tid{0, 0, 0};
};

struct Block {
  int n = 0;
  bool fiber_mode = true;
  bool reverse = false;
  int cur = 0;
  std::vector<Fiber> f;
  char* stacks = nullptr;
  size_t stack_bytes = 0, slot_bytes = 0, map_bytes = 0;
  Ctx sched;
  std::jmp_buf plain_jmp;
  std::vector<uint64_t> slot;  // per-thread exchange word for collectives
  std::vector<unsigned char> dyn;
  void (*body)(void*) = nullptr;
  void* arg = nullptr;
  std::string err;
};

inline thread_local Block* tb = nullptr;
inline thread_local std::string last_error;

inline void* dyn_smem() { return tb->dyn.data(); }

inline std::string fmt_tid(const Block& b, int i) {
  char s[96];
  std::snprintf(s, sizeof s, "thread (%u,%u,%u) of block (%u,%u,%u)", b.f[i].tid.x,
                b.f[i].tid.y, b.f[i].tid.z, blockIdx.x, blockIdx.y, blockIdx.z);
  return s;
}

[[noreturn]] inline void fail_here(const std::string& msg) {
  Block* b = tb;
  if (b->err.empty()) b->err = msg + " [" + fmt_tid(*b, b->cur) + "]";
  if (!b->fiber_mode) std::longjmp(b->plain_jmp, 1);
  b->f[b->cur].st = DONE;
  ctx_switch(&b->f[b->cur].ctx, &b->sched);  // never resumed
  std::abort();
}

inline void yield_to_scheduler() {
  Block* b = tb;
  ctx_switch(&b->f[b->cur].ctx, &b->sched);
}

inline void fiber_entry() {
  Block* b = tb;
  b->body(b->arg);
  b->f[b->cur].st = DONE;
  ctx_switch(&b->f[b->cur].ctx, &b->sched);  // never resumed
  std::abort();
}

inline void init_fiber(Block& b, int i) {
  Fiber& fb = b.f[i];
  ctx_make(&fb.ctx, b.stacks + (size_t)i * b.slot_bytes + 4096,  // guard page below
           b.stack_bytes, fiber_entry, &b.sched);
  fb.st = RUNNABLE;
}

inline void resume(Block& b, int i) {
  b.cur = i;
  threadIdx = b.f[i].tid;
  ctx_switch(&b.sched, &b.f[i].ctx);
}

// Open the warp collective(s) of warp w whose members have all arrived.  Each
// mask is checked once (the check depends only on the mask): lanes arriving one
// by one made this cubic in the warp's size, most of a block-reduction test's time.
inline bool try_release_warp(Block& b, int w) {
  int lo = w * warpSize, hi = std::min(b.n, lo + warpSize);
  unsigned checked[32];
  int n_checked = 0;
  for (int i = lo; i < hi; ++i) {
    if (b.f[i].st != AT_WARP) continue;
    unsigned m = b.f[i].mask;
    bool again = false;
    for (int c = 0; c < n_checked && !again; ++c) again = checked[c] == m;
    if (again) continue;
    checked[n_checked++] = m;
    bool all = true;
    for (int j = lo; j < hi; ++j) {
      if (!(m >> (j - lo) & 1u)) continue;
      if (b.f[j].st == DONE) {
        b.err = "warp collective (mask 0x" + [&] { char s[16]; std::snprintf(s, 16, "%x", m); return std::string(s); }() +
                ") includes an exited lane: " + fmt_tid(b, j);
        return false;
      }
      if (b.f[j].st != AT_WARP) { all = false; break; }
      if (b.f[j].mask != m) { b.err = "lanes of one warp use different shuffle masks: " + fmt_tid(b, j); return false; }
    }
    if (!all) continue;
    for (int j = lo; j < hi; ++j)
      if ((m >> (j - lo) & 1u) && b.f[j].st == AT_WARP) b.f[j].st = RUNNABLE;
    return true;
  }
  return false;
}

// Schedule fibers [first, n) (fibers < first already exist) until all are done.
inline int run_fibers(Block& b, int first) {
  for (int i = first; i < b.n; ++i) init_fiber(b, i);
  for (;;) {
    bool ran = false;
    for (int k = 0; k < b.n; ++k) {
      int i = b.reverse ? b.n - 1 - k : k;
      if (b.f[i].st != RUNNABLE) continue;
      resume(b, i);
      ran = true;
      if (!b.err.empty()) return 1;
      if (b.f[i].st == AT_WARP) { try_release_warp(b, i / warpSize); if (!b.err.empty()) return 1; }
    }
    int waiting = 0, done = 0, line = -1;
    for (int i = 0; i < b.n; ++i) {
      if (b.f[i].st == DONE) ++done;
      else if (b.f[i].st == AT_BAR) {
        if (line >= 0 && b.f[i].line != line) {
          b.err = "__syncthreads at different source lines (" + std::to_string(line) + " and " +
                  std::to_string(b.f[i].line) + ") in one block";
          return 1;
        }
        line = b.f[i].line;
        ++waiting;
      }
    }
    if (done == b.n) return 0;
    if (waiting && waiting + done == b.n) {
      if (done) {
        b.err = "divergent __syncthreads (line " + std::to_string(line) + "): " + std::to_string(waiting) +
                " threads wait, " + std::to_string(done) + " have exited";
        return 1;
      }
      for (int i = 0; i < b.n; ++i) b.f[i].st = RUNNABLE;
      continue;
    }
    if (!ran) {  // e.g. a warp collective of a partial warp: try to open one
      bool opened = false;
      for (int w = 0; w * warpSize < b.n && !opened; ++w) opened = try_release_warp(b, w);
      if (!b.err.empty()) return 1;
      if (opened) continue;
      b.err = "deadlock: threads wait at different barriers / warp collectives";
      return 1;
    }
  }
}

inline int run_block(Block& b, bool force_fibers) {
  b.err.clear();
  for (auto& f : b.f) f.st = RUNNABLE;  // states of the previous block are stale
  if (force_fibers) { b.fiber_mode = true; return run_fibers(b, 0); }
  b.fiber_mode = true;
  init_fiber(b, 0);
  resume(b, 0);
  if (!b.err.empty()) return 1;
  if (b.f[0].st != DONE) return run_fibers(b, 1);  // thread 0 hit a barrier: full fiber mode
  b.fiber_mode = false;                    // barrier-free block: plain calls
  if (setjmp(b.plain_jmp)) return 1;
  for (int i = 1; i < b.n; ++i) {
    b.cur = i;
    threadIdx = b.f[i].tid;
    b.body(b.arg);
  }
  return 0;
}

inline int run_grid(dim3 grid, dim3 block, size_t shmem, void (*body)(void*), void* arg, int mode) {
  long long nblocks = (long long)grid.x * grid.y * grid.z;
  long long nthr = (long long)block.x * block.y * block.z;
  if (nthr < 1 || nthr > 1024 || nblocks < 1) {
    last_error = "invalid launch configuration";
    return 1;
  }
  size_t stack_kb = 128;
  if (const char* e = std::getenv("THEON_CPU_STACK_KB")) stack_kb = std::strtoul(e, nullptr, 10);
  std::string err;
  volatile bool failed = false;
#pragma omp parallel
  {
    Block b;
    b.n = (int)nthr;
    b.reverse = mode & 2;
    b.body = body;
    b.arg = arg;
    b.f.resize(b.n);
    b.slot.assign(b.n, 0);
    b.dyn.assign(shmem + 16, 0);
    b.stack_bytes = stack_kb * 1024;
    b.slot_bytes = b.stack_bytes + 4096;
    b.map_bytes = b.slot_bytes * b.n;
    b.stacks = (char*)mmap(nullptr, b.map_bytes, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    for (int i = 0; i < b.n; ++i) {
      mprotect(b.stacks + (size_t)i * b.slot_bytes, 4096, PROT_NONE);  // stack overflow -> SIGSEGV
      b.f[i].tid = uint3{(unsigned)(i % block.x), (unsigned)(i / block.x % block.y),
                         (unsigned)(i / (block.x * block.y))};
    }
    tb = &b;
    gridDim = grid;
    blockDim = block;
#pragma omp for schedule(dynamic, 1)
    for (long long bi = 0; bi < nblocks; ++bi) {
      if (failed) continue;
      blockIdx = uint3{(unsigned)(bi % grid.x), (unsigned)(bi / grid.x % grid.y),
                       (unsigned)(bi / ((long long)grid.x * grid.y))};
      std::memset(b.dyn.data(), 0xff, b.dyn.size());  // uninitialised smem reads as NaN
      if (run_block(b, mode & 1)) {
#pragma omp critical(theon_cpu_err)
        if (err.empty()) err = b.err;
        failed = true;
      }
    }
    tb = nullptr;
    munmap(b.stacks, b.map_bytes);
  }
  last_error = err;
  return err.empty() ? 0 : 1;
}

template <class... A, size_t... I>
inline void call_unpacked(void (*k)(A...), void** args, std::index_sequence<I...>) {
  k(*static_cast<std::decay_t<A>*>(args[I])...);
}

template <class... A>
inline int launch(void (*k)(A...), dim3 g, dim3 bl, size_t shmem, void** args, int mode) {
  struct Call { void (*k)(A...); void** args; } call{k, args};
  auto body = [](void* p) {
    Call* c = static_cast<Call*>(p);
    call_unpacked(c->k, c->args, std::index_sequence_for<A...>{});
  };
  return run_grid(g, bl, shmem, body, &call, mode);
}

// ------------------------------------------------------------- collectives
inline void block_barrier(int line) {
  Block* b = tb;
  if (!b->fiber_mode)
    fail_here("divergent __syncthreads (line " + std::to_string(line) + "): thread 0 exited without reaching it");
  b->f[b->cur].st = AT_BAR;
  b->f[b->cur].line = line;
  yield_to_scheduler();
}

inline void warp_point(unsigned mask) {
  Block* b = tb;
  if (!b->fiber_mode) fail_here("warp collective reached in a block whose thread 0 used none (divergent)");
  b->f[b->cur].st = AT_WARP;
  b->f[b->cur].mask = mask;
  yield_to_scheduler();
}

// Each lane publishes v, waits for the warp, then reads the value of the lane
// src(lane) (or keeps its own when src < 0).
template <class T, class Src>
inline T exchange(unsigned mask, T v, Src src) {
  static_assert(sizeof(T) <= 8, "shuffle of types > 8 bytes");
  Block* b = tb;
  int me = b->cur, base = me - me % warpSize, lane = me % warpSize;
  std::memcpy(&b->slot[me], &v, sizeof(T));
  warp_point(mask);
  int s = src(lane);
  T r = v;
  if (s >= 0 && s != lane) {
    if (!(mask >> s & 1u) || base + s >= b->n)
      fail_here("shuffle reads lane " + std::to_string(s) + " which is not in the member mask");
    std::memcpy(&r, &b->slot[base + s], sizeof(T));
  }
  warp_point(mask);  // nobody overwrites a slot before all have read it
  return r;
}

}  // namespace theon_cpu

#define __syncthreads() theon_cpu::block_barrier(__LINE__)
inline void __syncwarp(unsigned mask = 0xffffffffu) { theon_cpu::warp_point(mask); }
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

template <class T> inline T __shfl_sync(unsigned m, T v, int src, int w = warpSize) {
  return theon_cpu::exchange(m, v, [=](int l) { return (l & ~(w - 1)) + (src & (w - 1)); });
}
template <class T> inline T __shfl_down_sync(unsigned m, T v, unsigned d, int w = warpSize) {
  return theon_cpu::exchange(m, v, [=](int l) { return (l % w) + (int)d < w ? l + (int)d : -1; });
}
template <class T> inline T __shfl_up_sync(unsigned m, T v, unsigned d, int w = warpSize) {
  return theon_cpu::exchange(m, v, [=](int l) { return (l % w) >= (int)d ? l - (int)d : -1; });
}
template <class T> inline T __shfl_xor_sync(unsigned m, T v, int x, int w = warpSize) {
  return theon_cpu::exchange(m, v, [=](int l) { int s = l ^ x; return s < (l & ~(w - 1)) + w ? s : -1; });
}
inline unsigned __ballot_sync(unsigned m, int pred) {
  theon_cpu::Block* b = theon_cpu::tb;
  int me = b->cur, base = me - me % warpSize;
  b->slot[me] = pred ? 1 : 0;
  theon_cpu::warp_point(m);
  unsigned r = 0;
  for (int s = 0; s < warpSize && base + s < b->n; ++s)
    if ((m >> s & 1u) && b->slot[base + s]) r |= 1u << s;
  theon_cpu::warp_point(m);
  return r;
}
inline int __any_sync(unsigned m, int p) { return __ballot_sync(m, p) != 0; }
inline int __all_sync(unsigned m, int p) { return !__any_sync(m, !p); }

// ----------------------------------------------------------------- atomics
template <class T> struct theon_id { using type = T; };
template <class T, class F> inline T theon_cas_loop(T* p, F f) {
  T old;
  __atomic_load(p, &old, __ATOMIC_RELAXED);
  T nw;
  do { nw = f(old); } while (!__atomic_compare_exchange(p, &old, &nw, true, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
  return old;
}
template <class T> inline T atomicAdd(T* p, typename theon_id<T>::type v) {
  if constexpr (std::is_integral_v<T>) return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
  else return theon_cas_loop(p, [=](T o) { return o + v; });
}
template <class T> inline T atomicSub(T* p, typename theon_id<T>::type v) { return __atomic_fetch_sub(p, v, __ATOMIC_SEQ_CST); }
template <class T> inline T atomicMax(T* p, typename theon_id<T>::type v) { return theon_cas_loop(p, [=](T o) { return o < v ? v : o; }); }
template <class T> inline T atomicMin(T* p, typename theon_id<T>::type v) { return theon_cas_loop(p, [=](T o) { return v < o ? v : o; }); }
template <class T> inline T atomicExch(T* p, typename theon_id<T>::type v) { return theon_cas_loop(p, [=](T) { return v; }); }
template <class T> inline T atomicCAS(T* p, typename theon_id<T>::type c, typename theon_id<T>::type v) {
  __atomic_compare_exchange(p, &c, &v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  return c;
}

// -------------------------------------------------------- math / intrinsics
template <class A, class B> inline std::common_type_t<A, B> min(A a, B b) {
  using T = std::common_type_t<A, B>; return T(b) < T(a) ? T(b) : T(a);
}
template <class A, class B> inline std::common_type_t<A, B> max(A a, B b) {
  using T = std::common_type_t<A, B>; return T(a) < T(b) ? T(b) : T(a);
}
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __saturatef(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : x); }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline int __float_as_int(float x) { int r; std::memcpy(&r, &x, 4); return r; }
inline float __int_as_float(int x) { float r; std::memcpy(&r, &x, 4); return r; }
inline unsigned __float_as_uint(float x) { unsigned r; std::memcpy(&r, &x, 4); return r; }
inline float __uint_as_float(unsigned x) { float r; std::memcpy(&r, &x, 4); return r; }
inline long long __double_as_longlong(double x) { long long r; std::memcpy(&r, &x, 8); return r; }
inline double __longlong_as_double(long long x) { double r; std::memcpy(&r, &x, 8); return r; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x ? __builtin_clz((unsigned)x) : 32; }
inline int __ffs(int x) { return __builtin_ffs(x); }
template <class T> inline T __ldg(const T* p) { return *p; }

#define THEON_VEC2(T, N) struct N##2 { T x, y; }; inline N##2 make_##N##2(T a, T b) { return {a, b}; }
#define THEON_VEC4(T, N) struct alignas(4 * sizeof(T)) N##4 { T x, y, z, w; }; \
  inline N##4 make_##N##4(T a, T b, T c, T d) { return {a, b, c, d}; }
THEON_VEC2(float, float) THEON_VEC4(float, float) THEON_VEC2(double, double)
THEON_VEC2(int, int) THEON_VEC4(int, int)

extern "C" __attribute__((visibility("default"))) const char* theon_cpu_last_error() {
  return theon_cpu::last_error.c_str();
}

#define THEON_CPU_EXPORT(k)                                                                  \
  extern "C" __attribute__((visibility("default"))) int theon_launch_##k(                   \
      unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,          \
      unsigned long shmem, void** args, int mode) {                                          \
    return theon_cpu::launch(&k, dim3(gx, gy, gz), dim3(bx, by, bz), shmem, args, mode);     \
  }

#endif
