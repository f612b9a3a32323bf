// Encoder element-wise kernels (see include/encoder_kernels.h for the contracts).
//
// The package builds for baseline x86-64, where Swift's SIMD8<Float> becomes pairs of SSE
// instructions without FMA. Here the same passes are written three times: for AVX-512 (16 lanes,
// mask-register tails), for AVX2 + FMA (8 lanes), both compiled through `target` attributes, and
// in portable C; every kernel branches on the level cpu_features.c decides.
#include "encoder_kernels.h"
#include "cpu_features.h"
#include "vector_exp.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define ENC_X86 1
#include <immintrin.h>
#endif

// -2·√(2/π): gelu_tanh(v) = v / (1 + e^(GELU_C · (v + 0.044715 v³))).
#define GELU_C (-2.0f * 0.7978845608028654f)
#define GELU_K 0.044715f

// MARK: - Portable


static float exp_row_portable(float *row, ptrdiff_t count) {
    float m = row[0];
    for (ptrdiff_t j = 1; j < count; j++) m = row[j] > m ? row[j] : m;
    float total = 0;
    for (ptrdiff_t j = 0; j < count; j++) {
        float e = hp_exp1(row[j] - m);
        row[j] = e;
        total += e;
    }
    return total;
}

static void accumulate_portable(const float *row, float factor, float *acc, ptrdiff_t count) {
    for (ptrdiff_t j = 0; j < count; j++) acc[j] += row[j] * factor;
}

static void gelu_portable(float *x, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t stride, const float *bias) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        float *row = x + r * stride;
        for (ptrdiff_t c = 0; c < cols; c++) {
            float v = row[c] + (bias ? bias[c] : 0.0f);
            row[c] = v / (1.0f + hp_exp1(GELU_C * v * (1.0f + GELU_K * v * v)));
        }
    }
}

static void layer_norm_portable(float *x, ptrdiff_t rows, ptrdiff_t cols, const float *residual_bias,
                                const float *weight, const float *bias, float eps, float *out) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        float *src = x + r * cols, *dst = out + r * cols;
        float total = 0;
        for (ptrdiff_t c = 0; c < cols; c++) {
            if (residual_bias) src[c] += residual_bias[c];
            total += src[c];
        }
        float mean = total / (float)cols, variance = 0;
        for (ptrdiff_t c = 0; c < cols; c++) variance += (src[c] - mean) * (src[c] - mean);
        float inv = 1.0f / sqrtf(variance / (float)cols + eps);
        for (ptrdiff_t c = 0; c < cols; c++) dst[c] = (src[c] - mean) * inv * weight[c] + bias[c];
    }
}

// MARK: - AVX2 + FMA

#ifdef ENC_X86
#define AVX2 __attribute__((target("avx2,fma")))

// Lanes 0 ..< n of a tail: loadu(tail_mask + 8 - n) has n leading all-ones lanes.
static const int tail_mask[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

AVX2 static inline __m256i mask_of(ptrdiff_t n) { return _mm256_loadu_si256((const __m256i *)(tail_mask + 8 - n)); }


AVX2 static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2 static inline float hmax8(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2 static float max_avx2(const float *p, ptrdiff_t count) {
    const __m256 lowest = _mm256_set1_ps(-INFINITY);
    // Two chains: one compare chain is latency-bound.
    __m256 a = lowest, b = lowest;
    ptrdiff_t i = 0;
    for (; i + 16 <= count; i += 16) {
        a = _mm256_max_ps(a, _mm256_loadu_ps(p + i));
        b = _mm256_max_ps(b, _mm256_loadu_ps(p + i + 8));
    }
    if (i + 8 <= count) {
        a = _mm256_max_ps(a, _mm256_loadu_ps(p + i));
        i += 8;
    }
    if (i < count) {
        __m256i mask = mask_of(count - i);
        b = _mm256_max_ps(b, _mm256_blendv_ps(lowest, _mm256_maskload_ps(p + i, mask), _mm256_castsi256_ps(mask)));
    }
    return hmax8(_mm256_max_ps(a, b));
}

AVX2 static float exp_row_avx2(float *row, ptrdiff_t count) {
    const __m256 m = _mm256_set1_ps(max_avx2(row, count));
    __m256 a = _mm256_setzero_ps(), b = _mm256_setzero_ps();
    ptrdiff_t i = 0;
    for (; i + 16 <= count; i += 16) {
        __m256 e0 = hp_exp8(_mm256_sub_ps(_mm256_loadu_ps(row + i), m));
        __m256 e1 = hp_exp8(_mm256_sub_ps(_mm256_loadu_ps(row + i + 8), m));
        _mm256_storeu_ps(row + i, e0);
        _mm256_storeu_ps(row + i + 8, e1);
        a = _mm256_add_ps(a, e0);
        b = _mm256_add_ps(b, e1);
    }
    if (i + 8 <= count) {
        __m256 e = hp_exp8(_mm256_sub_ps(_mm256_loadu_ps(row + i), m));
        _mm256_storeu_ps(row + i, e);
        a = _mm256_add_ps(a, e);
        i += 8;
    }
    if (i < count) {
        __m256i mask = mask_of(count - i);
        __m256 e = hp_exp8(_mm256_sub_ps(_mm256_maskload_ps(row + i, mask), m));
        e = _mm256_and_ps(e, _mm256_castsi256_ps(mask));
        _mm256_maskstore_ps(row + i, mask, e);
        b = _mm256_add_ps(b, e);
    }
    return hsum8(_mm256_add_ps(a, b));
}

AVX2 static void accumulate_avx2(const float *row, float factor, float *acc, ptrdiff_t count) {
    const __m256 f = _mm256_set1_ps(factor);
    ptrdiff_t i = 0;
    for (; i + 8 <= count; i += 8) {
        _mm256_storeu_ps(acc + i, _mm256_fmadd_ps(_mm256_loadu_ps(row + i), f, _mm256_loadu_ps(acc + i)));
    }
    if (i < count) {
        __m256i mask = mask_of(count - i);
        __m256 v = _mm256_fmadd_ps(_mm256_maskload_ps(row + i, mask), f, _mm256_maskload_ps(acc + i, mask));
        _mm256_maskstore_ps(acc + i, mask, v);
    }
}

AVX2 static void scale_avx2(float *x, ptrdiff_t count, float factor) {
    const __m256 f = _mm256_set1_ps(factor);
    ptrdiff_t i = 0;
    for (; i + 8 <= count; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), f));
    if (i < count) {
        __m256i mask = mask_of(count - i);
        _mm256_maskstore_ps(x + i, mask, _mm256_mul_ps(_mm256_maskload_ps(x + i, mask), f));
    }
}

AVX2 static inline __m256 gelu8(__m256 v) {
    __m256 v2 = _mm256_mul_ps(v, v);
    __m256 inner = _mm256_fmadd_ps(v2, _mm256_set1_ps(GELU_K), _mm256_set1_ps(1.0f));
    __m256 z = _mm256_mul_ps(_mm256_mul_ps(v, _mm256_set1_ps(GELU_C)), inner);
    return _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0f), hp_exp8(z)));
}

AVX2 static void gelu_avx2(float *x, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t stride, const float *bias) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        float *row = x + r * stride;
        ptrdiff_t i = 0;
        if (bias) {
            for (; i + 8 <= cols; i += 8) {
                __m256 v = _mm256_add_ps(_mm256_loadu_ps(row + i), _mm256_loadu_ps(bias + i));
                _mm256_storeu_ps(row + i, gelu8(v));
            }
        } else {
            for (; i + 8 <= cols; i += 8) _mm256_storeu_ps(row + i, gelu8(_mm256_loadu_ps(row + i)));
        }
        if (i < cols) {
            __m256i mask = mask_of(cols - i);
            __m256 v = _mm256_maskload_ps(row + i, mask);
            if (bias) v = _mm256_add_ps(v, _mm256_maskload_ps(bias + i, mask));
            _mm256_maskstore_ps(row + i, mask, gelu8(v));
        }
    }
}

// v · sigmoid(β·v): SiLU (β = 1; −1·v is exactly −v) and QuickGELU (β = 1.702).
AVX2 static inline __m256 sigmoid_gate8(__m256 v, __m256 negative_beta) {
    __m256 e = hp_exp8(_mm256_mul_ps(v, negative_beta));
    return _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

AVX2 static void sigmoid_gate_avx2(float *x, ptrdiff_t count, float beta) {
    const __m256 nb = _mm256_set1_ps(-beta);
    ptrdiff_t i = 0;
    for (; i + 8 <= count; i += 8) _mm256_storeu_ps(x + i, sigmoid_gate8(_mm256_loadu_ps(x + i), nb));
    if (i < count) {
        __m256i mask = mask_of(count - i);
        _mm256_maskstore_ps(x + i, mask, sigmoid_gate8(_mm256_maskload_ps(x + i, mask), nb));
    }
}

AVX2 static void layer_norm_avx2(float *x, ptrdiff_t rows, ptrdiff_t cols, const float *residual_bias,
                                 const float *weight, const float *bias, float eps, float *out) {
    const ptrdiff_t body = cols & ~(ptrdiff_t)7;
    const __m256i tail = mask_of(cols - body);
    const int has_tail = cols > body;
    for (ptrdiff_t r = 0; r < rows; r++) {
        float *src = x + r * cols, *dst = out + r * cols;
        // Pass 1 (the one that reaches memory; the row then sits in L1): bias in, sum.
        __m256 total = _mm256_setzero_ps();
        ptrdiff_t i = 0;
        if (residual_bias) {
            for (; i < body; i += 8) {
                __m256 v = _mm256_add_ps(_mm256_loadu_ps(src + i), _mm256_loadu_ps(residual_bias + i));
                _mm256_storeu_ps(src + i, v);
                total = _mm256_add_ps(total, v);
            }
            if (has_tail) {
                __m256 v = _mm256_add_ps(_mm256_maskload_ps(src + i, tail), _mm256_maskload_ps(residual_bias + i, tail));
                _mm256_maskstore_ps(src + i, tail, v);
                total = _mm256_add_ps(total, v);
            }
        } else {
            for (; i < body; i += 8) total = _mm256_add_ps(total, _mm256_loadu_ps(src + i));
            if (has_tail) total = _mm256_add_ps(total, _mm256_maskload_ps(src + i, tail));
        }
        const float mean = hsum8(total) / (float)cols;
        const __m256 m = _mm256_set1_ps(mean);
        // Pass 2: variance about the mean (not E[x²] - mean², which cancels badly on large rows).
        __m256 spread = _mm256_setzero_ps();
        for (i = 0; i < body; i += 8) {
            __m256 d = _mm256_sub_ps(_mm256_loadu_ps(src + i), m);
            spread = _mm256_fmadd_ps(d, d, spread);
        }
        if (has_tail) {
            __m256 d = _mm256_and_ps(_mm256_sub_ps(_mm256_maskload_ps(src + i, tail), m), _mm256_castsi256_ps(tail));
            spread = _mm256_fmadd_ps(d, d, spread);
        }
        const float inv = 1.0f / sqrtf(hsum8(spread) / (float)cols + eps);
        const __m256 s = _mm256_set1_ps(inv);
        // Pass 3: scale and shift.
        for (i = 0; i < body; i += 8) {
            __m256 d = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(src + i), m), s);
            _mm256_storeu_ps(dst + i, _mm256_fmadd_ps(d, _mm256_loadu_ps(weight + i), _mm256_loadu_ps(bias + i)));
        }
        if (has_tail) {
            __m256 d = _mm256_mul_ps(_mm256_sub_ps(_mm256_maskload_ps(src + i, tail), m), s);
            __m256 v = _mm256_fmadd_ps(d, _mm256_maskload_ps(weight + i, tail), _mm256_maskload_ps(bias + i, tail));
            _mm256_maskstore_ps(dst + i, tail, v);
        }
    }
}

AVX2 static void add_row_avx2(float *x, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t stride, const float *add) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        float *row = x + r * stride;
        ptrdiff_t i = 0;
        for (; i + 8 <= cols; i += 8) {
            _mm256_storeu_ps(row + i, _mm256_add_ps(_mm256_loadu_ps(row + i), _mm256_loadu_ps(add + i)));
        }
        if (i < cols) {
            __m256i mask = mask_of(cols - i);
            __m256 v = _mm256_add_ps(_mm256_maskload_ps(row + i, mask), _mm256_maskload_ps(add + i, mask));
            _mm256_maskstore_ps(row + i, mask, v);
        }
    }
}

// MARK: - Fused attention (one head)
//
// Keys are packed in panels of 16: panel p holds [d][16] (key p·16 + jj at column jj, × scale,
// zero past the last key), so the 6×16 tile of S reads two vectors per step of d. Values are
// packed in column panels ([keys][16] each), so P·v streams memory in order. Per block of 6
// queries: S tile by tile into a 6 × keys buffer (24 KB for 1024 keys: L1), softmax rows in place,
// then out = P·v six rows × 16 columns at a time. Register tiles are 12 accumulators + 3: no spills.

enum { ATT_ROWS = 6, ATT_PANEL = 16 };

static ptrdiff_t round_up(ptrdiff_t n, ptrdiff_t to) { return (n + to - 1) / to * to; }

/// Rows of an 8×8 block become its columns.
AVX2 static inline void transpose8(__m256 r[8]) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

AVX2 static void qk_tile(const float *const q[ATT_ROWS], const float *panel, ptrdiff_t d, float *s, ptrdiff_t s_stride) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (ptrdiff_t t = 0; t < d; t++) {
        __m256 b0 = _mm256_loadu_ps(panel + t * ATT_PANEL), b1 = _mm256_loadu_ps(panel + t * ATT_PANEL + 8);
        __m256 a = _mm256_broadcast_ss(q[0] + t);
        c00 = _mm256_fmadd_ps(a, b0, c00); c01 = _mm256_fmadd_ps(a, b1, c01);
        a = _mm256_broadcast_ss(q[1] + t);
        c10 = _mm256_fmadd_ps(a, b0, c10); c11 = _mm256_fmadd_ps(a, b1, c11);
        a = _mm256_broadcast_ss(q[2] + t);
        c20 = _mm256_fmadd_ps(a, b0, c20); c21 = _mm256_fmadd_ps(a, b1, c21);
        a = _mm256_broadcast_ss(q[3] + t);
        c30 = _mm256_fmadd_ps(a, b0, c30); c31 = _mm256_fmadd_ps(a, b1, c31);
        a = _mm256_broadcast_ss(q[4] + t);
        c40 = _mm256_fmadd_ps(a, b0, c40); c41 = _mm256_fmadd_ps(a, b1, c41);
        a = _mm256_broadcast_ss(q[5] + t);
        c50 = _mm256_fmadd_ps(a, b0, c50); c51 = _mm256_fmadd_ps(a, b1, c51);
    }
    _mm256_storeu_ps(s, c00); _mm256_storeu_ps(s + 8, c01); s += s_stride;
    _mm256_storeu_ps(s, c10); _mm256_storeu_ps(s + 8, c11); s += s_stride;
    _mm256_storeu_ps(s, c20); _mm256_storeu_ps(s + 8, c21); s += s_stride;
    _mm256_storeu_ps(s, c30); _mm256_storeu_ps(s + 8, c31); s += s_stride;
    _mm256_storeu_ps(s, c40); _mm256_storeu_ps(s + 8, c41); s += s_stride;
    _mm256_storeu_ps(s, c50); _mm256_storeu_ps(s + 8, c51);
}

/// out_r[c0 ..< c0 + 16] = inv_r · Σ_j p_r[j] · v[j][c0 ...] for the six rows of a block: twelve
/// accumulators, two value vectors and a broadcast fill the sixteen registers without a spill.
AVX2 static void pv_tile16(const float *const p[ATT_ROWS], const float *v, ptrdiff_t keys, ptrdiff_t c0,
                           float *const o[ATT_ROWS], const float inv[ATT_ROWS]) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    const float *vj = v;
    for (ptrdiff_t j = 0; j < keys; j++, vj += 16) {
        __m256 b0 = _mm256_loadu_ps(vj), b1 = _mm256_loadu_ps(vj + 8);
        __m256 a = _mm256_broadcast_ss(p[0] + j);
        c00 = _mm256_fmadd_ps(a, b0, c00); c01 = _mm256_fmadd_ps(a, b1, c01);
        a = _mm256_broadcast_ss(p[1] + j);
        c10 = _mm256_fmadd_ps(a, b0, c10); c11 = _mm256_fmadd_ps(a, b1, c11);
        a = _mm256_broadcast_ss(p[2] + j);
        c20 = _mm256_fmadd_ps(a, b0, c20); c21 = _mm256_fmadd_ps(a, b1, c21);
        a = _mm256_broadcast_ss(p[3] + j);
        c30 = _mm256_fmadd_ps(a, b0, c30); c31 = _mm256_fmadd_ps(a, b1, c31);
        a = _mm256_broadcast_ss(p[4] + j);
        c40 = _mm256_fmadd_ps(a, b0, c40); c41 = _mm256_fmadd_ps(a, b1, c41);
        a = _mm256_broadcast_ss(p[5] + j);
        c50 = _mm256_fmadd_ps(a, b0, c50); c51 = _mm256_fmadd_ps(a, b1, c51);
    }
#define PV_STORE(R, X0, X1)                                                        \
    {                                                                              \
        __m256 f = _mm256_set1_ps(inv[R]);                                         \
        _mm256_storeu_ps(o[R] + c0, _mm256_mul_ps(X0, f));                         \
        _mm256_storeu_ps(o[R] + c0 + 8, _mm256_mul_ps(X1, f));                     \
    }
    PV_STORE(0, c00, c01) PV_STORE(1, c10, c11) PV_STORE(2, c20, c21)
    PV_STORE(3, c30, c31) PV_STORE(4, c40, c41) PV_STORE(5, c50, c51)
#undef PV_STORE
}

/// The same for 8 columns (head dimensions that are an odd multiple of 8).
AVX2 static void pv_tile8(const float *const p[ATT_ROWS], const float *v, ptrdiff_t keys, ptrdiff_t c0,
                          float *const o[ATT_ROWS], const float inv[ATT_ROWS]) {
    __m256 c0v = _mm256_setzero_ps(), c1v = c0v, c2v = c0v, c3v = c0v, c4v = c0v, c5v = c0v;
    const float *vj = v;
    for (ptrdiff_t j = 0; j < keys; j++, vj += 8) {
        __m256 b = _mm256_loadu_ps(vj);
        c0v = _mm256_fmadd_ps(_mm256_broadcast_ss(p[0] + j), b, c0v);
        c1v = _mm256_fmadd_ps(_mm256_broadcast_ss(p[1] + j), b, c1v);
        c2v = _mm256_fmadd_ps(_mm256_broadcast_ss(p[2] + j), b, c2v);
        c3v = _mm256_fmadd_ps(_mm256_broadcast_ss(p[3] + j), b, c3v);
        c4v = _mm256_fmadd_ps(_mm256_broadcast_ss(p[4] + j), b, c4v);
        c5v = _mm256_fmadd_ps(_mm256_broadcast_ss(p[5] + j), b, c5v);
    }
    _mm256_storeu_ps(o[0] + c0, _mm256_mul_ps(c0v, _mm256_set1_ps(inv[0])));
    _mm256_storeu_ps(o[1] + c0, _mm256_mul_ps(c1v, _mm256_set1_ps(inv[1])));
    _mm256_storeu_ps(o[2] + c0, _mm256_mul_ps(c2v, _mm256_set1_ps(inv[2])));
    _mm256_storeu_ps(o[3] + c0, _mm256_mul_ps(c3v, _mm256_set1_ps(inv[3])));
    _mm256_storeu_ps(o[4] + c0, _mm256_mul_ps(c4v, _mm256_set1_ps(inv[4])));
    _mm256_storeu_ps(o[5] + c0, _mm256_mul_ps(c5v, _mm256_set1_ps(inv[5])));
}

/// The scratch of one head: key panels, value panels, the block of S, and a row for discarded output.
typedef struct {
    float *panels, *values, *s, *discard;
    ptrdiff_t padded, s_stride;
} attention_scratch;

static attention_scratch attention_layout(float *scratch, ptrdiff_t keys, ptrdiff_t d) {
    attention_scratch a;
    a.padded = round_up(keys, ATT_PANEL);
    // Rows of S one cache line longer than the keys: with 1024 keys, a 4 KB stride would put all six
    // rows in the same L1 sets.
    a.s_stride = a.padded + 16;
    a.panels = scratch;                          // padded · d
    a.values = a.panels + a.padded * d;          // keys · d
    a.s = a.values + keys * d;                   // ATT_ROWS · s_stride
    a.discard = a.s + ATT_ROWS * a.s_stride;     // d: output of rows past the last query
    return a;
}

/// Keys row i of a causal call sees: the first min(keys, visible + i) (non-causal callers pass
/// visible = keys).
static inline ptrdiff_t row_width(ptrdiff_t keys, ptrdiff_t visible, ptrdiff_t i) {
    return visible + i < keys ? visible + i : keys;
}

/// Keys any of the block's rows i0 ..< i0 + rows sees: S is computed, and P·v summed, over those only.
static inline ptrdiff_t block_width(ptrdiff_t keys, ptrdiff_t visible, ptrdiff_t i0, ptrdiff_t rows) {
    return row_width(keys, visible, i0 + rows - 1);
}

/// Packs keys (× scale) and values into the panels both instruction sets' tiles read.
AVX2 static void attention_pack(const float *k, const float *v, ptrdiff_t kv_stride, ptrdiff_t keys, ptrdiff_t d,
                                float scale, const attention_scratch *a) {
    const ptrdiff_t padded = a->padded;
    float *panels = a->panels, *values = a->values;
    const __m256 sc = _mm256_set1_ps(scale);
    for (ptrdiff_t p = 0; p < padded / ATT_PANEL; p++) {
        float *panel = panels + p * d * ATT_PANEL;
        for (ptrdiff_t half = 0; half < ATT_PANEL; half += 8) {
            const ptrdiff_t j0 = p * ATT_PANEL + half;
            if (j0 + 8 <= keys) {
                // 8 keys × 8 dimensions at a time: an 8×8 transpose in registers.
                for (ptrdiff_t t = 0; t < d; t += 8) {
                    __m256 r[8];
                    for (int i = 0; i < 8; i++) r[i] = _mm256_mul_ps(_mm256_loadu_ps(k + (j0 + i) * kv_stride + t), sc);
                    transpose8(r);
                    for (int i = 0; i < 8; i++) _mm256_storeu_ps(panel + (t + i) * ATT_PANEL + half, r[i]);
                }
            } else {
                for (ptrdiff_t jj = 0; jj < 8; jj++) {
                    const ptrdiff_t j = j0 + jj;
                    for (ptrdiff_t t = 0; t < d; t++) panel[t * ATT_PANEL + half + jj] = j < keys ? k[j * kv_stride + t] * scale : 0.0f;
                }
            }
        }
    }
    // Values in column panels: columns c ..< c + w (w = 16, or 8 for the last) of every key, [keys][w],
    // at values + c · keys, so P·v streams one contiguous panel.
    for (ptrdiff_t c = 0; c < d;) {
        ptrdiff_t w = d - c >= 16 ? 16 : 8;
        float *panel = values + c * keys;
        for (ptrdiff_t j = 0; j < keys; j++) memcpy(panel + j * w, v + j * kv_stride + c, (size_t)w * sizeof(float));
        c += w;
    }
}

AVX2 static void attention_head_avx2(const float *q, ptrdiff_t q_stride, const float *k, const float *v,
                                     ptrdiff_t kv_stride, ptrdiff_t queries, ptrdiff_t keys, ptrdiff_t visible, ptrdiff_t d,
                                     float scale, float *out, ptrdiff_t out_stride, float *scores, float *scratch) {
    const attention_scratch a = attention_layout(scratch, keys, d);
    attention_pack(k, v, kv_stride, keys, d, scale, &a);
    const ptrdiff_t s_stride = a.s_stride;
    float *panels = a.panels, *values = a.values, *s = a.s, *discard = a.discard;
    for (ptrdiff_t i0 = 0; i0 < queries; i0 += ATT_ROWS) {
        const ptrdiff_t rows = queries - i0 < ATT_ROWS ? queries - i0 : ATT_ROWS;
        // Rows past the last query repeat row i0; their results are never read.
        const float *qr[ATT_ROWS];
        for (int r = 0; r < ATT_ROWS; r++) qr[r] = q + (i0 + (r < rows ? r : 0)) * q_stride;
        const ptrdiff_t width = block_width(keys, visible, i0, rows);
        for (ptrdiff_t p = 0; p < round_up(width, ATT_PANEL) / ATT_PANEL; p++) {
            qk_tile(qr, panels + p * d * ATT_PANEL, d, s + p * ATT_PANEL, s_stride);
        }
        float inv[ATT_ROWS];
        for (ptrdiff_t r = 0; r < rows; r++) {
            float *row = s + r * s_stride;
            const ptrdiff_t seen = row_width(keys, visible, i0 + r);
            inv[r] = 1.0f / exp_row_avx2(row, seen);
            if (seen < width) memset(row + seen, 0, (size_t)(width - seen) * sizeof(float));
            if (scores) accumulate_avx2(row, inv[r], scores, seen);
        }
        // Rows past the last query read row 0 of the block and write to `discard`.
        const float *pr[ATT_ROWS];
        float *orow[ATT_ROWS];
        for (int r = 0; r < ATT_ROWS; r++) {
            int live = r < rows;
            pr[r] = s + (live ? r : 0) * s_stride;
            orow[r] = live ? out + (i0 + r) * out_stride : discard;
            if (!live) inv[r] = 0.0f;
        }
        ptrdiff_t c = 0;
        for (; c + 16 <= d; c += 16) pv_tile16(pr, values + c * keys, width, c, orow, inv);
        for (; c < d; c += 8) pv_tile8(pr, values + c * keys, width, c, orow, inv);
    }
}

// MARK: - AVX-512 (F, BW, VL, DQ)
//
// The same passes with 16 lanes and mask registers for the tails; the exp polynomial, the GELU
// form and the summation structure per lane follow the AVX2 path, so the two paths differ only in
// the order partial sums are added.

#define AVX512 __attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512dq")))

AVX512 static inline __mmask16 mask16(ptrdiff_t n) { return (__mmask16)((1u << n) - 1u); }


AVX512 static float max_avx512(const float *p, ptrdiff_t count) {
    const __m512 lowest = _mm512_set1_ps(-INFINITY);
    __m512 a = lowest, b = lowest;
    ptrdiff_t i = 0;
    for (; i + 32 <= count; i += 32) {
        a = _mm512_max_ps(a, _mm512_loadu_ps(p + i));
        b = _mm512_max_ps(b, _mm512_loadu_ps(p + i + 16));
    }
    if (i + 16 <= count) {
        a = _mm512_max_ps(a, _mm512_loadu_ps(p + i));
        i += 16;
    }
    if (i < count) b = _mm512_max_ps(b, _mm512_mask_loadu_ps(lowest, mask16(count - i), p + i));
    return _mm512_reduce_max_ps(_mm512_max_ps(a, b));
}

AVX512 static float exp_row_avx512(float *row, ptrdiff_t count) {
    const __m512 m = _mm512_set1_ps(max_avx512(row, count));
    __m512 a = _mm512_setzero_ps(), b = _mm512_setzero_ps();
    ptrdiff_t i = 0;
    for (; i + 32 <= count; i += 32) {
        __m512 e0 = hp_exp16(_mm512_sub_ps(_mm512_loadu_ps(row + i), m));
        __m512 e1 = hp_exp16(_mm512_sub_ps(_mm512_loadu_ps(row + i + 16), m));
        _mm512_storeu_ps(row + i, e0);
        _mm512_storeu_ps(row + i + 16, e1);
        a = _mm512_add_ps(a, e0);
        b = _mm512_add_ps(b, e1);
    }
    if (i + 16 <= count) {
        __m512 e = hp_exp16(_mm512_sub_ps(_mm512_loadu_ps(row + i), m));
        _mm512_storeu_ps(row + i, e);
        a = _mm512_add_ps(a, e);
        i += 16;
    }
    if (i < count) {
        __mmask16 k = mask16(count - i);
        __m512 e = _mm512_maskz_mov_ps(k, hp_exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, row + i), m)));
        _mm512_mask_storeu_ps(row + i, k, e);
        b = _mm512_add_ps(b, e);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a, b));
}

AVX512 static void accumulate_avx512(const float *row, float factor, float *acc, ptrdiff_t count) {
    const __m512 f = _mm512_set1_ps(factor);
    ptrdiff_t i = 0;
    for (; i + 16 <= count; i += 16) {
        _mm512_storeu_ps(acc + i, _mm512_fmadd_ps(_mm512_loadu_ps(row + i), f, _mm512_loadu_ps(acc + i)));
    }
    if (i < count) {
        __mmask16 k = mask16(count - i);
        __m512 v = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, row + i), f, _mm512_maskz_loadu_ps(k, acc + i));
        _mm512_mask_storeu_ps(acc + i, k, v);
    }
}

AVX512 static void scale_avx512(float *x, ptrdiff_t count, float factor) {
    const __m512 f = _mm512_set1_ps(factor);
    ptrdiff_t i = 0;
    for (; i + 16 <= count; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), f));
    if (i < count) {
        __mmask16 k = mask16(count - i);
        _mm512_mask_storeu_ps(x + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), f));
    }
}

AVX512 static inline __m512 gelu16(__m512 v) {
    __m512 v2 = _mm512_mul_ps(v, v);
    __m512 inner = _mm512_fmadd_ps(v2, _mm512_set1_ps(GELU_K), _mm512_set1_ps(1.0f));
    __m512 z = _mm512_mul_ps(_mm512_mul_ps(v, _mm512_set1_ps(GELU_C)), inner);
    return _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f), hp_exp16(z)));
}

AVX512 static void gelu_avx512(float *x, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t stride, const float *bias) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        float *row = x + r * stride;
        ptrdiff_t i = 0;
        if (bias) {
            for (; i + 16 <= cols; i += 16) {
                __m512 v = _mm512_add_ps(_mm512_loadu_ps(row + i), _mm512_loadu_ps(bias + i));
                _mm512_storeu_ps(row + i, gelu16(v));
            }
        } else {
            for (; i + 16 <= cols; i += 16) _mm512_storeu_ps(row + i, gelu16(_mm512_loadu_ps(row + i)));
        }
        if (i < cols) {
            __mmask16 k = mask16(cols - i);
            __m512 v = _mm512_maskz_loadu_ps(k, row + i);
            if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, bias + i));
            _mm512_mask_storeu_ps(row + i, k, gelu16(v));
        }
    }
}

// v · sigmoid(β·v), as sigmoid_gate8.
AVX512 static inline __m512 sigmoid_gate16(__m512 v, __m512 negative_beta) {
    __m512 e = hp_exp16(_mm512_mul_ps(v, negative_beta));
    return _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

AVX512 static void sigmoid_gate_avx512(float *x, ptrdiff_t count, float beta) {
    const __m512 nb = _mm512_set1_ps(-beta);
    ptrdiff_t i = 0;
    for (; i + 16 <= count; i += 16) _mm512_storeu_ps(x + i, sigmoid_gate16(_mm512_loadu_ps(x + i), nb));
    if (i < count) {
        __mmask16 k = mask16(count - i);
        _mm512_mask_storeu_ps(x + i, k, sigmoid_gate16(_mm512_maskz_loadu_ps(k, x + i), nb));
    }
}

AVX512 static void layer_norm_avx512(float *x, ptrdiff_t rows, ptrdiff_t cols, const float *residual_bias,
                                     const float *weight, const float *bias, float eps, float *out) {
    const ptrdiff_t body = cols & ~(ptrdiff_t)15;
    const __mmask16 tail = mask16(cols - body);
    const int has_tail = cols > body;
    for (ptrdiff_t r = 0; r < rows; r++) {
        float *src = x + r * cols, *dst = out + r * cols;
        __m512 total = _mm512_setzero_ps();
        ptrdiff_t i = 0;
        if (residual_bias) {
            for (; i < body; i += 16) {
                __m512 v = _mm512_add_ps(_mm512_loadu_ps(src + i), _mm512_loadu_ps(residual_bias + i));
                _mm512_storeu_ps(src + i, v);
                total = _mm512_add_ps(total, v);
            }
            if (has_tail) {
                __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(tail, src + i), _mm512_maskz_loadu_ps(tail, residual_bias + i));
                _mm512_mask_storeu_ps(src + i, tail, v);
                total = _mm512_add_ps(total, v);
            }
        } else {
            for (; i < body; i += 16) total = _mm512_add_ps(total, _mm512_loadu_ps(src + i));
            if (has_tail) total = _mm512_add_ps(total, _mm512_maskz_loadu_ps(tail, src + i));
        }
        const float mean = _mm512_reduce_add_ps(total) / (float)cols;
        const __m512 m = _mm512_set1_ps(mean);
        __m512 spread = _mm512_setzero_ps();
        for (i = 0; i < body; i += 16) {
            __m512 d = _mm512_sub_ps(_mm512_loadu_ps(src + i), m);
            spread = _mm512_fmadd_ps(d, d, spread);
        }
        if (has_tail) {
            __m512 d = _mm512_maskz_sub_ps(tail, _mm512_maskz_loadu_ps(tail, src + i), m);
            spread = _mm512_fmadd_ps(d, d, spread);
        }
        const float inv = 1.0f / sqrtf(_mm512_reduce_add_ps(spread) / (float)cols + eps);
        const __m512 s = _mm512_set1_ps(inv);
        for (i = 0; i < body; i += 16) {
            __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(src + i), m), s);
            _mm512_storeu_ps(dst + i, _mm512_fmadd_ps(d, _mm512_loadu_ps(weight + i), _mm512_loadu_ps(bias + i)));
        }
        if (has_tail) {
            __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, src + i), m), s);
            __m512 v = _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(tail, weight + i), _mm512_maskz_loadu_ps(tail, bias + i));
            _mm512_mask_storeu_ps(dst + i, tail, v);
        }
    }
}

AVX512 static void add_row_avx512(float *x, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t stride, const float *add) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        float *row = x + r * stride;
        ptrdiff_t i = 0;
        for (; i + 16 <= cols; i += 16) {
            _mm512_storeu_ps(row + i, _mm512_add_ps(_mm512_loadu_ps(row + i), _mm512_loadu_ps(add + i)));
        }
        if (i < cols) {
            __mmask16 k = mask16(cols - i);
            __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(k, row + i), _mm512_maskz_loadu_ps(k, add + i));
            _mm512_mask_storeu_ps(row + i, k, v);
        }
    }
}

/// The 6 × 32 tile of S from two adjacent key panels (twelve accumulators of 16 lanes), or the
/// 6 × 16 tile of one panel when `second` is NULL.
AVX512 static void qk_tile512(const float *const q[ATT_ROWS], const float *first, const float *second, ptrdiff_t d,
                              float *s, ptrdiff_t s_stride) {
    if (!second) {
        __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
        for (ptrdiff_t t = 0; t < d; t++) {
            __m512 b = _mm512_loadu_ps(first + t * ATT_PANEL);
            c0 = _mm512_fmadd_ps(_mm512_set1_ps(q[0][t]), b, c0);
            c1 = _mm512_fmadd_ps(_mm512_set1_ps(q[1][t]), b, c1);
            c2 = _mm512_fmadd_ps(_mm512_set1_ps(q[2][t]), b, c2);
            c3 = _mm512_fmadd_ps(_mm512_set1_ps(q[3][t]), b, c3);
            c4 = _mm512_fmadd_ps(_mm512_set1_ps(q[4][t]), b, c4);
            c5 = _mm512_fmadd_ps(_mm512_set1_ps(q[5][t]), b, c5);
        }
        _mm512_storeu_ps(s, c0); _mm512_storeu_ps(s + s_stride, c1); _mm512_storeu_ps(s + 2 * s_stride, c2);
        _mm512_storeu_ps(s + 3 * s_stride, c3); _mm512_storeu_ps(s + 4 * s_stride, c4); _mm512_storeu_ps(s + 5 * s_stride, c5);
        return;
    }
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m512 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (ptrdiff_t t = 0; t < d; t++) {
        __m512 b0 = _mm512_loadu_ps(first + t * ATT_PANEL), b1 = _mm512_loadu_ps(second + t * ATT_PANEL);
        __m512 a = _mm512_set1_ps(q[0][t]);
        c00 = _mm512_fmadd_ps(a, b0, c00); c01 = _mm512_fmadd_ps(a, b1, c01);
        a = _mm512_set1_ps(q[1][t]);
        c10 = _mm512_fmadd_ps(a, b0, c10); c11 = _mm512_fmadd_ps(a, b1, c11);
        a = _mm512_set1_ps(q[2][t]);
        c20 = _mm512_fmadd_ps(a, b0, c20); c21 = _mm512_fmadd_ps(a, b1, c21);
        a = _mm512_set1_ps(q[3][t]);
        c30 = _mm512_fmadd_ps(a, b0, c30); c31 = _mm512_fmadd_ps(a, b1, c31);
        a = _mm512_set1_ps(q[4][t]);
        c40 = _mm512_fmadd_ps(a, b0, c40); c41 = _mm512_fmadd_ps(a, b1, c41);
        a = _mm512_set1_ps(q[5][t]);
        c50 = _mm512_fmadd_ps(a, b0, c50); c51 = _mm512_fmadd_ps(a, b1, c51);
    }
    _mm512_storeu_ps(s, c00); _mm512_storeu_ps(s + 16, c01); s += s_stride;
    _mm512_storeu_ps(s, c10); _mm512_storeu_ps(s + 16, c11); s += s_stride;
    _mm512_storeu_ps(s, c20); _mm512_storeu_ps(s + 16, c21); s += s_stride;
    _mm512_storeu_ps(s, c30); _mm512_storeu_ps(s + 16, c31); s += s_stride;
    _mm512_storeu_ps(s, c40); _mm512_storeu_ps(s + 16, c41); s += s_stride;
    _mm512_storeu_ps(s, c50); _mm512_storeu_ps(s + 16, c51);
}

/// out_r[c0 ..< c0 + 32] from two 16-wide value panels (twelve accumulators), or out_r[c0 ..< c0 + 16]
/// from one when `second` is NULL.
AVX512 static void pv_tile512(const float *const p[ATT_ROWS], const float *first, const float *second, ptrdiff_t keys,
                              ptrdiff_t c0, float *const o[ATT_ROWS], const float inv[ATT_ROWS]) {
    if (!second) {
        __m512 c[ATT_ROWS];
        for (int r = 0; r < ATT_ROWS; r++) c[r] = _mm512_setzero_ps();
        for (ptrdiff_t j = 0; j < keys; j++) {
            __m512 b = _mm512_loadu_ps(first + j * 16);
            for (int r = 0; r < ATT_ROWS; r++) c[r] = _mm512_fmadd_ps(_mm512_set1_ps(p[r][j]), b, c[r]);
        }
        for (int r = 0; r < ATT_ROWS; r++) _mm512_storeu_ps(o[r] + c0, _mm512_mul_ps(c[r], _mm512_set1_ps(inv[r])));
        return;
    }
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m512 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (ptrdiff_t j = 0; j < keys; j++) {
        __m512 b0 = _mm512_loadu_ps(first + j * 16), b1 = _mm512_loadu_ps(second + j * 16);
        __m512 a = _mm512_set1_ps(p[0][j]);
        c00 = _mm512_fmadd_ps(a, b0, c00); c01 = _mm512_fmadd_ps(a, b1, c01);
        a = _mm512_set1_ps(p[1][j]);
        c10 = _mm512_fmadd_ps(a, b0, c10); c11 = _mm512_fmadd_ps(a, b1, c11);
        a = _mm512_set1_ps(p[2][j]);
        c20 = _mm512_fmadd_ps(a, b0, c20); c21 = _mm512_fmadd_ps(a, b1, c21);
        a = _mm512_set1_ps(p[3][j]);
        c30 = _mm512_fmadd_ps(a, b0, c30); c31 = _mm512_fmadd_ps(a, b1, c31);
        a = _mm512_set1_ps(p[4][j]);
        c40 = _mm512_fmadd_ps(a, b0, c40); c41 = _mm512_fmadd_ps(a, b1, c41);
        a = _mm512_set1_ps(p[5][j]);
        c50 = _mm512_fmadd_ps(a, b0, c50); c51 = _mm512_fmadd_ps(a, b1, c51);
    }
#define PV_STORE512(R, X0, X1)                                                     \
    {                                                                              \
        __m512 f = _mm512_set1_ps(inv[R]);                                         \
        _mm512_storeu_ps(o[R] + c0, _mm512_mul_ps(X0, f));                         \
        _mm512_storeu_ps(o[R] + c0 + 16, _mm512_mul_ps(X1, f));                    \
    }
    PV_STORE512(0, c00, c01) PV_STORE512(1, c10, c11) PV_STORE512(2, c20, c21)
    PV_STORE512(3, c30, c31) PV_STORE512(4, c40, c41) PV_STORE512(5, c50, c51)
#undef PV_STORE512
}

AVX512 static void attention_head_avx512(const float *q, ptrdiff_t q_stride, const float *k, const float *v,
                                         ptrdiff_t kv_stride, ptrdiff_t queries, ptrdiff_t keys, ptrdiff_t visible, ptrdiff_t d,
                                         float scale, float *out, ptrdiff_t out_stride, float *scores, float *scratch) {
    const attention_scratch a = attention_layout(scratch, keys, d);
    attention_pack(k, v, kv_stride, keys, d, scale, &a);
    const ptrdiff_t s_stride = a.s_stride;
    for (ptrdiff_t i0 = 0; i0 < queries; i0 += ATT_ROWS) {
        const ptrdiff_t rows = queries - i0 < ATT_ROWS ? queries - i0 : ATT_ROWS;
        const ptrdiff_t width = block_width(keys, visible, i0, rows), panel_count = round_up(width, ATT_PANEL) / ATT_PANEL;
        const float *qr[ATT_ROWS];
        for (int r = 0; r < ATT_ROWS; r++) qr[r] = q + (i0 + (r < rows ? r : 0)) * q_stride;
        ptrdiff_t p = 0;
        for (; p + 2 <= panel_count; p += 2) {
            qk_tile512(qr, a.panels + p * d * ATT_PANEL, a.panels + (p + 1) * d * ATT_PANEL, d, a.s + p * ATT_PANEL, s_stride);
        }
        if (p < panel_count) qk_tile512(qr, a.panels + p * d * ATT_PANEL, NULL, d, a.s + p * ATT_PANEL, s_stride);
        float inv[ATT_ROWS];
        for (ptrdiff_t r = 0; r < rows; r++) {
            float *row = a.s + r * s_stride;
            const ptrdiff_t seen = row_width(keys, visible, i0 + r);
            inv[r] = 1.0f / exp_row_avx512(row, seen);
            if (seen < width) memset(row + seen, 0, (size_t)(width - seen) * sizeof(float));
            if (scores) accumulate_avx512(row, inv[r], scores, seen);
        }
        const float *pr[ATT_ROWS];
        float *orow[ATT_ROWS];
        for (int r = 0; r < ATT_ROWS; r++) {
            int live = r < rows;
            pr[r] = a.s + (live ? r : 0) * s_stride;
            orow[r] = live ? out + (i0 + r) * out_stride : a.discard;
            if (!live) inv[r] = 0.0f;
        }
        // Value panels are 16 columns wide (the last may be 8): two at a time, then one, then the 8.
        ptrdiff_t c = 0;
        for (; c + 32 <= d; c += 32) pv_tile512(pr, a.values + c * keys, a.values + (c + 16) * keys, width, c, orow, inv);
        if (c + 16 <= d) {
            pv_tile512(pr, a.values + c * keys, NULL, width, c, orow, inv);
            c += 16;
        }
        if (c < d) pv_tile8(pr, a.values + c * keys, width, c, orow, inv);
    }
}
#endif

// MARK: - Dispatch
//
// cpu_features.c names the path (hp_isa_active: one relaxed load per call); tests force each one.

#ifdef ENC_X86
// DISPATCH(name, args): runs name##_avx512(args) or name##_avx2(args) and returns when that path is
// active; RETURN_DISPATCH returns its value.
#define DISPATCH(NAME, ...)                                                                    \
    do {                                                                                       \
        hp_isa isa_ = hp_isa_active();                                                         \
        if (isa_ >= HP_ISA_AVX512) { NAME##_avx512(__VA_ARGS__); return; }                    \
        if (isa_ >= HP_ISA_AVX2) { NAME##_avx2(__VA_ARGS__); return; }                         \
    } while (0)
#define RETURN_DISPATCH(NAME, ...)                                                             \
    do {                                                                                       \
        hp_isa isa_ = hp_isa_active();                                                         \
        if (isa_ >= HP_ISA_AVX512) return NAME##_avx512(__VA_ARGS__);                          \
        if (isa_ >= HP_ISA_AVX2) return NAME##_avx2(__VA_ARGS__);                              \
    } while (0)
#else
#define DISPATCH(NAME, ...) do {} while (0)
#define RETURN_DISPATCH(NAME, ...) do {} while (0)
#endif

float enc_exp_row(float *row, ptrdiff_t count) {
    if (count <= 0) return 0;
    RETURN_DISPATCH(exp_row, row, count);
    return exp_row_portable(row, count);
}

void enc_softmax_row(float *row, ptrdiff_t count) {
    if (count <= 0) return;
    enc_scale(row, count, 1.0f / enc_exp_row(row, count));
}

void enc_accumulate_scaled(const float *row, float factor, float *acc, ptrdiff_t count) {
    if (count <= 0) return;
    DISPATCH(accumulate, row, factor, acc, count);
    accumulate_portable(row, factor, acc, count);
}

void enc_softmax_block(float *logits, ptrdiff_t rows, ptrdiff_t width, ptrdiff_t visible,
                       float *inverse, float *scores) {
    for (ptrdiff_t i = 0; i < rows; i++) {
        float *row = logits + i * width;
        ptrdiff_t seen = visible + i < width ? visible + i : width;
        if (seen < 1) seen = 1;
        float inv = 1.0f / enc_exp_row(row, seen);
        inverse[i] = inv;
        if (seen < width) memset(row + seen, 0, (size_t)(width - seen) * sizeof(float));
        // The row was just written and is still in L1: the score sum costs no memory pass.
        if (scores) enc_accumulate_scaled(row, inv, scores, seen);
    }
}

void enc_bias_gelu_tanh(float *x, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t stride, const float *bias) {
    if (rows <= 0 || cols <= 0) return;
    DISPATCH(gelu, x, rows, cols, stride, bias);
    gelu_portable(x, rows, cols, stride, bias);
}

void enc_sigmoid_gate(float *x, ptrdiff_t count, float beta) {
    if (count <= 0) return;
    DISPATCH(sigmoid_gate, x, count, beta);
    for (ptrdiff_t i = 0; i < count; i++) x[i] = x[i] / (1.0f + hp_exp1(-beta * x[i]));
}

void enc_silu(float *x, ptrdiff_t count) { enc_sigmoid_gate(x, count, 1.0f); }

void enc_layer_norm(float *x, ptrdiff_t rows, ptrdiff_t cols, const float *residual_bias,
                    const float *weight, const float *bias, float eps, float *out) {
    if (rows <= 0 || cols <= 0) return;
    DISPATCH(layer_norm, x, rows, cols, residual_bias, weight, bias, eps, out);
    layer_norm_portable(x, rows, cols, residual_bias, weight, bias, eps, out);
}

void enc_add_row(float *x, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t stride, const float *row) {
    if (rows <= 0 || cols <= 0) return;
    DISPATCH(add_row, x, rows, cols, stride, row);
    for (ptrdiff_t r = 0; r < rows; r++) {
        for (ptrdiff_t c = 0; c < cols; c++) x[r * stride + c] += row[c];
    }
}

void enc_scale(float *x, ptrdiff_t count, float factor) {
    if (count <= 0) return;
    DISPATCH(scale, x, count, factor);
    for (ptrdiff_t i = 0; i < count; i++) x[i] *= factor;
}

int enc_attention_supported(ptrdiff_t d) { return hp_isa_active() >= HP_ISA_AVX2 && d > 0 && d % 8 == 0; }

ptrdiff_t enc_attention_scratch(ptrdiff_t keys, ptrdiff_t d) {
    ptrdiff_t padded = (keys + 15) / 16 * 16;
    return padded * d + keys * d + 6 * (padded + 16) + d;
}

void enc_attention_head(const float *q, ptrdiff_t q_stride, const float *k, const float *v, ptrdiff_t kv_stride,
                        ptrdiff_t queries, ptrdiff_t keys, ptrdiff_t visible, ptrdiff_t d, float scale,
                        float *out, ptrdiff_t out_stride, float *scores, float *scratch) {
    if (queries <= 0 || keys <= 0 || visible <= 0 || !enc_attention_supported(d)) return;
    DISPATCH(attention_head, q, q_stride, k, v, kv_stride, queries, keys, visible, d, scale, out, out_stride, scores, scratch);
}
