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
// Two kernels, one contract: each output's sum is one chain over t ascending, whatever the split.
// - AVX2 (gemm_avx2): a packed F32 GEMM whose weight panels are widened from BF16 as they are
//   packed (below).
// - AVX-512 (wide_body): C's transpose is computed: a micro-kernel holds RT rows of x as vector lanes
//   (x packed once per call into tiles of RT rows, [t][RT]) and broadcasts MR weights per column t
//   straight from the row-major BF16 rows. A weight is widened by one AND: the 32-bit word ending at
//   w[t] holds w[t] in its high half, so masking off the low half (w[t − 1]) leaves the F32 value.
//   The weights are never copied: each MR-row micro-panel streams from L2 while a tile of x (RT × KC
//   floats) stays in L1. (The AVX2 twin of this kernel ran at 76–86 GFLOP/s on one Zen 3 core, ~85 %
//   of its FMA peak: six broadcasts and six ANDs per twelve FMAs; the packed panels run at 80–97,
//   above OpenBLAS's sgemm on the same weights in F32 (63–87), at Qwen2.5-3B's shapes and 61–317
//   rows. The AVX-512 kernel cannot be measured on this project's machines, so it keeps the scheme
//   its tests cover.)

enum { KC = 256, UNIT_OUTPUTS = 96, CHUNK_ROWS = 256 };

static long round_up(long v, long to) { return (v + to - 1) / to * to; }

/// Rows of x per call of the inner driver (and packed at once): at most CHUNK_ROWS, balanced.
static long chunk_rows_at_most(long rows, long rt, long most) {
    const long chunks = (rows + most - 1) / most;
    return round_up((rows + chunks - 1) / chunks, rt);
}
static long chunk_rows(long rows, long rt) { return chunk_rows_at_most(rows, rt, CHUNK_ROWS); }

/// The AVX2 path's chunks: every panel streams the chunk's packed x (m·k floats) from L3, so it
/// holds at most CHUNK_FLOATS (8 MB; one thread, same data, alternating: 317 rows × k 11008 as one
/// chunk ran 5 % slower than as two), at least 48 rows so the panels' widening is shared, at most
/// AVX2_CHUNK_ROWS (317 rows × k 2048 as one chunk: 2–5 % faster than two).
enum { CHUNK_FLOATS = 1 << 21, AVX2_CHUNK_ROWS = 512 };
static long avx2_chunk_rows(long rows, long k) {
    long most = CHUNK_FLOATS / k;
    most = most < 48 ? 48 : most > AVX2_CHUNK_ROWS ? AVX2_CHUNK_ROWS : most;
    return chunk_rows_at_most(rows, 1, most);
}

#ifdef BF16_X86
#define AVX2_FMA __attribute__((target("avx2,fma")))
#define AVX512F_ONLY __attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512dq")))

// A float read at any 2-byte boundary (the word ending at a BF16 value).
typedef float loose_float __attribute__((aligned(2), may_alias));

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

// The AVX2 path: a packed F32 GEMM (tiles of x rows × 16 outputs in registers) whose weight panels
// are widened from BF16 as they are packed. For each panel of 16 outputs and span of up to SPAN
// columns, the 16 weight rows become one panel of floats ([t][16], 128 KB at 2048 columns, in L2)
// that every tile of x rows passes over: each weight is read from memory and widened once per call
// (per chunk of rows), reading each weight row's span in order (the prefetchers follow 16 streams).
// x's rows are packed once per call into tiles of h rows ([span][tile][t][h]), streamed from L2/L3
// by every panel. The micro-kernel is pure F32: two loads of the panel, h broadcasts of x, 2·h FMAs
// per column; its outputs go to y once per span. Long spans matter: with y's rows 8 KB apart (n =
// 2048) the six rows of a tile share an L1 set, and loading and storing them every 256 columns
// cost the kernel 9 % (90.6 against 98.7 GFLOP/s at 2048, one thread).
// Each output's sum is one chain over t ascending from 0 (the accumulators start from y after the
// first span), whatever the tile heights or the thread split.

enum { NR = 16, MAX_TILE = 6, SPAN = 2048, STAGE = 256 };

/// One register tile: c[r][0 ..< 16] (+)= Σ_{t < kc} a[t·H + r] · b[t·16 + 0 ..< 16] for r < H, the
/// accumulators starting from c when `load`, from zero otherwise. H·2 accumulators: 6 rows fill 12
/// of the 16 registers (with the panel's two vectors and a broadcast); fewer than 4 rows leave the
/// FMA latency exposed (only the last tiles of tiny products have them).
#define TILE_KERNEL(H)                                                                                         \
    AVX2_FMA static void tile##H(long kc, const float *a, const float *b, float *c, long ldc, int load) {     \
        __m256 lo[H], hi[H];                                                                                  \
        for (int r = 0; r < H; r++) {                                                                         \
            lo[r] = load ? _mm256_loadu_ps(c + r * ldc) : _mm256_setzero_ps();                                \
            hi[r] = load ? _mm256_loadu_ps(c + r * ldc + 8) : _mm256_setzero_ps();                            \
        }                                                                                                     \
        for (long t = 0; t < kc; t++, a += H, b += NR) {                                                      \
            const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);                                 \
            for (int r = 0; r < H; r++) {                                                                     \
                const __m256 x = _mm256_broadcast_ss(a + r);                                                  \
                lo[r] = _mm256_fmadd_ps(b0, x, lo[r]);                                                        \
                hi[r] = _mm256_fmadd_ps(b1, x, hi[r]);                                                        \
            }                                                                                                 \
        }                                                                                                     \
        for (int r = 0; r < H; r++) {                                                                         \
            _mm256_storeu_ps(c + r * ldc, lo[r]);                                                             \
            _mm256_storeu_ps(c + r * ldc + 8, hi[r]);                                                         \
        }                                                                                                     \
    }
TILE_KERNEL(1)
TILE_KERNEL(2)
TILE_KERNEL(3)
TILE_KERNEL(4)
TILE_KERNEL(5)
TILE_KERNEL(6)
#undef TILE_KERNEL

typedef void (*tile_kernel)(long kc, const float *a, const float *b, float *c, long ldc, int load);
static const tile_kernel tile_kernels[MAX_TILE + 1] = {NULL, tile1, tile2, tile3, tile4, tile5, tile6};

/// The 8×8 transpose of 32-bit words: v[i] (row i's words 0 ..< 8) becomes word i of every row.
AVX2_FMA static inline void transpose8(__m256 v[8]) {
    __m256 t[8], s[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(v[2 * i], v[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(v[2 * i], v[2 * i + 1]);
    }
    for (int i = 0; i < 2; i++) {
        s[4 * i + 0] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        s[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        s[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        s[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
        v[i] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x20);
        v[i + 4] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x31);
    }
}

/// Per thread: a panel's BF16 rows copied out when the matrix's row stride is a multiple of 2 KB.
static _Thread_local uint16_t *staged_rows;

/// The panel of weight rows w[0 ..< valid] (row stride w_stride; rows past `valid` are zero) over
/// columns t0 ..< t0 + kc (at most STAGE), widened into out[t][16]. Sixteen BF16 values of a row
/// are eight 32-bit words; after a transpose of words, one word holds the row's columns 2p and
/// 2p + 1, so a shift and an AND give both columns of eight rows as floats.
AVX2_FMA static void pack_stage(const uint16_t *w, long w_stride, long valid, long t0, long kc, float *out) {
    long t = 0;
    if (valid == NR && (w_stride & 1023) == 0 && kc % 16 == 0) {
        // Rows 2 KB apart (every k that is a multiple of 1024) share L1 sets and 4K-alias the panel's
        // stores: the transposing loads ran 2.5× slower than a copy of each row to a padded stride
        // followed by the transpose (one thread, k = 2048).
        if (!staged_rows) {
            staged_rows = aligned_alloc(64, (size_t)NR * (STAGE + 16) * sizeof(uint16_t));
            if (!staged_rows) abort();  // 8.5 KB: nothing sensible is left to do without it
        }
        for (long i = 0; i < NR; i++) {
            const uint16_t *src = w + i * w_stride + t0;
            uint16_t *dst = staged_rows + i * (STAGE + 16);
            for (long c = 0; c < kc; c += 16) _mm256_store_si256((__m256i *)(void *)(dst + c), _mm256_loadu_si256((const __m256i *)(const void *)(src + c)));
        }
        w = staged_rows, w_stride = STAGE + 16, t0 = 0;
    }
    if (valid == NR) {
        const __m256 high = _mm256_castsi256_ps(_mm256_set1_epi32((int)0xFFFF0000u));
        // 32 columns of 8 rows at a time: each row's 64 bytes used at once (rows k·2 bytes apart
        // share L1 sets when k is a multiple of 2048).
        for (; t + 32 <= kc; t += 32) {
            for (int g = 0; g < 2; g++) {
                const uint16_t *rows = w + g * 8 * w_stride + t0 + t;
                for (int half = 0; half < 32; half += 16) {
                    __m256 v[8];
                    for (int i = 0; i < 8; i++) v[i] = _mm256_loadu_ps((const float *)(const void *)(rows + i * w_stride + half));
                    transpose8(v);
                    float *o = out + (t + half) * NR + g * 8;
                    for (int p = 0; p < 8; p++) {
                        _mm256_store_ps(o + 2 * p * NR, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(v[p]), 16)));
                        _mm256_store_ps(o + (2 * p + 1) * NR, _mm256_and_ps(v[p], high));
                    }
                }
            }
        }
    }
    for (; t < kc; t++)
        for (long i = 0; i < NR; i++) out[t * NR + i] = i < valid ? widen(w[i * w_stride + t0 + t]) : 0;
}

/// The panel over columns t0 ..< t0 + kc (any kc up to SPAN), STAGE columns at a time.
AVX2_FMA static void pack_panel(const uint16_t *w, long w_stride, long valid, long t0, long kc, float *out) {
    for (long c = 0; c < kc; c += STAGE) pack_stage(w, w_stride, valid, t0 + c, kc - c < STAGE ? kc - c : STAGE, out + c * NR);
}

/// Tile heights for m rows: sixes, with the rest made of fours and fives (a tile of 1–3 rows runs at
/// a fraction of the rate: its few FMA chains wait on their latency); below 4 rows, one tile.
static int tile_plan(long m, unsigned char *heights) {
    if (m < 4) {
        heights[0] = (unsigned char)m;
        return 1;
    }
    long sixes = m / 6;
    int count = 0;
    const long rest = m % 6;
    const unsigned char tail[6][3] = {{0}, {4, 4, 5}, {4, 4}, {4, 5}, {4}, {5}};
    const int tails[6] = {0, 3, 2, 2, 1, 1}, borrowed[6] = {0, 2, 1, 1, 0, 0};
    sixes -= borrowed[rest];  // 7 = 4 + 3 is the one m ≥ 4 that cannot borrow enough: one tile of 3 there
    if (sixes < 0) {
        heights[count++] = 4, heights[count++] = 3;
        return count;
    }
    for (long i = 0; i < sixes; i++) heights[count++] = 6;
    for (int i = 0; i < tails[rest]; i++) heights[count++] = tail[rest][i];
    return count;
}

/// Columns per span for k columns: spans of at most SPAN, balanced, a multiple of 16 (the last is
/// shorter).
static long span_columns(long k) {
    const long spans = (k + SPAN - 1) / SPAN;
    return round_up((k + spans - 1) / spans, 16);
}

typedef struct {
    const float *x;
    long rows, x_stride, k, span;
    const unsigned char *heights;
    const long *first;  // each tile's first row
    int tiles;
    float *xp;
} xpack_task;

/// x's rows packed per span and per tile: span s (columns t0 = s·span ..< t0 + kc) holds tile i's
/// column t of row r at xp[t0·rows + first_i·kc + t·h_i + r].
/// Units: one tile over one span (unit = span · tiles + tile).
static void xpack_body(void *context, long begin, long end) {
    const xpack_task *p = context;
    for (long unit = begin; unit < end; unit++) {
        const long s = unit / p->tiles, i = unit % p->tiles;
        const long t0 = s * p->span, kc = p->k - t0 < p->span ? p->k - t0 : p->span, h = p->heights[i];
        const float *src = p->x + p->first[i] * p->x_stride + t0;
        float *dst = p->xp + t0 * p->rows + p->first[i] * kc;
        for (long t = 0; t < kc; t++)
            for (long r = 0; r < h; r++) dst[t * h + r] = src[r * p->x_stride + t];
    }
}

typedef struct {
    const float *xp;
    const uint16_t *w;
    float *y;
    long rows, n, k, w_stride, y_stride, span;
    const unsigned char *heights;
    const long *first;
    int tiles, load;  // load: y holds a start (beta ≠ 0, already scaled)
} panel_task;

/// Per thread: one widened panel (SPAN × 16 floats, 128 KB).
static _Thread_local float *widened_panel;

/// The panel of outputs j0 ..< j0 + 16 over the span of columns t0 ..< t0 + kc, for every tile of
/// rows. The first STAGE columns of the next step's weights (`next`, or NULL) are prefetched
/// meanwhile, a few lines before each tile, so its widening starts on cached lines (the hardware
/// prefetchers follow the rest of its rows): 0–3 % at 61–317 rows, one thread.
AVX2_FMA static void panel_step(const panel_task *t, float *b, long j0, long t0, const uint16_t *next, long next_rows) {
    const long kc = t->k - t0 < t->span ? t->k - t0 : t->span, valid = t->n - j0 < NR ? t->n - j0 : NR;
    const float *xs = t->xp + t0 * t->rows;
    const int load = t0 > 0 || t->load;
    pack_panel(t->w + j0 * t->w_stride, t->w_stride, valid, t0, kc, b);
    const long lines = STAGE * 2 / 64 + 1, total = next ? next_rows * lines : 0, per = (total + t->tiles - 1) / t->tiles;
    for (int i = 0; i < t->tiles; i++) {
        const long h = t->heights[i], r0 = t->first[i];
        float *c = t->y + r0 * t->y_stride + j0;
        for (long q = i * per; q < (i + 1) * per && q < total; q++)
            _mm_prefetch((const char *)(const void *)(next + (q / lines) * t->w_stride + (q % lines) * 32), _MM_HINT_T0);
        // The next tile's outputs too: loading them cold at the start of its kernel cost ~12 % at
        // 61 × 11008 × 2048 with spans of 256 columns.
        if (i + 1 < t->tiles) {
            const float *cn = t->y + t->first[i + 1] * t->y_stride + j0;
            for (long r = 0; r < t->heights[i + 1]; r++) {
                _mm_prefetch((const char *)(cn + r * t->y_stride), _MM_HINT_T0);
                _mm_prefetch((const char *)(cn + r * t->y_stride + NR - 1), _MM_HINT_T0);
            }
        }
        if (valid == NR) {
            tile_kernels[h](kc, xs + r0 * kc, b, c, t->y_stride, load);
            continue;
        }
        // The last panel's outputs past n: through a full tile on the stack.
        float part[MAX_TILE * NR] __attribute__((aligned(32)));
        for (long r = 0; r < h; r++)
            for (long j = 0; j < NR; j++) part[r * NR + j] = load && j < valid ? c[r * t->y_stride + j] : 0;
        tile_kernels[h](kc, xs + r0 * kc, b, part, NR, load);
        for (long r = 0; r < h; r++)
            for (long j = 0; j < valid; j++) c[r * t->y_stride + j] = part[r * NR + j];
    }
}

/// Each claimed panel over every span, in order.
AVX2_FMA static void panel_body(void *context, long begin, long end) {
    const panel_task *t = context;
    if (!widened_panel) {
        widened_panel = aligned_alloc(64, (size_t)SPAN * NR * sizeof(float));
        if (!widened_panel) abort();  // 128 KB: nothing sensible is left to do without it
    }
    for (long panel = begin; panel < end; panel++) {
        const long j0 = panel * NR;
        for (long t0 = 0; t0 < t->k; t0 += t->span) {
            const int last_span = t0 + t->span >= t->k;
            const long nj = last_span ? j0 + NR : j0, nt = last_span ? 0 : t0 + t->span;
            const uint16_t *next = last_span && panel + 1 >= end ? NULL : t->w + nj * t->w_stride + nt;
            panel_step(t, widened_panel, j0, t0, next, t->n - nj < NR ? t->n - nj : NR);
        }
    }
}

/// The AVX2 product, chunk by chunk of rows.
static void gemm_avx2(const float *x, long rows, long x_stride, const uint16_t *w, long n, long k, long w_stride,
                      float *y, long y_stride, float beta, float *xp) {
    if (beta != 0 && beta != 1)
        for (long r = 0; r < rows; r++)
            for (long j = 0; j < n; j++) y[r * y_stride + j] *= beta;
    const long chunk = avx2_chunk_rows(rows, k), span = span_columns(k);
    unsigned char heights[AVX2_CHUNK_ROWS / 4 + 2];
    long first[AVX2_CHUNK_ROWS / 4 + 2];
    for (long r0 = 0; r0 < rows; r0 += chunk) {
        const long m = rows - r0 < chunk ? rows - r0 : chunk;
        const int tiles = tile_plan(m, heights);
        for (int i = 0, r = 0; i < tiles; r += heights[i], i++) first[i] = r;
        xpack_task pack = {x + r0 * x_stride, m, x_stride, k, span, heights, first, tiles, xp};
        hp_team_run(xpack_body, &pack, (k + span - 1) / span * tiles, 1, m * k >= 1 << 16);
        panel_task task = {xp, w, y + r0 * y_stride, m, n, k, w_stride, y_stride, span, heights, first, tiles, beta != 0};
        hp_team_run(panel_body, &task, (n + NR - 1) / NR, 1, m * n * k >= 1 << 20);
    }
}

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

#endif

/// The kernel path: 2 = AVX-512 (registers widen the weights, wide_body), 1 = AVX2 (widened panels,
/// gemm_avx2), 0 = none.
static int wide_path(void) {
#ifdef BF16_X86
    if (hp_isa_active() >= HP_ISA_AVX512) return 2;
    if (hp_isa_active() >= HP_ISA_AVX2) return 1;
#endif
    return 0;
}

int bf16w_gemm_supported(void) { return wide_path() != 0; }

size_t bf16w_gemm_scratch_floats(long rows, long k) {
    const int path = wide_path();
    if (rows <= 0 || k <= 0 || !path) return 0;
    return (size_t)(path == 2 ? chunk_rows(rows, 32) : avx2_chunk_rows(rows, k)) * (size_t)k + 16;  // + 16: room to align to 64 bytes
}

int bf16w_gemm(const float *x, long rows, long x_stride, const uint16_t *w, long n, long k, long w_stride, float *y,
               long y_stride, float beta, float *scratch) {
    const int path = wide_path();
    if (!path) return -1;
    if (rows <= 0 || n <= 0 || k <= 0) return 0;
    float *xt = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
#ifdef BF16_X86
    if (path == 1) {
        gemm_avx2(x, rows, x_stride, w, n, k, w_stride, y, y_stride, beta, xt);
        return 0;
    }
    const int rt = 32, mr = 12;
    const long chunk = chunk_rows(rows, rt);
    for (long r0 = 0; r0 < rows; r0 += chunk) {
        const long m = rows - r0 < chunk ? rows - r0 : chunk, tiles = (m + rt - 1) / rt;
        pack_task pack = {x + r0 * x_stride, m, x_stride, k, rt, xt};
        hp_team_run(pack_body, &pack, tiles, 1, m * k >= 1 << 16);
        wide_task task = {xt, w, y + r0 * y_stride, m, n, k, w_stride, y_stride, beta, rt, mr, micro_avx512};
        hp_team_run(wide_body, &task, (n + UNIT_OUTPUTS - 1) / UNIT_OUTPUTS, 1, m * n * k >= 1 << 20);
    }
#endif
    return 0;
}
