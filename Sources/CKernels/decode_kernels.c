// Decode-step kernels and the thread team that runs them; the contract is in decode_kernels.h.
#define _GNU_SOURCE
#include "decode_kernels.h"
#include "cpu_features.h"
#include "encoder_kernels.h"
#include "team.h"
#include "vector_exp.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#endif
#include <sys/mman.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAVE_X86 1
#define AVX2 __attribute__((target("avx2,fma")))
#define AVX512 __attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512dq")))
static inline void cpu_relax(void) { _mm_pause(); }
#else
#define HAVE_X86 0
static inline void cpu_relax(void) {}
#endif

// MARK: - Instruction set
//
// cpu_features.c decides (HIPRUNE_ISA, tests' hp_isa_set); each kernel branches on the active level.

static inline int use_avx2(void) { return hp_isa_active() >= HP_ISA_AVX2; }
static inline int use_avx512(void) { return hp_isa_active() >= HP_ISA_AVX512; }

// MARK: - Team
//
// The cursor packs the task's generation (22 bits), its claim quantum (2 bits: 1, 2, 4 or 8 units),
// its unit count (20 bits) and the next unclaimed unit (20 bits). A claim is a CAS on the whole word,
// so it only succeeds while that very task is live; a task stays live until every claimed unit is
// done, so the task description read after a successful claim is the claimed task's. Claims shrink
// as the task drains (a share of what is left, as OpenMP's guided schedule): few claims, and the
// threads finish within a quantum of each other even when one started late. Workers spin briefly
// between tasks, then sleep on `wake`.

typedef void (*team_body)(void *context, long begin, long end);

enum { GEN_BITS = 22, QUANTUM_BITS = 2, COUNT_BITS = 20, MAX_UNITS = (1 << COUNT_BITS) - 1, MAX_TEAM = 64 };
static const long SPIN_NS = 200000;  // covers the gaps inside a decode step, not the gaps between requests

static struct {
    _Alignas(64) _Atomic uint64_t cursor;
    // Units finished: a thread adds what it ran once it finds nothing left to claim (one add a task
    // and thread, not one a claim), on a line of its own that the caller polls at the task's end
    // without pulling the cursor's line away from a thread still claiming.
    _Alignas(64) atomic_long done;
    atomic_long worker_units;
    _Alignas(64) _Atomic uint32_t wake;  // apart from the cursor: spinning workers read it constantly
    atomic_int sleepers;
    atomic_int enabled;
    int size;
    pthread_mutex_t owner;  // one task at a time; a second caller runs its work alone
#if !defined(__linux__)
    pthread_mutex_t sleep_lock;
    pthread_cond_t sleep_signal;
#endif
    uint32_t generation;  // owner only
    team_body body;
    void *context;
    int single;  // claims of one quantum each (team_run_single)
} team = {
    .size = 1, .enabled = 1, .owner = PTHREAD_MUTEX_INITIALIZER,
#if !defined(__linux__)
    .sleep_lock = PTHREAD_MUTEX_INITIALIZER, .sleep_signal = PTHREAD_COND_INITIALIZER,
#endif
};

static pthread_once_t team_once = PTHREAD_ONCE_INIT;

static uint64_t pack(uint64_t generation, uint64_t quantum_shift, uint64_t units, uint64_t next) {
    return (generation << (QUANTUM_BITS + 2 * COUNT_BITS)) | (quantum_shift << (2 * COUNT_BITS))
         | (units << COUNT_BITS) | next;
}

static uint64_t generation_of(uint64_t c) { return c >> (QUANTUM_BITS + 2 * COUNT_BITS); }

static long monotonic_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long)t.tv_sec * 1000000000L + t.tv_nsec;
}

/// Claims and runs units of task `generation` until none is left, then counts them done; returns how
/// many it ran.
static long run_claims(uint64_t generation) {
    long ran = 0;
    uint64_t c = atomic_load_explicit(&team.cursor, memory_order_acquire);
    for (;;) {
        long units = (long)((c >> COUNT_BITS) & MAX_UNITS), next = (long)(c & MAX_UNITS);
        if (generation_of(c) != generation || next >= units) {
            if (ran) atomic_fetch_add_explicit(&team.done, ran, memory_order_release);
            return ran;
        }
        long quantum = 1L << ((c >> (2 * COUNT_BITS)) & 3);
        long share = team.single ? quantum : (units - next + 2 * team.size - 1) / (2 * team.size);
        share = (share + quantum - 1) / quantum * quantum;
        long end = next + share < units ? next + share : units;
        if (!atomic_compare_exchange_weak_explicit(&team.cursor, &c, c - (uint64_t)next + (uint64_t)end,
                                                   memory_order_acq_rel, memory_order_acquire)) continue;
        team.body(team.context, next, end);
        ran += end - next;
        c = atomic_load_explicit(&team.cursor, memory_order_acquire);
    }
}

static void sleep_until_changed(uint32_t seen) {
    atomic_fetch_add(&team.sleepers, 1);
#if defined(__linux__)
    if (atomic_load(&team.wake) == seen)
        syscall(SYS_futex, &team.wake, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
#else
    pthread_mutex_lock(&team.sleep_lock);
    while (atomic_load(&team.wake) == seen) pthread_cond_wait(&team.sleep_signal, &team.sleep_lock);
    pthread_mutex_unlock(&team.sleep_lock);
#endif
    atomic_fetch_sub(&team.sleepers, 1);
}

static void wake_sleepers(void) {
    if (atomic_load(&team.sleepers) == 0) return;
#if defined(__linux__)
    syscall(SYS_futex, &team.wake, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#else
    pthread_mutex_lock(&team.sleep_lock);
    pthread_cond_broadcast(&team.sleep_signal);
    pthread_mutex_unlock(&team.sleep_lock);
#endif
}

static _Thread_local int team_index = 0;

int hp_team_index(void) { return team_index; }

int hp_team_size(void) { return decode_team_size(); }

static void *worker_main(void *index) {
    team_index = (int)(intptr_t)index;
    uint32_t seen = atomic_load(&team.wake);
    for (;;) {
        long start = monotonic_ns();
        for (unsigned spins = 1;; spins++) {
            if (atomic_load_explicit(&team.wake, memory_order_acquire) != seen) break;
            cpu_relax();
            if ((spins & 255) == 0 && monotonic_ns() - start > SPIN_NS) {
                sleep_until_changed(seen);
                start = monotonic_ns();
            }
        }
        seen = atomic_load_explicit(&team.wake, memory_order_acquire);
        long ran = run_claims(generation_of(atomic_load_explicit(&team.cursor, memory_order_acquire)));
        if (ran) atomic_fetch_add_explicit(&team.worker_units, ran, memory_order_relaxed);
    }
    return NULL;
}

static void start_team(void) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    const char *override = getenv("HIPRUNE_THREADS");
    if (override && atol(override) > 0) cores = atol(override);
    if (cores < 1) cores = 1;
    if (cores > MAX_TEAM) cores = MAX_TEAM;
    pthread_attr_t attributes;
    pthread_attr_init(&attributes);
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attributes, 256 * 1024);
    int size = 1;
    for (long i = 1; i < cores; i++) {
        pthread_t thread;
        if (pthread_create(&thread, &attributes, worker_main, (void *)(intptr_t)size) == 0) size += 1;
    }
    pthread_attr_destroy(&attributes);
    team.size = size;
}

int decode_team_size(void) {
    pthread_once(&team_once, start_team);
    return team.size;
}

int decode_team_enable(int enabled) { return atomic_exchange(&team.enabled, enabled != 0); }

long decode_team_worker_chunks(void) { return atomic_load(&team.worker_units); }

/// Runs body over units 0 ..< units (at most MAX_UNITS), claimed in multiples of `quantum` (1, 2, 4
/// or 8; with `single` one quantum a claim, else a share of what is left), on the team when `parallel`.
static void team_run_claims(team_body body, void *context, long units, int quantum, int parallel, int single) {
    if (units <= 0) return;
    if (!parallel || units <= quantum || units > MAX_UNITS || !atomic_load_explicit(&team.enabled, memory_order_relaxed)
        || decode_team_size() < 2 || pthread_mutex_trylock(&team.owner) != 0) {
        body(context, 0, units);
        return;
    }
    uint64_t shift = quantum >= 8 ? 3 : quantum >= 4 ? 2 : quantum >= 2 ? 1 : 0;
    team.body = body;
    team.context = context;
    team.single = single;
    atomic_store_explicit(&team.done, 0, memory_order_relaxed);
    atomic_store_explicit(&team.worker_units, 0, memory_order_relaxed);
    team.generation = (team.generation + 1) & ((1u << GEN_BITS) - 1);
    atomic_store_explicit(&team.cursor, pack(team.generation, shift, (uint64_t)units, 0), memory_order_release);
    atomic_fetch_add(&team.wake, 1);
    wake_sleepers();
    run_claims(team.generation);
    for (unsigned spins = 1; atomic_load_explicit(&team.done, memory_order_acquire) < units; spins++) {
        cpu_relax();
        if ((spins & 4095) == 0) sched_yield();  // a worker holding a claim was descheduled
    }
    pthread_mutex_unlock(&team.owner);
}

static void team_run(team_body body, void *context, long units, int quantum, int parallel) {
    team_run_claims(body, context, units, quantum, parallel, 0);
}

/// team_run with claims of one quantum each: for tasks of a few long units, where an even split
/// matters more than the number of claims.
static void team_run_single(team_body body, void *context, long units, int quantum, int parallel) {
    team_run_claims(body, context, units, quantum, parallel, 1);
}

void hp_team_run(hp_team_body body, void *context, long units, int quantum, int parallel) {
    team_run(body, context, units, quantum, parallel);
}

// MARK: - Row kernels
//
// A row is one sequential stream: four 8-lane accumulators over 32 columns at a time, summed, then
// the columns past the last multiple of 8. Four rows at once (four streams sharing each load of x)
// measured slower here, BF16 by a fifth. Each row's result depends only on the row and x, never on
// which thread or claim computes it, so the split cannot change results.

static inline float finish(float *y, float sum, int accumulate) { return accumulate ? *y + sum : sum; }

static inline float bf16_value(uint16_t bits) {
    uint32_t wide = (uint32_t)bits << 16;
    float value;
    memcpy(&value, &wide, sizeof value);
    return value;
}

#define VALUE_float(v) (v)
#define VALUE_uint16_t(v) bf16_value(v)
#define ROWS_PORTABLE(NAME, T)                                                                             \
    static void NAME(const T *w, long rows, long cols, long stride, const float *x, float *y, int accumulate) { \
        for (long r = 0; r < rows; r++) {                                                                  \
            const T *row = w + r * stride;                                                                 \
            float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                                     \
            long c = 0;                                                                                    \
            for (; c + 8 <= cols; c += 8)                                                                  \
                for (int k = 0; k < 8; k++) lanes[k] += VALUE_##T(row[c + k]) * x[c + k];                  \
            float sum = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7])); \
            for (; c < cols; c++) sum += VALUE_##T(row[c]) * x[c];                                         \
            y[r] = finish(y + r, sum, accumulate);                                                         \
        }                                                                                                  \
    }

ROWS_PORTABLE(f32_rows_portable, float)
ROWS_PORTABLE(bf16_rows_portable, uint16_t)

#if HAVE_X86
static inline AVX2 float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline AVX2 __m256 load_bf16(const uint16_t *p) {
    __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
}

#define ROWS_AVX2(NAME, T, LOAD)                                                                          \
    static AVX2 void NAME(const T *w, long rows, long cols, long stride, const float *x, float *y,        \
                          int accumulate) {                                                               \
        for (long r = 0; r < rows; r++) {                                                                 \
            const T *row = w + r * stride;                                                                \
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                                   \
            long c = 0;                                                                                   \
            for (; c + 32 <= cols; c += 32) {                                                             \
                a0 = _mm256_fmadd_ps(LOAD(row + c), _mm256_loadu_ps(x + c), a0);                          \
                a1 = _mm256_fmadd_ps(LOAD(row + c + 8), _mm256_loadu_ps(x + c + 8), a1);                  \
                a2 = _mm256_fmadd_ps(LOAD(row + c + 16), _mm256_loadu_ps(x + c + 16), a2);                \
                a3 = _mm256_fmadd_ps(LOAD(row + c + 24), _mm256_loadu_ps(x + c + 24), a3);                \
            }                                                                                             \
            for (; c + 8 <= cols; c += 8) a0 = _mm256_fmadd_ps(LOAD(row + c), _mm256_loadu_ps(x + c), a0); \
            float sum = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));                \
            for (; c < cols; c++) sum = __builtin_fmaf(VALUE_##T(row[c]), x[c], sum);                     \
            y[r] = finish(y + r, sum, accumulate);                                                        \
        }                                                                                                 \
    }

ROWS_AVX2(f32_rows_avx2, float, _mm256_loadu_ps)
ROWS_AVX2(bf16_rows_avx2, uint16_t, load_bf16)

// AVX-512: four 16-lane accumulators over 64 columns, then 16 at a time, then a masked tail.
static inline AVX512 __m512 load16_bf16(const uint16_t *p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}
static inline AVX512 __m512 tail16_f32(const float *p, __mmask16 k) { return _mm512_maskz_loadu_ps(k, p); }
static inline AVX512 __m512 tail16_bf16(const uint16_t *p, __mmask16 k) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, p)), 16));
}

#define ROWS_AVX512(NAME, T, LOAD, TAIL)                                                                  \
    static AVX512 void NAME(const T *w, long rows, long cols, long stride, const float *x, float *y,      \
                            int accumulate) {                                                             \
        for (long r = 0; r < rows; r++) {                                                                 \
            const T *row = w + r * stride;                                                                \
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                                   \
            long c = 0;                                                                                   \
            for (; c + 64 <= cols; c += 64) {                                                             \
                a0 = _mm512_fmadd_ps(LOAD(row + c), _mm512_loadu_ps(x + c), a0);                          \
                a1 = _mm512_fmadd_ps(LOAD(row + c + 16), _mm512_loadu_ps(x + c + 16), a1);                \
                a2 = _mm512_fmadd_ps(LOAD(row + c + 32), _mm512_loadu_ps(x + c + 32), a2);                \
                a3 = _mm512_fmadd_ps(LOAD(row + c + 48), _mm512_loadu_ps(x + c + 48), a3);                \
            }                                                                                             \
            for (; c + 16 <= cols; c += 16) a0 = _mm512_fmadd_ps(LOAD(row + c), _mm512_loadu_ps(x + c), a0); \
            if (c < cols) {                                                                               \
                __mmask16 k = (__mmask16)((1u << (cols - c)) - 1u);                                       \
                a1 = _mm512_fmadd_ps(TAIL(row + c, k), _mm512_maskz_loadu_ps(k, x + c), a1);              \
            }                                                                                             \
            float sum = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3))); \
            y[r] = finish(y + r, sum, accumulate);                                                        \
        }                                                                                                 \
    }

ROWS_AVX512(f32_rows_avx512, float, _mm512_loadu_ps, tail16_f32)
ROWS_AVX512(bf16_rows_avx512, uint16_t, load16_bf16, tail16_bf16)
#endif

static void f32_rows(const float *w, long rows, long cols, long stride, const float *x, float *y, int accumulate) {
#if HAVE_X86
    if (use_avx512()) { f32_rows_avx512(w, rows, cols, stride, x, y, accumulate); return; }
    if (use_avx2()) { f32_rows_avx2(w, rows, cols, stride, x, y, accumulate); return; }
#endif
    f32_rows_portable(w, rows, cols, stride, x, y, accumulate);
}

static void bf16_rows(const uint16_t *w, long rows, long cols, long stride, const float *x, float *y,
                      int accumulate) {
#if HAVE_X86
    if (use_avx512()) { bf16_rows_avx512(w, rows, cols, stride, x, y, accumulate); return; }
    if (use_avx2()) { bf16_rows_avx2(w, rows, cols, stride, x, y, accumulate); return; }
#endif
    bf16_rows_portable(w, rows, cols, stride, x, y, accumulate);
}

// MARK: - Products

typedef struct {
    const void *w;
    const float *x;
    float *y;
    long cols, stride;
    int accumulate, bf16;
} matvec_task;

static void matvec_body(void *context, long begin, long end) {
    const matvec_task *t = context;
    if (t->bf16)
        bf16_rows((const uint16_t *)t->w + begin * t->stride, end - begin, t->cols, t->stride, t->x, t->y + begin,
                  t->accumulate);
    else
        f32_rows((const float *)t->w + begin * t->stride, end - begin, t->cols, t->stride, t->x, t->y + begin,
                 t->accumulate);
}

// Claims are multiples of 4 rows (enough to amortise a claim); below 64 K weights waking the team
// costs more than it saves.
static void matvec(const void *w, long rows, long cols, long stride, const float *x, float *y, int accumulate,
                   int bf16) {
    if (rows <= 0) return;
    if (cols <= 0) {
        if (!accumulate) memset(y, 0, (size_t)rows * sizeof *y);
        return;
    }
    matvec_task task = {w, x, y, cols, stride < cols ? cols : stride, accumulate, bf16};
    team_run(matvec_body, &task, rows, 4, rows * cols >= 65536);
}

void decode_matvec_f32(const float *w, long rows, long cols, long stride, const float *x, float *y, int accumulate) {
    matvec(w, rows, cols, stride, x, y, accumulate, 0);
}

void decode_matvec_bf16(const uint16_t *w, long rows, long cols, long stride, const float *x, float *y,
                        int accumulate) {
    matvec(w, rows, cols, stride, x, y, accumulate, 1);
}

// e^x: vector_exp.h, the encoder kernels' exponential.

// MARK: - SwiGLU

#if HAVE_X86
static AVX2 void silu_multiply_avx2(float *gate, const float *up, long count) {
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    long i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256 g = _mm256_loadu_ps(gate + i);
        __m256 e = hp_exp8(_mm256_sub_ps(zero, g));
        _mm256_storeu_ps(gate + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_loadu_ps(up + i)));
    }
    if (i < count) {  // the tail through a padded vector: the same exp as the rest
        float g[8] = {0, 0, 0, 0, 0, 0, 0, 0}, u[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        memcpy(g, gate + i, (size_t)(count - i) * sizeof(float));
        memcpy(u, up + i, (size_t)(count - i) * sizeof(float));
        silu_multiply_avx2(g, u, 8);
        memcpy(gate + i, g, (size_t)(count - i) * sizeof(float));
    }
}

static AVX512 void silu_multiply_avx512(float *gate, const float *up, long count) {
    const __m512 one = _mm512_set1_ps(1.0f), zero = _mm512_setzero_ps();
    for (long i = 0; i < count; i += 16) {
        __mmask16 k = count - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (count - i)) - 1u);
        __m512 g = _mm512_maskz_loadu_ps(k, gate + i);
        __m512 e = hp_exp16(_mm512_sub_ps(zero, g));
        _mm512_mask_storeu_ps(gate + i, k, _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)), _mm512_maskz_loadu_ps(k, up + i)));
    }
}
#endif

void decode_silu_multiply(float *gate, const float *up, long count) {
#if HAVE_X86
    if (use_avx512()) { silu_multiply_avx512(gate, up, count); return; }
    if (use_avx2()) { silu_multiply_avx2(gate, up, count); return; }
#endif
    for (long i = 0; i < count; i++) gate[i] = gate[i] / (1.0f + hp_exp1(-gate[i])) * up[i];
}

// MARK: - Attention of one query row
//
// Work unit: (block of BLOCK positions, kv head), numbered block by block and within a block kv head
// by kv head, so the last (partial, shorter) block's units come last, where the claims are smallest
// and the threads finish together. A unit runs the kv head's query heads up to PASS_HEADS at a time
// over the block, each key and value row loaded once for them (one head at a time, a unit re-read the
// block from L2 for every head of the group and was bound by that traffic: SmolLM2's attention at
// 160 positions, one thread, 13.1-13.3 -> 10.6-11.3 us a layer). Per (head, block) it writes the
// block's maximum score m, the sum of e^(s - m), and the e^(s - m)-weighted sum of values; the merge
// rescales the blocks to the global maximum. A unit's numbers do not depend on which thread or claim
// computes it, nor on the heads computed beside it. Blocks of 64 positions rather than 128: at
// SmolLM2's shapes and 142 positions, 128 made three long units and three of 14 positions, so one
// thread ran two long units while the other ran one (a third of the pass idle on 2 cores); 64 makes
// six long units that pair up.

enum { BLOCK = 64 };

// MARK: - Prefill attention (many query rows)
//
// Units are (head, block of PREFILL_ROWS query rows), claimed by the team: each runs the fused
// causal kernel over the keys its rows see (a block near the start of the prompt packs and reads
// few keys), so a head's work is split across cores and the short blocks fill the gaps of the long
// ones. Each thread packs into its own slice of the caller's scratch (hp_team_index).

enum { PREFILL_ROWS = 48 };

long decode_prefill_attention_scratch(long head_dim, long length) {
    if (head_dim <= 0 || length <= 0) return 0;
    return (long)decode_team_size() * (long)enc_attention_scratch(length, head_dim);
}

int decode_prefill_attention_supported(long head_dim) { return enc_attention_supported(head_dim); }

typedef struct {
    const float *query, *keys, *values;
    float *output, *scratch;
    long query_stride, output_stride, group, d, kv_head_stride, rows, first_slot, length, blocks, per_thread;
    float scale;
} prefill_attention_task;

static void prefill_attention_body(void *context, long begin, long end) {
    const prefill_attention_task *t = context;
    float *scratch = t->scratch + (long)hp_team_index() * t->per_thread;
    for (long unit = begin; unit < end; unit++) {
        const long h = unit / t->blocks, r0 = unit % t->blocks * PREFILL_ROWS;
        const long n = t->rows - r0 < PREFILL_ROWS ? t->rows - r0 : PREFILL_ROWS;
        const long visible = t->first_slot + r0 + 1;
        const long width = visible + n - 1 < t->length ? visible + n - 1 : t->length;
        const long kv = (h / t->group) * t->kv_head_stride;
        enc_attention_head(t->query + r0 * t->query_stride + h * t->d, t->query_stride, t->keys + kv, t->values + kv, t->d,
                           n, width, visible, t->d, t->scale, t->output + r0 * t->output_stride + h * t->d,
                           t->output_stride, NULL, scratch);
    }
}

void decode_prefill_attention(const float *query, long query_stride, long rows, long heads, long kv_heads, long head_dim,
                              const float *keys, const float *values, long kv_head_stride, long first_slot, long length,
                              float scale, float *output, long output_stride, float *scratch) {
    if (rows <= 0 || heads <= 0 || kv_heads <= 0 || heads % kv_heads != 0 || length <= 0) return;
    prefill_attention_task task = {
        .query = query, .keys = keys, .values = values, .output = output, .scratch = scratch,
        .query_stride = query_stride, .output_stride = output_stride, .group = heads / kv_heads, .d = head_dim,
        .kv_head_stride = kv_head_stride, .rows = rows, .first_slot = first_slot, .length = length,
        .blocks = (rows + PREFILL_ROWS - 1) / PREFILL_ROWS, .per_thread = (long)enc_attention_scratch(length, head_dim),
        .scale = scale,
    };
    hp_team_run(prefill_attention_body, &task, heads * task.blocks, 1, rows * length * head_dim >= 1 << 16);
}

long decode_attention_scratch(long heads, long head_dim, long length) {
    if (heads <= 0 || head_dim <= 0 || length <= 0) return 0;
    return heads * ((length + BLOCK - 1) / BLOCK) * (head_dim + 2);
}

typedef struct {
    const float *query, *keys, *values;
    float *partials;
    long heads, kv_heads, group, d, kv_stride, length, blocks;
    float scale;
} attention_task;

#if HAVE_X86
/// s[j] = e^(s[j] - m) for j < n; returns their sum. The tail goes through a padded vector, so every
/// position takes the same exp.
static AVX2 float exp_shifted_avx2(float *s, long n, float m) {
    __m256 shift = _mm256_set1_ps(m), acc = _mm256_setzero_ps();
    long j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 e = hp_exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j), shift));
        _mm256_storeu_ps(s + j, e);
        acc = _mm256_add_ps(acc, e);
    }
    float sum = hsum(acc);
    if (j < n) {
        float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        memcpy(lanes, s + j, (size_t)(n - j) * sizeof(float));
        _mm256_storeu_ps(lanes, hp_exp8(_mm256_sub_ps(_mm256_loadu_ps(lanes), shift)));
        for (long k = 0; j + k < n; k++) {
            s[j + k] = lanes[k];
            sum += lanes[k];
        }
    }
    return sum;
}

static AVX512 float exp_shifted_avx512(float *s, long n, float m) {
    __m512 shift = _mm512_set1_ps(m), acc = _mm512_setzero_ps();
    for (long j = 0; j < n; j += 16) {
        __mmask16 k = n - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - j)) - 1u);
        __m512 e = _mm512_maskz_mov_ps(k, hp_exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + j), shift)));
        _mm512_mask_storeu_ps(s + j, k, e);
        acc = _mm512_add_ps(acc, e);
    }
    return _mm512_reduce_add_ps(acc);
}
#endif

/// s[j] = e^(scale · s[j] - m) for j < n where m = max scale · s; returns m, the sum in *total.
static float softmax_weights(float *s, long n, float scale, float *total) {
    float m = s[0] * scale;
    for (long j = 0; j < n; j++) {
        s[j] *= scale;
        if (s[j] > m) m = s[j];
    }
#if HAVE_X86
    if (use_avx512()) {
        *total = exp_shifted_avx512(s, n, m);
        return m;
    }
    if (use_avx2()) {
        *total = exp_shifted_avx2(s, n, m);
        return m;
    }
#endif
    float sum = 0;
    for (long j = 0; j < n; j++) {
        s[j] = hp_exp1(s[j] - m);
        sum += s[j];
    }
    *total = sum;
    return m;
}

/// o[c] = Σ_j p[j] · v[j·d + c], positions in order for every column (the portable path; with AVX2
/// or AVX-512 the heads' sums run in weighted_pass_*).
static void weighted_sum(const float *p, const float *v, long n, long d, float *o) {
    for (long c = 0; c < d; c++) o[c] = 0;
    for (long j = 0; j < n; j++)
        for (long c = 0; c < d; c++) o[c] += p[j] * v[j * d + c];
}

// Query heads of a pass: each head's numbers are those of f32_rows and weighted_sum for that head
// alone (the same accumulators in the same order); three heads' accumulators fill the 16 AVX2
// registers with the row's four vectors.
enum { PASS_HEADS = 3 };

#if HAVE_X86
/// s[i][j] = key row j · query i for i < g (queries d apart), as f32_rows_avx2 computes each.
static inline __attribute__((always_inline)) AVX2 void scores_pass_avx2(const float *k, long n, long d, const float *q, const int g,
                                                                       float s[PASS_HEADS][BLOCK]) {
    for (long j = 0; j < n; j++) {
        const float *row = k + j * d;
        __m256 a[PASS_HEADS][4];
        for (int i = 0; i < g; i++)
            for (int m = 0; m < 4; m++) a[i][m] = _mm256_setzero_ps();
        long c = 0;
        for (; c + 32 <= d; c += 32) {
            __m256 w[4];
            for (int m = 0; m < 4; m++) w[m] = _mm256_loadu_ps(row + c + 8 * m);
            for (int i = 0; i < g; i++)
                for (int m = 0; m < 4; m++) a[i][m] = _mm256_fmadd_ps(w[m], _mm256_loadu_ps(q + i * d + c + 8 * m), a[i][m]);
        }
        for (; c + 8 <= d; c += 8) {
            __m256 w = _mm256_loadu_ps(row + c);
            for (int i = 0; i < g; i++) a[i][0] = _mm256_fmadd_ps(w, _mm256_loadu_ps(q + i * d + c), a[i][0]);
        }
        for (int i = 0; i < g; i++) {
            float sum = hsum(_mm256_add_ps(_mm256_add_ps(a[i][0], a[i][1]), _mm256_add_ps(a[i][2], a[i][3])));
            for (long t = c; t < d; t++) sum = __builtin_fmaf(row[t], q[i * d + t], sum);
            s[i][j] = sum;
        }
    }
}

/// o[i][c] = Σ_j p[i][j] · v[j·d + c] for i < g, positions in order for every column, as weighted_sum.
static inline __attribute__((always_inline)) AVX2 void weighted_pass_avx2(float p[PASS_HEADS][BLOCK], const float *v, long n, long d,
                                                                         const int g, float *const o[PASS_HEADS]) {
    long c = 0;
    for (; c + 32 <= d; c += 32) {
        __m256 a[PASS_HEADS][4];
        for (int i = 0; i < g; i++)
            for (int m = 0; m < 4; m++) a[i][m] = _mm256_setzero_ps();
        for (long j = 0; j < n; j++) {
            const float *row = v + j * d + c;
            __m256 w[4];
            for (int m = 0; m < 4; m++) w[m] = _mm256_loadu_ps(row + 8 * m);
            for (int i = 0; i < g; i++) {
                __m256 pj = _mm256_broadcast_ss(p[i] + j);
                for (int m = 0; m < 4; m++) a[i][m] = _mm256_fmadd_ps(pj, w[m], a[i][m]);
            }
        }
        for (int i = 0; i < g; i++)
            for (int m = 0; m < 4; m++) _mm256_storeu_ps(o[i] + c + 8 * m, a[i][m]);
    }
    for (; c + 8 <= d; c += 8) {
        __m256 a[PASS_HEADS];
        for (int i = 0; i < g; i++) a[i] = _mm256_setzero_ps();
        for (long j = 0; j < n; j++) {
            __m256 w = _mm256_loadu_ps(v + j * d + c);
            for (int i = 0; i < g; i++) a[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(p[i] + j), w, a[i]);
        }
        for (int i = 0; i < g; i++) _mm256_storeu_ps(o[i] + c, a[i]);
    }
    for (; c < d; c++)
        for (int i = 0; i < g; i++) {
            float a = 0;
            for (long j = 0; j < n; j++) a = __builtin_fmaf(p[i][j], v[j * d + c], a);
            o[i][c] = a;
        }
}

/// As scores_pass_avx2, as f32_rows_avx512 computes each.
static inline __attribute__((always_inline)) AVX512 void scores_pass_avx512(const float *k, long n, long d, const float *q, const int g,
                                                                           float s[PASS_HEADS][BLOCK]) {
    for (long j = 0; j < n; j++) {
        const float *row = k + j * d;
        __m512 a[PASS_HEADS][4];
        for (int i = 0; i < g; i++)
            for (int m = 0; m < 4; m++) a[i][m] = _mm512_setzero_ps();
        long c = 0;
        for (; c + 64 <= d; c += 64) {
            __m512 w[4];
            for (int m = 0; m < 4; m++) w[m] = _mm512_loadu_ps(row + c + 16 * m);
            for (int i = 0; i < g; i++)
                for (int m = 0; m < 4; m++) a[i][m] = _mm512_fmadd_ps(w[m], _mm512_loadu_ps(q + i * d + c + 16 * m), a[i][m]);
        }
        for (; c + 16 <= d; c += 16) {
            __m512 w = _mm512_loadu_ps(row + c);
            for (int i = 0; i < g; i++) a[i][0] = _mm512_fmadd_ps(w, _mm512_loadu_ps(q + i * d + c), a[i][0]);
        }
        if (c < d) {
            __mmask16 mask = (__mmask16)((1u << (d - c)) - 1u);
            __m512 w = tail16_f32(row + c, mask);
            for (int i = 0; i < g; i++) a[i][1] = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(mask, q + i * d + c), a[i][1]);
        }
        for (int i = 0; i < g; i++)
            s[i][j] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a[i][0], a[i][1]), _mm512_add_ps(a[i][2], a[i][3])));
    }
}

/// As weighted_pass_avx2, with 16-lane vectors.
static inline __attribute__((always_inline)) AVX512 void weighted_pass_avx512(float p[PASS_HEADS][BLOCK], const float *v, long n, long d,
                                                                             const int g, float *const o[PASS_HEADS]) {
    long c = 0;
    for (; c + 64 <= d; c += 64) {
        __m512 a[PASS_HEADS][4];
        for (int i = 0; i < g; i++)
            for (int m = 0; m < 4; m++) a[i][m] = _mm512_setzero_ps();
        for (long j = 0; j < n; j++) {
            const float *row = v + j * d + c;
            __m512 w[4];
            for (int m = 0; m < 4; m++) w[m] = _mm512_loadu_ps(row + 16 * m);
            for (int i = 0; i < g; i++) {
                __m512 pj = _mm512_set1_ps(p[i][j]);
                for (int m = 0; m < 4; m++) a[i][m] = _mm512_fmadd_ps(pj, w[m], a[i][m]);
            }
        }
        for (int i = 0; i < g; i++)
            for (int m = 0; m < 4; m++) _mm512_storeu_ps(o[i] + c + 16 * m, a[i][m]);
    }
    for (; c < d; c += 16) {
        __mmask16 mask = d - c >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (d - c)) - 1u);
        __m512 a[PASS_HEADS];
        for (int i = 0; i < g; i++) a[i] = _mm512_setzero_ps();
        for (long j = 0; j < n; j++) {
            __m512 w = _mm512_maskz_loadu_ps(mask, v + j * d + c);
            for (int i = 0; i < g; i++) a[i] = _mm512_fmadd_ps(_mm512_set1_ps(p[i][j]), w, a[i]);
        }
        for (int i = 0; i < g; i++) _mm512_mask_storeu_ps(o[i] + c, mask, a[i]);
    }
}

static AVX2 void scores_avx2(const float *k, long n, long d, const float *q, int g, float s[PASS_HEADS][BLOCK]) {
    switch (g) {
    case 1: scores_pass_avx2(k, n, d, q, 1, s); break;
    case 2: scores_pass_avx2(k, n, d, q, 2, s); break;
    default: scores_pass_avx2(k, n, d, q, 3, s); break;
    }
}
static AVX2 void weighted_avx2(float p[PASS_HEADS][BLOCK], const float *v, long n, long d, int g, float *const o[PASS_HEADS]) {
    switch (g) {
    case 1: weighted_pass_avx2(p, v, n, d, 1, o); break;
    case 2: weighted_pass_avx2(p, v, n, d, 2, o); break;
    default: weighted_pass_avx2(p, v, n, d, 3, o); break;
    }
}
static AVX512 void scores_avx512(const float *k, long n, long d, const float *q, int g, float s[PASS_HEADS][BLOCK]) {
    switch (g) {
    case 1: scores_pass_avx512(k, n, d, q, 1, s); break;
    case 2: scores_pass_avx512(k, n, d, q, 2, s); break;
    default: scores_pass_avx512(k, n, d, q, 3, s); break;
    }
}
static AVX512 void weighted_avx512(float p[PASS_HEADS][BLOCK], const float *v, long n, long d, int g, float *const o[PASS_HEADS]) {
    switch (g) {
    case 1: weighted_pass_avx512(p, v, n, d, 1, o); break;
    case 2: weighted_pass_avx512(p, v, n, d, 2, o); break;
    default: weighted_pass_avx512(p, v, n, d, 3, o); break;
    }
}
#endif

/// Scores of g (≤ PASS_HEADS) query heads against n key rows.
static void pass_scores(const float *k, long n, long d, const float *q, int g, float s[PASS_HEADS][BLOCK]) {
#if HAVE_X86
    if (use_avx512()) { scores_avx512(k, n, d, q, g, s); return; }
    if (use_avx2()) { scores_avx2(k, n, d, q, g, s); return; }
#endif
    for (int i = 0; i < g; i++) f32_rows(k, n, d, d, q + i * d, s[i], 0);
}

/// The weighted sums of n value rows for g query heads.
static void pass_weighted(float p[PASS_HEADS][BLOCK], const float *v, long n, long d, int g, float *const o[PASS_HEADS]) {
#if HAVE_X86
    if (use_avx512()) { weighted_avx512(p, v, n, d, g, o); return; }
    if (use_avx2()) { weighted_avx2(p, v, n, d, g, o); return; }
#endif
    for (int i = 0; i < g; i++) weighted_sum(p[i], v, n, d, o[i]);
}

static void attention_body(void *context, long begin, long end) {
    const attention_task *t = context;
    float scores[PASS_HEADS][BLOCK];
    for (long unit = begin; unit < end; unit++) {
        long b = unit / t->kv_heads, kv = unit % t->kv_heads;
        long first = b * BLOCK, n = t->length - first < BLOCK ? t->length - first : BLOCK;
        const float *k = t->keys + kv * t->kv_stride + first * t->d;
        const float *v = t->values + kv * t->kv_stride + first * t->d;
        for (long h = kv * t->group, last = (kv + 1) * t->group; h < last; h += PASS_HEADS) {
            int g = last - h < PASS_HEADS ? (int)(last - h) : PASS_HEADS;
            pass_scores(k, n, t->d, t->query + h * t->d, g, scores);
            float *outputs[PASS_HEADS];
            for (int i = 0; i < g; i++) {
                float *out = t->partials + ((h + i) * t->blocks + b) * (t->d + 2), total;
                out[0] = softmax_weights(scores[i], n, t->scale, &total);
                out[1] = total;
                outputs[i] = out + 2;
            }
            pass_weighted(scores, v, n, t->d, g, outputs);
        }
    }
}

void decode_attention(const float *query, long heads, long kv_heads, long head_dim, const float *keys,
                      const float *values, long kv_head_stride, long length, float scale, float *output,
                      float *partials) {
    if (heads <= 0 || kv_heads <= 0 || head_dim <= 0 || length <= 0 || heads % kv_heads != 0) return;
    long d = head_dim, blocks = (length + BLOCK - 1) / BLOCK;
    attention_task task = {query, keys, values, partials, heads, kv_heads, heads / kv_heads, d, kv_head_stride, length, blocks, scale};
    // Below a few thousand multiply-adds per head, waking the team costs more than it saves.
    // A unit at a time: at SmolLM2's shapes and 142 positions there are nine units, three of them a
    // fifth of the others; the first share of a guided split would leave one thread a unit behind.
    team_run_single(attention_body, &task, kv_heads * blocks, 1, length * d * heads >= 16384);
    for (long h = 0; h < heads; h++) {
        const float *part = partials + h * blocks * (d + 2);
        float m = part[0];
        for (long b = 1; b < blocks; b++)
            if (part[b * (d + 2)] > m) m = part[b * (d + 2)];
        float *o = output + h * d;
        for (long c = 0; c < d; c++) o[c] = 0;
        float total = 0;
        for (long b = 0; b < blocks; b++) {
            const float *p = part + b * (d + 2);
            float weight = blocks == 1 ? 1.0f : hp_exp1(p[0] - m);
            total += weight * p[1];
            for (long c = 0; c < d; c++) o[c] += weight * p[2 + c];
        }
        float inverse = 1.0f / total;
        for (long c = 0; c < d; c++) o[c] *= inverse;
    }
}

// MARK: - Bandwidth probe

typedef struct {
    const float *data;
    long count;
    _Atomic double sum;
} sum_task;

#if HAVE_X86
static AVX2 double sum_avx2(const float *p, long n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    long i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_add_ps(a0, _mm256_loadu_ps(p + i));
        a1 = _mm256_add_ps(a1, _mm256_loadu_ps(p + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_loadu_ps(p + i + 16));
        a3 = _mm256_add_ps(a3, _mm256_loadu_ps(p + i + 24));
    }
    double s = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) s += p[i];
    return s;
}

static AVX512 double sum_avx512(const float *p, long n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    long i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_add_ps(a0, _mm512_loadu_ps(p + i));
        a1 = _mm512_add_ps(a1, _mm512_loadu_ps(p + i + 16));
        a2 = _mm512_add_ps(a2, _mm512_loadu_ps(p + i + 32));
        a3 = _mm512_add_ps(a3, _mm512_loadu_ps(p + i + 48));
    }
    double s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
    for (; i < n; i++) s += p[i];
    return s;
}
#endif

enum { SUM_UNIT = 4096 };

static void sum_body(void *context, long begin, long end) {
    sum_task *t = context;
    long from = begin * SUM_UNIT, to = end * SUM_UNIT < t->count ? end * SUM_UNIT : t->count;
    double s = 0;
#if HAVE_X86
    if (use_avx512()) s = sum_avx512(t->data + from, to - from);
    else if (use_avx2()) s = sum_avx2(t->data + from, to - from);
    else
#endif
        for (long i = from; i < to; i++) s += t->data[i];
    double old = atomic_load(&t->sum);
    while (!atomic_compare_exchange_weak(&t->sum, &old, old + s)) {}
}

double decode_stream_sum(const float *data, long count) {
    sum_task task = {data, count, 0.0};
    long units = (count + SUM_UNIT - 1) / SUM_UNIT;
    if (units > MAX_UNITS) {  // beyond 4 G floats: in parts
        double total = 0;
        for (long at = 0; at < count; at += (long)MAX_UNITS * SUM_UNIT) {
            long part = count - at < (long)MAX_UNITS * SUM_UNIT ? count - at : (long)MAX_UNITS * SUM_UNIT;
            total += decode_stream_sum(data + at, part);
        }
        return total;
    }
    team_run(sum_body, &task, units, 1, count >= 65536);
    return atomic_load(&task.sum);
}

// MARK: - Widening BF16
//
// A product of many rows (a prefill) widens a BF16 matrix into F32 scratch before the GEMM. The
// pass reads 2 bytes and writes 4 per value: bound by memory bandwidth, so it runs on the team.

typedef struct {
    const uint16_t *source;
    float *destination;
    long count;
} widen_task;

enum { WIDEN_UNIT = 16384 };

#if HAVE_X86
static AVX2 void widen_avx2(const uint16_t *src, float *dst, long n) {
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        _mm256_storeu_ps(dst + i, load_bf16(src + i));
        _mm256_storeu_ps(dst + i + 8, load_bf16(src + i + 8));
    }
    for (; i < n; i++) dst[i] = bf16_value(src[i]);
}

static AVX512 void widen_avx512(const uint16_t *src, float *dst, long n) {
    long i = 0;
    for (; i + 32 <= n; i += 32) {
        _mm512_storeu_ps(dst + i, load16_bf16(src + i));
        _mm512_storeu_ps(dst + i + 16, load16_bf16(src + i + 16));
    }
    for (; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1u);
        _mm512_mask_storeu_ps(dst + i, k, tail16_bf16(src + i, k));
    }
}
#endif

static void widen_body(void *context, long begin, long end) {
    widen_task *t = context;
    long from = begin * WIDEN_UNIT, to = end * WIDEN_UNIT < t->count ? end * WIDEN_UNIT : t->count;
#if HAVE_X86
    if (use_avx512()) {
        widen_avx512(t->source + from, t->destination + from, to - from);
        return;
    }
    if (use_avx2()) {
        widen_avx2(t->source + from, t->destination + from, to - from);
        return;
    }
#endif
    for (long i = from; i < to; i++) t->destination[i] = bf16_value(t->source[i]);
}

void decode_widen_bf16(const uint16_t *source, float *destination, long count) {
    for (long at = 0; at < count; at += (long)MAX_UNITS * WIDEN_UNIT) {
        long part = count - at < (long)MAX_UNITS * WIDEN_UNIT ? count - at : (long)MAX_UNITS * WIDEN_UNIT;
        widen_task task = {source + at, destination + at, part};
        team_run(widen_body, &task, (part + WIDEN_UNIT - 1) / WIDEN_UNIT, 1, part >= 65536);
    }
}

// MARK: - Weight memory
//
// Regions are 2 MiB-aligned mappings advised as huge pages. Allocations up to a quarter region are
// carved one after another from the open region (the weights of one model end up contiguous); larger
// ones get a region of their own. A 64-byte header before each allocation names its region, which is
// unmapped when its last allocation is released (the open region holds one reference of its own).

enum { HUGE_PAGE = 2 << 20, REGION = 32 << 20, HEADER = 64 };

typedef struct {
    char *base;
    size_t size, used;
    atomic_long references;
} weight_region;

static pthread_mutex_t region_lock = PTHREAD_MUTEX_INITIALIZER;
static weight_region *open_region;

static weight_region *map_region(size_t size) {
    size = (size + HUGE_PAGE - 1) & ~(size_t)(HUGE_PAGE - 1);
    weight_region *region = malloc(sizeof *region);
    if (!region) return NULL;
    char *mapped = mmap(NULL, size + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mapped == MAP_FAILED) {
        free(region);
        return NULL;
    }
    // Trim to a 2 MiB boundary so that every 2 MiB of the region can be one page.
    char *base = (char *)(((uintptr_t)mapped + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    if (base > mapped) munmap(mapped, (size_t)(base - mapped));
    size_t tail = (size_t)(mapped + size + HUGE_PAGE - (base + size));
    if (tail) munmap(base + size, tail);
#if defined(MADV_HUGEPAGE)
    madvise(base, size, MADV_HUGEPAGE);
#endif
    region->base = base;
    region->size = size;
    region->used = 0;
    atomic_init(&region->references, 1);
    return region;
}

static void drop_region(weight_region *region) {
    if (atomic_fetch_sub(&region->references, 1) == 1) {
        munmap(region->base, region->size);
        free(region);
    }
}

void *decode_weights_allocate(long bytes) {
    if (bytes < 0) return NULL;
    size_t need = ((size_t)bytes + HEADER + 63) & ~(size_t)63;
    weight_region *region;
    char *start;
    if (need > REGION / 4) {
        region = map_region(need);
        if (!region) return NULL;
        start = region->base;
    } else {
        pthread_mutex_lock(&region_lock);
        if (!open_region || open_region->used + need > open_region->size) {
            weight_region *fresh = map_region(REGION);
            if (!fresh) {
                pthread_mutex_unlock(&region_lock);
                return NULL;
            }
            if (open_region) drop_region(open_region);
            open_region = fresh;
        }
        region = open_region;
        start = region->base + region->used;
        region->used += need;
        atomic_fetch_add(&region->references, 1);
        pthread_mutex_unlock(&region_lock);
    }
    memcpy(start, &region, sizeof region);
    return start + HEADER;
}

void decode_weights_release(void *pointer) {
    if (!pointer) return;
    weight_region *region;
    memcpy(&region, (char *)pointer - HEADER, sizeof region);
    drop_region(region);
}

#if defined(__linux__)
/// FilePmdMapped of /proc/self/smaps_rollup in kB: file pages this process maps 2 MiB at a time.
static long file_pmd_kb(void) {
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    if (!f) return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "FilePmdMapped:", 14) == 0) {
            kb = atol(line + 14);
            break;
        }
    fclose(f);
    return kb;
}

/// Whether touching the 2 MiB at `chunk` (2 MiB-aligned, in a mapping advised as huge) maps them as one page.
static int touch_maps_huge(const char *chunk) {
    long before = file_pmd_kb();
    if (before < 0) return 0;
    (void)*(const volatile char *)chunk;
    return file_pmd_kb() - before >= HUGE_PAGE / 1024;
}
#endif

void *decode_map_weights_file(int fd, long bytes) {
    if (bytes <= 0) {
        errno = EINVAL;
        return NULL;
    }
    size_t size = (size_t)bytes;
    char *reserved = mmap(NULL, size + HUGE_PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (reserved == MAP_FAILED) return NULL;
    char *base = (char *)(((uintptr_t)reserved + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    if (mmap(base, size, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0) == MAP_FAILED) {
        int saved = errno;
        munmap(reserved, size + HUGE_PAGE);
        errno = saved;
        return NULL;
    }
    // The reservation's slack before and after the file (page-granular: the file's last page stays).
    size_t page = (size_t)sysconf(_SC_PAGESIZE), mapped = (size + page - 1) / page * page;
    if (base > reserved) munmap(reserved, (size_t)(base - reserved));
    if (reserved + size + HUGE_PAGE > base + mapped) munmap(base + mapped, (size_t)(reserved + size + HUGE_PAGE - (base + mapped)));
#if defined(__linux__) && defined(MADV_HUGEPAGE) && defined(POSIX_FADV_DONTNEED)
    if (size >= 2 * (size_t)HUGE_PAGE && madvise(base, size, MADV_HUGEPAGE) == 0) {
        char *probe = base + HUGE_PAGE;  // the first 2 MiB hold the header, which the caller reads now
        if (!touch_maps_huge(probe)) {
            madvise(probe, HUGE_PAGE, MADV_DONTNEED);
            posix_fadvise(fd, HUGE_PAGE, HUGE_PAGE, POSIX_FADV_DONTNEED);
            if (touch_maps_huge(probe)) posix_fadvise(fd, 2 * HUGE_PAGE, 0, POSIX_FADV_DONTNEED);
        }
    }
#endif
    return base;
}

void decode_heap_trim(void) {
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
}
