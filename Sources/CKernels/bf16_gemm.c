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
