// BF16 products with F32 accumulation (contract in include/bf16_gemm.h).
#include "bf16_gemm.h"

#include <stdlib.h>
#include <string.h>

#include "cpu_features.h"
#include "team.h"

#if defined(__x86_64__) || defined(__i386__)
#define BF16_X86 1
#include <immintrin.h>
#define AVX512BF16 __attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))
#endif

enum { PANEL = 32, MICRO = 6, BLOCK = 96 };  // outputs per panel, rows per tile, rows per claimed unit

static long pairs_of(long k) { return (k + 1) / 2; }

size_t bf16_packed_words(long n, long k) {
    if (n <= 0 || k <= 0) return 0;
    return (size_t)((n + PANEL - 1) / PANEL) * (size_t)pairs_of(k) * PANEL;
}

void bf16_pack_panels(const uint16_t *w, long n, long k, uint32_t *packed) {
    const long pairs = pairs_of(k), panels = (n + PANEL - 1) / PANEL;
    for (long panel = 0; panel < panels; panel++) {
        uint32_t *out = packed + panel * pairs * PANEL;
        for (long jj = 0; jj < PANEL; jj++) {
            const long j = panel * PANEL + jj;
            for (long p = 0; p < pairs; p++) {
                uint32_t lo = 0, hi = 0;
                if (j < n) {
                    lo = w[j * k + 2 * p];
                    hi = 2 * p + 1 < k ? w[j * k + 2 * p + 1] : 0;
                }
                out[p * PANEL + jj] = lo | (hi << 16);
            }
        }
    }
}

int bf16_gemm_native(void) { return hp_isa_active() >= HP_ISA_AVX512 && hp_cpu_has(HP_CPU_AVX512_BF16); }

static int emulation = 0;

int bf16_gemm_emulate(int on) { return __atomic_exchange_n(&emulation, on != 0, __ATOMIC_RELAXED); }

int bf16_gemm_mode(void) {
    if (bf16_gemm_native()) return 1;
    return __atomic_load_n(&emulation, __ATOMIC_RELAXED) ? 2 : 0;
}

// MARK: - Portable (the same sums, in the instruction's order)

static inline uint16_t round_bf16(float v) {
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    if ((bits & 0x7F800000u) == 0x7F800000u) return (uint16_t)((bits >> 16) | ((bits & 0xFFFF) ? 0x40 : 0));  // inf, NaN
    bits += 0x7FFFu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

static inline float widen(uint32_t half) {
    uint32_t bits = half << 16;
    float v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

/// x rows rounded to BF16 pairs: row r's pair p at out[r·pairs + p] (zero past k).
static void round_rows(const float *x, long rows, long x_stride, long k, uint32_t *out) {
    const long pairs = pairs_of(k);
    for (long r = 0; r < rows; r++) {
        const float *row = x + r * x_stride;
        for (long p = 0; p < pairs; p++) {
            uint32_t lo = round_bf16(row[2 * p]), hi = 2 * p + 1 < k ? round_bf16(row[2 * p + 1]) : 0;
            out[r * pairs + p] = lo | (hi << 16);
        }
    }
}

static void block_portable(const uint32_t *xb, long rows, const uint32_t *packed, long n, long pairs, float *y,
                           long y_stride, float beta) {
    for (long r = 0; r < rows; r++) {
        for (long j = 0; j < n; j++) {
            const uint32_t *wp = packed + (j / PANEL) * pairs * PANEL + j % PANEL;
            float acc = 0;
            for (long p = 0; p < pairs; p++) {
                uint32_t a = xb[r * pairs + p], b = wp[p * PANEL];
                acc += widen(a >> 16) * widen(b >> 16);
                acc += widen(a & 0xFFFF) * widen(b & 0xFFFF);
            }
            float *out = y + r * y_stride + j;
            *out = beta == 0 ? acc : beta * *out + acc;
        }
    }
}

// MARK: - AVX512-BF16

#ifdef BF16_X86
AVX512BF16 static void round_rows_native(const float *x, long rows, long x_stride, long k, uint32_t *out) {
    const long pairs = pairs_of(k);
    for (long r = 0; r < rows; r++) {
        const float *row = x + r * x_stride;
        uint16_t *dst = (uint16_t *)(out + r * pairs);
        long t = 0;
        for (; t + 16 <= k; t += 16) _mm256_storeu_si256((__m256i *)(dst + t), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(row + t)));
        if (t < 2 * pairs) {
            // The tail (and the zero that pads an odd k) through a masked load.
            __mmask16 load = (__mmask16)((1u << (k - t)) - 1u), store = (__mmask16)((1u << (2 * pairs - t)) - 1u);
            __m256i v = (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(load, row + t));
            _mm256_mask_storeu_epi16(dst + t, store, v);
        }
    }
}

/// Rows r0 ..< r0 + 6 (rows past `rows` repeat row 0 and are not stored) × one panel of 32 outputs.
AVX512BF16 static void tile_native(const uint32_t *xb, long rows, long pairs, const uint32_t *panel, long outputs,
                                   float *y, long y_stride, float beta) {
    const uint32_t *a[MICRO];
    for (int r = 0; r < MICRO; r++) a[r] = xb + (r < rows ? r : 0) * pairs;
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m512 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (long p = 0; p < pairs; p++) {
        __m512bh b0 = (__m512bh)_mm512_loadu_si512(panel + p * PANEL), b1 = (__m512bh)_mm512_loadu_si512(panel + p * PANEL + 16);
        __m512bh x;
        x = (__m512bh)_mm512_set1_epi32((int)a[0][p]); c00 = _mm512_dpbf16_ps(c00, x, b0); c01 = _mm512_dpbf16_ps(c01, x, b1);
        x = (__m512bh)_mm512_set1_epi32((int)a[1][p]); c10 = _mm512_dpbf16_ps(c10, x, b0); c11 = _mm512_dpbf16_ps(c11, x, b1);
        x = (__m512bh)_mm512_set1_epi32((int)a[2][p]); c20 = _mm512_dpbf16_ps(c20, x, b0); c21 = _mm512_dpbf16_ps(c21, x, b1);
        x = (__m512bh)_mm512_set1_epi32((int)a[3][p]); c30 = _mm512_dpbf16_ps(c30, x, b0); c31 = _mm512_dpbf16_ps(c31, x, b1);
        x = (__m512bh)_mm512_set1_epi32((int)a[4][p]); c40 = _mm512_dpbf16_ps(c40, x, b0); c41 = _mm512_dpbf16_ps(c41, x, b1);
        x = (__m512bh)_mm512_set1_epi32((int)a[5][p]); c50 = _mm512_dpbf16_ps(c50, x, b0); c51 = _mm512_dpbf16_ps(c51, x, b1);
    }
    __m512 acc[MICRO][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    const __mmask16 k0 = outputs >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << outputs) - 1u);
    const __mmask16 k1 = outputs >= 32 ? (__mmask16)0xFFFF : outputs <= 16 ? 0 : (__mmask16)((1u << (outputs - 16)) - 1u);
    const __m512 vb = _mm512_set1_ps(beta);
    for (long r = 0; r < rows && r < MICRO; r++) {
        float *out = y + r * y_stride;
        __m512 v0 = acc[r][0], v1 = acc[r][1];
        if (beta != 0) {
            v0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(k0, out), v0);
            v1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(k1, out + 16), v1);
        }
        _mm512_mask_storeu_ps(out, k0, v0);
        _mm512_mask_storeu_ps(out + 16, k1, v1);
    }
}

AVX512BF16 static void block_native(const uint32_t *xb, long rows, const uint32_t *packed, long n, long pairs, float *y,
                                    long y_stride, float beta) {
    const long panels = (n + PANEL - 1) / PANEL;
    // Each panel (pairs · 128 bytes: 192 KB at k = 3072) stays in L2 while the block's rows pass over it.
    for (long panel = 0; panel < panels; panel++) {
        const long outputs = n - panel * PANEL < PANEL ? n - panel * PANEL : PANEL;
        for (long r = 0; r < rows; r += MICRO) {
            tile_native(xb + r * pairs, rows - r, pairs, packed + panel * pairs * PANEL, outputs,
                        y + r * y_stride + panel * PANEL, y_stride, beta);
        }
    }
}
#endif

// MARK: - Driver

typedef struct {
    const float *x;
    const uint32_t *packed;
    float *y;
    long rows, x_stride, n, k, y_stride;
    float beta;
    int native;
} gemm_task;

static void gemm_body(void *context, long begin, long end) {
    const gemm_task *t = context;
    const long pairs = pairs_of(t->k);
    uint32_t *xb = malloc((size_t)BLOCK * (size_t)pairs * sizeof *xb);
    for (long unit = begin; unit < end; unit++) {
        const long r0 = unit * BLOCK, rows = t->rows - r0 < BLOCK ? t->rows - r0 : BLOCK;
        const float *x = t->x + r0 * t->x_stride;
        float *y = t->y + r0 * t->y_stride;
        if (!xb) {  // no memory for the rounded rows: one row at a time from the stack
            for (long r = 0; r < rows; r++) {
                uint32_t one[pairs];
                round_rows(x + r * t->x_stride, 1, t->x_stride, t->k, one);
                block_portable(one, 1, t->packed, t->n, pairs, y + r * t->y_stride, t->y_stride, t->beta);
            }
            continue;
        }
#ifdef BF16_X86
        if (t->native) {
            round_rows_native(x, rows, t->x_stride, t->k, xb);
            block_native(xb, rows, t->packed, t->n, pairs, y, t->y_stride, t->beta);
            continue;
        }
#endif
        round_rows(x, rows, t->x_stride, t->k, xb);
        block_portable(xb, rows, t->packed, t->n, pairs, y, t->y_stride, t->beta);
    }
    free(xb);
}

void bf16_gemm(const float *x, long rows, long x_stride, const uint32_t *packed, long n, long k, float *y,
               long y_stride, float beta, int force_portable) {
    if (rows <= 0 || n <= 0) return;
    if (k <= 0) {
        for (long r = 0; r < rows; r++)
            for (long j = 0; j < n; j++) y[r * y_stride + j] = beta == 0 ? 0 : beta * y[r * y_stride + j];
        return;
    }
    gemm_task task = {x, packed, y, rows, x_stride, n, k, y_stride, beta, !force_portable && bf16_gemm_native()};
    hp_team_run(gemm_body, &task, (rows + BLOCK - 1) / BLOCK, 1, rows * n * k >= 1 << 20);
}

// MARK: - F32 activations × BF16 weights as stored (bf16w_gemm)
//
// C's transpose is computed: a micro-kernel holds RT rows of x as vector lanes (x packed once per
// call into tiles of RT rows, [t][RT]) and broadcasts MR weights per column t straight from the
// row-major BF16 rows. A weight is widened by one AND: the 32-bit word ending at w[t] holds w[t] in
// its high half, so masking off the low half (w[t − 1]) leaves the F32 value. The weights are never
// copied: each MR-row micro-panel streams from L2 while a tile of x (RT × KC floats) stays in L1.
// Sums over t run in a fixed order (KC blocks, t ascending), whatever the thread split.

enum { KC = 256, UNIT_OUTPUTS = 96, CHUNK_ROWS = 256 };

static long round_up(long v, long to) { return (v + to - 1) / to * to; }

/// Rows of x per call of the inner driver (and packed at once): at most CHUNK_ROWS, balanced.
static long chunk_rows(long rows, long rt) {
    const long chunks = (rows + CHUNK_ROWS - 1) / CHUNK_ROWS;
    return round_up((rows + chunks - 1) / chunks, rt);
}

#ifdef BF16_X86
#define AVX2_FMA __attribute__((target("avx2,fma")))
#define AVX512F_ONLY __attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512dq")))

// A float read at any 2-byte boundary (the word ending at a BF16 value).
typedef float loose_float __attribute__((aligned(2), may_alias));

/// acc (MR = 6 outputs × 16 rows, 12 vectors) (+)= Σ_{t0 ≤ t < t0 + kc} w_i[t] · xt[t][0 ..< 16].
AVX2_FMA static void micro_avx2(const uint16_t *const *w, long t0, long kc, const float *xt, float *acc, int load) {
    __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
    if (load) {
        c00 = _mm256_load_ps(acc + 0), c01 = _mm256_load_ps(acc + 8), c10 = _mm256_load_ps(acc + 16), c11 = _mm256_load_ps(acc + 24);
        c20 = _mm256_load_ps(acc + 32), c21 = _mm256_load_ps(acc + 40), c30 = _mm256_load_ps(acc + 48), c31 = _mm256_load_ps(acc + 56);
        c40 = _mm256_load_ps(acc + 64), c41 = _mm256_load_ps(acc + 72), c50 = _mm256_load_ps(acc + 80), c51 = _mm256_load_ps(acc + 88);
    } else {
        c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
    }
    const uint16_t *w0 = w[0] - 1, *w1 = w[1] - 1, *w2 = w[2] - 1, *w3 = w[3] - 1, *w4 = w[4] - 1, *w5 = w[5] - 1;
    const __m256 high = _mm256_castsi256_ps(_mm256_set1_epi32((int)0xFFFF0000u));
    long t = t0;
    const long end = t0 + kc;
    if (t == 0) {
        // Column 0 has no word ending at it inside the row: widened on its own.
#define FIRST(I) _mm256_castsi256_ps(_mm256_set1_epi32((int)((uint32_t)w[I][0] << 16)))
        const __m256 x0 = _mm256_load_ps(xt), x1 = _mm256_load_ps(xt + 8);
        __m256 b;
        b = FIRST(0); c00 = _mm256_fmadd_ps(b, x0, c00); c01 = _mm256_fmadd_ps(b, x1, c01);
        b = FIRST(1); c10 = _mm256_fmadd_ps(b, x0, c10); c11 = _mm256_fmadd_ps(b, x1, c11);
        b = FIRST(2); c20 = _mm256_fmadd_ps(b, x0, c20); c21 = _mm256_fmadd_ps(b, x1, c21);
        b = FIRST(3); c30 = _mm256_fmadd_ps(b, x0, c30); c31 = _mm256_fmadd_ps(b, x1, c31);
        b = FIRST(4); c40 = _mm256_fmadd_ps(b, x0, c40); c41 = _mm256_fmadd_ps(b, x1, c41);
        b = FIRST(5); c50 = _mm256_fmadd_ps(b, x0, c50); c51 = _mm256_fmadd_ps(b, x1, c51);
#undef FIRST
        t = 1;
        xt += 16;
    }
    if (t < end) {
        // In assembly: with intrinsics the compiler spills an accumulator (12 accumulators, two
        // columns of x, the weight and the mask fill all 16 registers) or turns the broadcast and
        // mask into shuffle-port instructions. Per column: two loads of x, six broadcast loads of the
        // word ending at w_i[t], six ANDs, twelve FMAs.
        long index = t;
        const float *xp = xt;
        __m256 x0, x1, b;
        __asm__ volatile(
            "1:\n\t"
            "vmovaps (%[xp]), %[x0]\n\t"
            "vmovaps 32(%[xp]), %[x1]\n\t"
            "vbroadcastss (%[w0],%[i],2), %[b]\n\t"
            "vandps %[high], %[b], %[b]\n\t"
            "vfmadd231ps %[x0], %[b], %[c00]\n\t"
            "vfmadd231ps %[x1], %[b], %[c01]\n\t"
            "vbroadcastss (%[w1],%[i],2), %[b]\n\t"
            "vandps %[high], %[b], %[b]\n\t"
            "vfmadd231ps %[x0], %[b], %[c10]\n\t"
            "vfmadd231ps %[x1], %[b], %[c11]\n\t"
            "vbroadcastss (%[w2],%[i],2), %[b]\n\t"
            "vandps %[high], %[b], %[b]\n\t"
            "vfmadd231ps %[x0], %[b], %[c20]\n\t"
            "vfmadd231ps %[x1], %[b], %[c21]\n\t"
            "vbroadcastss (%[w3],%[i],2), %[b]\n\t"
            "vandps %[high], %[b], %[b]\n\t"
            "vfmadd231ps %[x0], %[b], %[c30]\n\t"
            "vfmadd231ps %[x1], %[b], %[c31]\n\t"
            "vbroadcastss (%[w4],%[i],2), %[b]\n\t"
            "vandps %[high], %[b], %[b]\n\t"
            "vfmadd231ps %[x0], %[b], %[c40]\n\t"
            "vfmadd231ps %[x1], %[b], %[c41]\n\t"
            "vbroadcastss (%[w5],%[i],2), %[b]\n\t"
            "vandps %[high], %[b], %[b]\n\t"
            "vfmadd231ps %[x0], %[b], %[c50]\n\t"
            "vfmadd231ps %[x1], %[b], %[c51]\n\t"
            "addq $64, %[xp]\n\t"
            "incq %[i]\n\t"
            "cmpq %[end], %[i]\n\t"
            "jl 1b\n\t"
            : [c00] "+x"(c00), [c01] "+x"(c01), [c10] "+x"(c10), [c11] "+x"(c11), [c20] "+x"(c20), [c21] "+x"(c21),
              [c30] "+x"(c30), [c31] "+x"(c31), [c40] "+x"(c40), [c41] "+x"(c41), [c50] "+x"(c50), [c51] "+x"(c51),
              [x0] "=&x"(x0), [x1] "=&x"(x1), [b] "=&x"(b), [xp] "+r"(xp), [i] "+r"(index)
            : [w0] "r"(w0), [w1] "r"(w1), [w2] "r"(w2), [w3] "r"(w3), [w4] "r"(w4), [w5] "r"(w5), [high] "x"(high),
              [end] "r"(end)
            : "cc", "memory");
    }
    _mm256_store_ps(acc + 0, c00), _mm256_store_ps(acc + 8, c01), _mm256_store_ps(acc + 16, c10), _mm256_store_ps(acc + 24, c11);
    _mm256_store_ps(acc + 32, c20), _mm256_store_ps(acc + 40, c21), _mm256_store_ps(acc + 48, c30), _mm256_store_ps(acc + 56, c31);
    _mm256_store_ps(acc + 64, c40), _mm256_store_ps(acc + 72, c41), _mm256_store_ps(acc + 80, c50), _mm256_store_ps(acc + 88, c51);
}

/// acc (MR = 12 outputs × 32 rows, 24 vectors) (+)= Σ w_i[t] · xt[t][0 ..< 32]. Named accumulators
/// (arrays of vectors stay in memory): 24 of them, two columns of x, the weight and the mask fit the
/// 32 registers.
#define EACH12(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11)
AVX512F_ONLY static void micro_avx512(const uint16_t *const *w, long t0, long kc, const float *xt, float *acc, int load) {
#define DECLARE(I)                                                              \
    __m512 a##I = load ? _mm512_load_ps(acc + 32 * I) : _mm512_setzero_ps();    \
    __m512 b##I = load ? _mm512_load_ps(acc + 32 * I + 16) : _mm512_setzero_ps(); \
    const uint16_t *p##I = w[I] - 1;
    EACH12(DECLARE)
#undef DECLARE
    const __m512i high = _mm512_set1_epi32((int)0xFFFF0000u);
    long t = t0;
    const long end = t0 + kc;
    if (t == 0) {
        const __m512 x0 = _mm512_load_ps(xt), x1 = _mm512_load_ps(xt + 16);
#define FIRST(I)                                                                                   \
    {                                                                                              \
        const __m512 v = _mm512_castsi512_ps(_mm512_set1_epi32((int)((uint32_t)w[I][0] << 16)));   \
        a##I = _mm512_fmadd_ps(v, x0, a##I);                                                       \
        b##I = _mm512_fmadd_ps(v, x1, b##I);                                                       \
    }
        EACH12(FIRST)
#undef FIRST
        t = 1;
        xt += 32;
    }
    for (; t < end; t++, xt += 32) {
        const __m512 x0 = _mm512_load_ps(xt), x1 = _mm512_load_ps(xt + 16);
#define STEP(I)                                                                                                       \
    {                                                                                                                 \
        const __m512 v = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(_mm512_set1_ps(*(const loose_float *)(p##I + t))), high)); \
        a##I = _mm512_fmadd_ps(v, x0, a##I);                                                                          \
        b##I = _mm512_fmadd_ps(v, x1, b##I);                                                                          \
    }
        EACH12(STEP)
#undef STEP
    }
#define STORE(I)                               \
    _mm512_store_ps(acc + 32 * I, a##I);       \
    _mm512_store_ps(acc + 32 * I + 16, b##I);
    EACH12(STORE)
#undef STORE
}
#undef EACH12
#endif

typedef void (*micro_kernel)(const uint16_t *const *w, long t0, long kc, const float *xt, float *acc, int load);

typedef struct {
    const float *xt;  // packed tiles of this chunk
    const uint16_t *w;
    float *y;         // the chunk's first row
    long rows, n, k, w_stride, y_stride;
    float beta;
    int rt, mr;
    micro_kernel kernel;
} wide_task;

/// Per thread: the unit's accumulators, [tile][panel][mr][rt] (at most CHUNK_ROWS × UNIT_OUTPUTS).
static _Thread_local float *unit_acc;

static void wide_body(void *context, long begin, long end) {
    const wide_task *t = context;
    if (!unit_acc) {
        unit_acc = aligned_alloc(64, (size_t)CHUNK_ROWS * UNIT_OUTPUTS * sizeof(float));
        if (!unit_acc) abort();  // 96 KB: nothing sensible is left to do without it
    }
    const int rt = t->rt, mr = t->mr;
    const long tiles = (t->rows + rt - 1) / rt, block = (long)mr * rt;
    for (long unit = begin; unit < end; unit++) {
        const long j0 = unit * UNIT_OUTPUTS, outputs = t->n - j0 < UNIT_OUTPUTS ? t->n - j0 : UNIT_OUTPUTS;
        const long panels = (outputs + mr - 1) / mr;
        for (long t0 = 0; t0 < t->k; t0 += KC) {
            const long kc = t->k - t0 < KC ? t->k - t0 : KC;
            for (long tile = 0; tile < tiles; tile++) {
                const float *xt = t->xt + (tile * t->k + t0) * rt;
                for (long panel = 0; panel < panels; panel++) {
                    const uint16_t *w[12];
                    for (int i = 0; i < mr; i++) {
                        const long j = j0 + panel * mr + i < t->n ? j0 + panel * mr + i : t->n - 1;  // past n: any row, not stored
                        w[i] = t->w + j * t->w_stride;
                    }
                    t->kernel(w, t0, kc, xt, unit_acc + (tile * panels + panel) * block, t0 > 0);
                }
            }
        }
        // Into y row by row (each row's outputs contiguous; the tile's accumulators stay in L1).
        for (long tile = 0; tile < tiles; tile++) {
            const long r0 = tile * rt, valid = t->rows - r0 < rt ? t->rows - r0 : rt;
            const float *acc = unit_acc + tile * panels * block;
            for (long r = 0; r < valid; r++) {
                float *out = t->y + (r0 + r) * t->y_stride + j0;
                for (long panel = 0, j = 0; panel < panels; panel++) {
                    const float *a = acc + panel * block + r;
                    for (int i = 0; i < mr && j < outputs; i++, j++) out[j] = t->beta == 0 ? a[i * rt] : t->beta * out[j] + a[i * rt];
                }
            }
        }
    }
}

typedef struct {
    const float *x;
    long rows, x_stride, k;
    int rt;
    float *xt;
} pack_task;

/// x^T by tiles of rt rows ([tile][t][rt]), zero past the last row; 128 columns at a time, so the
/// tile's lines being filled stay in L1 while its rows pass.
static void pack_body(void *context, long begin, long end) {
    const pack_task *p = context;
    const int rt = p->rt;
    for (long tile = begin; tile < end; tile++) {
        float *dst = p->xt + tile * p->k * rt;
        for (long c0 = 0; c0 < p->k; c0 += 128) {
            const long c1 = p->k - c0 < 128 ? p->k : c0 + 128;
            for (long r = 0; r < rt; r++) {
                const long row = tile * rt + r;
                if (row < p->rows) {
                    const float *src = p->x + row * p->x_stride;
                    for (long c = c0; c < c1; c++) dst[c * rt + r] = src[c];
                } else {
                    for (long c = c0; c < c1; c++) dst[c * rt + r] = 0;
                }
            }
        }
    }
}

static int wide_path(int *rt, int *mr, micro_kernel *kernel) {
#ifdef BF16_X86
    if (hp_isa_active() >= HP_ISA_AVX512) {
        *rt = 32, *mr = 12, *kernel = micro_avx512;
        return 1;
    }
    if (hp_isa_active() >= HP_ISA_AVX2) {
        *rt = 16, *mr = 6, *kernel = micro_avx2;
        return 1;
    }
#endif
    (void)rt, (void)mr, (void)kernel;
    return 0;
}

int bf16w_gemm_supported(void) {
    int rt, mr;
    micro_kernel kernel;
    return wide_path(&rt, &mr, &kernel);
}

size_t bf16w_gemm_scratch_floats(long rows, long k) {
    int rt, mr;
    micro_kernel kernel;
    if (rows <= 0 || k <= 0 || !wide_path(&rt, &mr, &kernel)) return 0;
    return (size_t)chunk_rows(rows, rt) * (size_t)k + 16;  // + 16: room to align to 64 bytes
}

int bf16w_gemm(const float *x, long rows, long x_stride, const uint16_t *w, long n, long k, long w_stride, float *y,
               long y_stride, float beta, float *scratch) {
    int rt, mr;
    micro_kernel kernel;
    if (!wide_path(&rt, &mr, &kernel)) return -1;
    if (rows <= 0 || n <= 0 || k <= 0) return 0;
    float *xt = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    const long chunk = chunk_rows(rows, rt);
    for (long r0 = 0; r0 < rows; r0 += chunk) {
        const long m = rows - r0 < chunk ? rows - r0 : chunk, tiles = (m + rt - 1) / rt;
        pack_task pack = {x + r0 * x_stride, m, x_stride, k, rt, xt};
        hp_team_run(pack_body, &pack, tiles, 1, m * k >= 1 << 16);
        wide_task task = {xt, w, y + r0 * y_stride, m, n, k, w_stride, y_stride, beta, rt, mr, kernel};
        hp_team_run(wide_body, &task, (n + UNIT_OUTPUTS - 1) / UNIT_OUTPUTS, 1, m * n * k >= 1 << 20);
    }
    return 0;
}
