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
//
// Two ways to build (simulator.build picks): one translation unit holding the kernels and
// the scheduler (nothing defined: the scheduler's functions are inline), or the scheduler
// built once per cache as an object of its own (THEON_CPU_RUNTIME_OBJECT: its functions
// defined out of line) and linked into every kernel library, whose kernels see only its
// declarations (THEON_CPU_KERNELS_ONLY; that view of this header is also precompiled).
// Compiling the scheduler and parsing the system headers was most of building a small
// module; the code that runs is the same either way.
#ifndef THEON_CUDA_CPU_H
#define THEON_CUDA_CPU_H
#define THEON_CPU 1

#if defined(THEON_CPU_RUNTIME_OBJECT) && defined(THEON_CPU_KERNELS_ONLY)
#error "THEON_CPU_RUNTIME_OBJECT and THEON_CPU_KERNELS_ONLY exclude each other"
#endif
#ifndef THEON_CPU_KERNELS_ONLY
#define THEON_CPU_DEFINE_RUNTIME 1  // this translation unit defines the scheduler
#endif
#ifdef THEON_CPU_RUNTIME_OBJECT
#define THEON_CPU_FN  // defined once, in the runtime object, linked into each library
#else
#define THEON_CPU_FN inline
#endif

// No <string>, <vector> or <utility>: parsing them was about a third of building a small
// kernel, which every compiled function of a test run pays.
#include <math.h>
#include <cmath>
#include <csetjmp>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <sys/mman.h>
#include <ucontext.h>

// Context switch.  x86-64: a 16-instruction switch that saves only the
// callee-saved registers + MXCSR/x87 control word (no signal-mask syscall,
// unlike swapcontext).  Elsewhere, or with -DTHEON_CPU_UCONTEXT: ucontext.
#if defined(__x86_64__) && !defined(THEON_CPU_UCONTEXT)
#define THEON_CPU_ASM_SWITCH 1
extern "C" void theon_ctx_switch(void** save_sp, void* load_sp);
#ifdef THEON_CPU_DEFINE_RUNTIME
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
#endif
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

constexpr size_t ERR_BYTES = 512;

struct Block {
  int n = 0;
  bool fiber_mode = true;
  bool reverse = false;
  int cur = 0;
  Fiber* f = nullptr;
  char* stacks = nullptr;
  size_t stack_bytes = 0, slot_bytes = 0, map_bytes = 0;
  int guarded = 0;  // stacks [0, guarded) have their guard page
  Ctx sched;
  std::jmp_buf plain_jmp;
  uint64_t* slot = nullptr;  // per-thread exchange word for collectives
  unsigned char* dyn = nullptr;
  size_t dyn_bytes = 0;
  void (*body)(void*) = nullptr;
  void* arg = nullptr;
  char err[ERR_BYTES] = "";  // empty: no error
};

inline thread_local Block* tb = nullptr;
inline thread_local char last_error[ERR_BYTES] = "";

inline void* dyn_smem() { return tb->dyn; }

#ifdef THEON_CPU_DEFINE_RUNTIME

// The block's error, printf-style; the first one stays.
__attribute__((format(printf, 2, 3))) THEON_CPU_FN void set_err(Block& b, const char* fmt, ...) {
  if (b.err[0]) return;
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(b.err, ERR_BYTES, fmt, ap);
  va_end(ap);
}

// "thread (x,y,z) of block (x,y,z)" of fiber i, into s.
THEON_CPU_FN const char* fmt_tid(const Block& b, int i, char* s, size_t n) {
  std::snprintf(s, n, "thread (%u,%u,%u) of block (%u,%u,%u)", b.f[i].tid.x, b.f[i].tid.y,
                b.f[i].tid.z, blockIdx.x, blockIdx.y, blockIdx.z);
  return s;
}

// Fail the current thread: the message, then which thread.
[[noreturn]] __attribute__((format(printf, 1, 2))) THEON_CPU_FN void fail_here(const char* fmt, ...) {
  Block* b = tb;
  if (!b->err[0]) {
    char msg[ERR_BYTES], who[96];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    set_err(*b, "%s [%s]", msg, fmt_tid(*b, b->cur, who, sizeof who));
  }
  if (!b->fiber_mode) std::longjmp(b->plain_jmp, 1);
  b->f[b->cur].st = DONE;
  ctx_switch(&b->f[b->cur].ctx, &b->sched);  // never resumed
  std::abort();
}

THEON_CPU_FN void yield_to_scheduler() {
  Block* b = tb;
  ctx_switch(&b->f[b->cur].ctx, &b->sched);
}

THEON_CPU_FN void fiber_entry() {
  Block* b = tb;
  b->body(b->arg);
  b->f[b->cur].st = DONE;
  ctx_switch(&b->f[b->cur].ctx, &b->sched);  // never resumed
  std::abort();
}

THEON_CPU_FN void init_fiber(Block& b, int i) {
  // A guard page is set when its stack is first used: a block without barriers uses only
  // thread 0's, and a mprotect per thread was most of a small launch (1.1 ms at 256).
  for (; b.guarded <= i; ++b.guarded)
    mprotect(b.stacks + (size_t)b.guarded * b.slot_bytes, 4096, PROT_NONE);  // overflow -> SIGSEGV
  Fiber& fb = b.f[i];
  ctx_make(&fb.ctx, b.stacks + (size_t)i * b.slot_bytes + 4096,  // guard page below
           b.stack_bytes, fiber_entry, &b.sched);
  fb.st = RUNNABLE;
}

THEON_CPU_FN void resume(Block& b, int i) {
  b.cur = i;
  threadIdx = b.f[i].tid;
  ctx_switch(&b.sched, &b.f[i].ctx);
}

// Open the warp collective(s) of warp w whose members have all arrived.  Each
// mask is checked once (the check depends only on the mask): lanes arriving one
// by one made this cubic in the warp's size, most of a block-reduction test's time.
THEON_CPU_FN bool try_release_warp(Block& b, int w) {
  int lo = w * warpSize, hi = b.n < lo + warpSize ? b.n : lo + warpSize;
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
      char who[96];
      if (b.f[j].st == DONE) {
        set_err(b, "warp collective (mask 0x%x) includes an exited lane: %s", m,
                fmt_tid(b, j, who, sizeof who));
        return false;
      }
      if (b.f[j].st != AT_WARP) { all = false; break; }
      if (b.f[j].mask != m) {
        set_err(b, "lanes of one warp use different shuffle masks: %s", fmt_tid(b, j, who, sizeof who));
        return false;
      }
    }
    if (!all) continue;
    for (int j = lo; j < hi; ++j)
      if ((m >> (j - lo) & 1u) && b.f[j].st == AT_WARP) b.f[j].st = RUNNABLE;
    return true;
  }
  return false;
}

// Schedule fibers [first, n) (fibers < first already exist) until all are done.
THEON_CPU_FN int run_fibers(Block& b, int first) {
  for (int i = first; i < b.n; ++i) init_fiber(b, i);
  for (;;) {
    bool ran = false;
    for (int k = 0; k < b.n; ++k) {
      int i = b.reverse ? b.n - 1 - k : k;
      if (b.f[i].st != RUNNABLE) continue;
      resume(b, i);
      ran = true;
      if (b.err[0]) return 1;
      if (b.f[i].st == AT_WARP) { try_release_warp(b, i / warpSize); if (b.err[0]) return 1; }
    }
    int waiting = 0, done = 0, line = -1;
    for (int i = 0; i < b.n; ++i) {
      if (b.f[i].st == DONE) ++done;
      else if (b.f[i].st == AT_BAR) {
        if (line >= 0 && b.f[i].line != line) {
          set_err(b, "__syncthreads at different source lines (%d and %d) in one block", line,
                  b.f[i].line);
          return 1;
        }
        line = b.f[i].line;
        ++waiting;
      }
    }
    if (done == b.n) return 0;
    if (waiting && waiting + done == b.n) {
      if (done) {
        set_err(b, "divergent __syncthreads (line %d): %d threads wait, %d have exited", line,
                waiting, done);
        return 1;
      }
      for (int i = 0; i < b.n; ++i) b.f[i].st = RUNNABLE;
      continue;
    }
    if (!ran) {  // e.g. a warp collective of a partial warp: try to open one
      bool opened = false;
      for (int w = 0; w * warpSize < b.n && !opened; ++w) opened = try_release_warp(b, w);
      if (b.err[0]) return 1;
      if (opened) continue;
      set_err(b, "deadlock: threads wait at different barriers / warp collectives");
      return 1;
    }
  }
}

THEON_CPU_FN int run_block(Block& b, bool force_fibers) {
  b.err[0] = 0;
  for (int i = 0; i < b.n; ++i) b.f[i].st = RUNNABLE;  // states of the previous block are stale
  if (force_fibers) { b.fiber_mode = true; return run_fibers(b, 0); }
  b.fiber_mode = true;
  init_fiber(b, 0);
  resume(b, 0);
  if (b.err[0]) return 1;
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

// The threads' stacks, kept from launch to launch in the pool the process hands every library
// it loads (theon_cpu_use_stacks; launches run one at a time, under the loader's lock):
// mapping them, setting their guard pages and faulting their pages in at every launch was
// half of a small launch's time (the kernel's mprotect, munmap and page faults; 1.2 ms for a
// pooling gradient's). A library given no pool maps its stacks per launch.
struct StackPool {
  char* base;
  size_t map_bytes, slot_bytes;
  int guarded;
};
inline StackPool* stack_pool = nullptr;

// The stacks of n threads of slot_bytes each (a guard page at the bottom of each); `guarded`:
// how many of them have their guard page already. Null if they cannot be mapped.
THEON_CPU_FN char* take_stacks(size_t slot_bytes, int n, int* guarded) {
  const size_t bytes = slot_bytes * (size_t)n;
#ifdef _OPENMP
  StackPool* p = nullptr;  // blocks on several threads at once: one pool would be shared
#else
  StackPool* p = stack_pool;
#endif
  if (p && p->base && p->slot_bytes == slot_bytes && p->map_bytes >= bytes) {
    *guarded = p->guarded;
    return p->base;
  }
  if (p && p->base) munmap(p->base, p->map_bytes), p->base = nullptr;
  void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                 -1, 0);
  if (m == MAP_FAILED) return nullptr;
  if (p) *p = StackPool{(char*)m, bytes, slot_bytes, 0};
  *guarded = 0;
  return (char*)m;
}

// Back to the pool (guarded: how many guard pages are set now), or unmapped without one.
THEON_CPU_FN void give_stacks(char* stacks, size_t bytes, int guarded) {
  if (stack_pool && stack_pool->base == stacks) stack_pool->guarded = guarded;
  else munmap(stacks, bytes);
}

THEON_CPU_FN int run_grid(dim3 grid, dim3 block, size_t shmem, void (*body)(void*), void* arg, int mode) {
  long long nblocks = (long long)grid.x * grid.y * grid.z;
  long long nthr = (long long)block.x * block.y * block.z;
  if (nthr < 1 || nthr > 1024 || nblocks < 1) {
    std::snprintf(last_error, ERR_BYTES, "invalid launch configuration");
    return 1;
  }
  size_t stack_kb = 128;
  if (const char* e = std::getenv("THEON_CPU_STACK_KB")) stack_kb = std::strtoul(e, nullptr, 10);
  char err[ERR_BYTES] = "";
  volatile bool failed = false;
#pragma omp parallel
  {
    Block b;
    b.n = (int)nthr;
    b.reverse = mode & 2;
    b.body = body;
    b.arg = arg;
    b.f = new Fiber[b.n];
    b.slot = new uint64_t[b.n]();
    b.dyn_bytes = shmem + 16;
    b.dyn = new unsigned char[b.dyn_bytes]();
    b.stack_bytes = stack_kb * 1024;
    b.slot_bytes = b.stack_bytes + 4096;
    b.map_bytes = b.slot_bytes * b.n;
    b.stacks = take_stacks(b.slot_bytes, b.n, &b.guarded);
    if (!b.stacks) {
#pragma omp critical(theon_cpu_err)
      if (!err[0]) std::snprintf(err, ERR_BYTES, "no memory for %d threads' stacks", b.n);
      failed = true;
    }
    for (int i = 0; i < b.n; ++i) {
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
      std::memset(b.dyn, 0xff, b.dyn_bytes);  // uninitialised smem reads as NaN
      if (run_block(b, mode & 1)) {
#pragma omp critical(theon_cpu_err)
        if (!err[0]) std::memcpy(err, b.err, ERR_BYTES);
        failed = true;
      }
    }
    tb = nullptr;
    if (b.stacks) give_stacks(b.stacks, b.map_bytes, b.guarded);
    delete[] b.f;
    delete[] b.slot;
    delete[] b.dyn;
  }
  std::memcpy(last_error, err, ERR_BYTES);
  return err[0] ? 1 : 0;
}

THEON_CPU_FN void block_barrier(int line) {
  Block* b = tb;
  if (!b->fiber_mode)
    fail_here("divergent __syncthreads (line %d): thread 0 exited without reaching it", line);
  b->f[b->cur].st = AT_BAR;
  b->f[b->cur].line = line;
  yield_to_scheduler();
}

THEON_CPU_FN void warp_point(unsigned mask) {
  Block* b = tb;
  if (!b->fiber_mode) fail_here("warp collective reached in a block whose thread 0 used none (divergent)");
  b->f[b->cur].st = AT_WARP;
  b->f[b->cur].mask = mask;
  yield_to_scheduler();
}
#else
[[noreturn]] __attribute__((format(printf, 1, 2))) void fail_here(const char* fmt, ...);
int run_grid(dim3 grid, dim3 block, size_t shmem, void (*body)(void*), void* arg, int mode);
void block_barrier(int line);
void warp_point(unsigned mask);
#endif  // THEON_CPU_DEFINE_RUNTIME

template <size_t... I> struct Seq {};
template <size_t N, size_t... I> struct MakeSeq : MakeSeq<N - 1, N - 1, I...> {};
template <size_t... I> struct MakeSeq<0, I...> { using type = Seq<I...>; };

template <class... A, size_t... I>
inline void call_unpacked(void (*k)(A...), void** args, Seq<I...>) {
  k(*static_cast<std::decay_t<A>*>(args[I])...);
}

template <class... A>
inline int launch(void (*k)(A...), dim3 g, dim3 bl, size_t shmem, void** args, int mode) {
  struct Call { void (*k)(A...); void** args; } call{k, args};
  auto body = [](void* p) {
    Call* c = static_cast<Call*>(p);
    call_unpacked(c->k, c->args, typename MakeSeq<sizeof...(A)>::type{});
  };
  return run_grid(g, bl, shmem, body, &call, mode);
}

// ------------------------------------------------------------- collectives
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
      fail_here("shuffle reads lane %d which is not in the member mask", s);
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

#ifdef THEON_CPU_DEFINE_RUNTIME
extern "C" __attribute__((visibility("default"))) const char* theon_cpu_last_error() {
  return theon_cpu::last_error;
}
extern "C" __attribute__((visibility("default"))) void theon_cpu_use_stacks(void* pool) {
  theon_cpu::stack_pool = (theon_cpu::StackPool*)pool;
}
#endif

#define THEON_CPU_EXPORT(k)                                                                  \
  extern "C" __attribute__((visibility("default"))) int theon_launch_##k(                   \
      unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,          \
      unsigned long shmem, void** args, int mode) {                                          \
    return theon_cpu::launch(&k, dim3(gx, gy, gz), dim3(bx, by, bz), shmem, args, mode);     \
  }

#endif
