#pragma once
// The one exponential of the C kernels (softmax, GELU, SiLU, decode attention and SwiGLU), at each
// width a path needs. Cephes expf: e^x = 2ⁿ · e^r with n = round(x·log2 e), |r| ≤ ln2/2, a
// degree-6 polynomial for e^r (≈ 1 ulp). x is clamped to [-87, 88] so that 2ⁿ stays a normal
// float; e^-87 ≈ 1.6e-38 is far below any softmax weight or activation term that matters.
// Internal to CKernels (not in include/): each .c file includes it after <immintrin.h>.
#include <string.h>

#define HP_EXP_LOW (-87.0f)
#define HP_EXP_HIGH 88.0f
#define HP_LOG2E 1.44269504088896341f
#define HP_LN2_HIGH 0.693359375f
#define HP_LN2_LOW (-2.12194440e-4f)
#define HP_EXP_P0 1.9875691500e-4f
#define HP_EXP_P1 1.3981999507e-3f
#define HP_EXP_P2 8.3334519073e-3f
#define HP_EXP_P3 4.1665795894e-2f
#define HP_EXP_P4 1.6666665459e-1f
#define HP_EXP_P5 5.0000001201e-1f
// 1.5 · 2²³: adding it rounds to the nearest integer and leaves that integer in the low mantissa bits.
#define HP_ROUNDING_MAGIC 12582912.0f

static inline float hp_exp1(float x) {
    if (x < HP_EXP_LOW) x = HP_EXP_LOW;
    if (x > HP_EXP_HIGH) x = HP_EXP_HIGH;
    float shifted = x * HP_LOG2E + HP_ROUNDING_MAGIC;
    float n = shifted - HP_ROUNDING_MAGIC;
    float r = x - n * HP_LN2_HIGH;
    r = r - n * HP_LN2_LOW;
    float r2 = r * r;
    float p = HP_EXP_P0;
    p = p * r + HP_EXP_P1;
    p = p * r + HP_EXP_P2;
    p = p * r + HP_EXP_P3;
    p = p * r + HP_EXP_P4;
    p = p * r + HP_EXP_P5;
    p = p * r2 + r + 1.0f;
    unsigned bits = (unsigned)((int)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

__attribute__((target("avx2,fma"))) static inline __m256 hp_exp8(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(HP_EXP_LOW));
    x = _mm256_min_ps(x, _mm256_set1_ps(HP_EXP_HIGH));
    const __m256 magic = _mm256_set1_ps(HP_ROUNDING_MAGIC);
    __m256 shifted = _mm256_fmadd_ps(x, _mm256_set1_ps(HP_LOG2E), magic);
    __m256 n = _mm256_sub_ps(shifted, magic);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(HP_LN2_HIGH), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(HP_LN2_LOW), r);
    __m256 r2 = _mm256_mul_ps(r, r);
    __m256 p = _mm256_set1_ps(HP_EXP_P0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(HP_EXP_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(HP_EXP_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(HP_EXP_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(HP_EXP_P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(HP_EXP_P5));
    p = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0f));
    // 2ⁿ: n sits in the low bits of `shifted`; move it into the exponent field.
    __m256i nbits = _mm256_sub_epi32(_mm256_castps_si256(shifted), _mm256_castps_si256(magic));
    __m256i scale = _mm256_slli_epi32(_mm256_add_epi32(nbits, _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(scale));
}

__attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512dq"))) static inline __m512 hp_exp16(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(HP_EXP_LOW));
    x = _mm512_min_ps(x, _mm512_set1_ps(HP_EXP_HIGH));
    const __m512 magic = _mm512_set1_ps(HP_ROUNDING_MAGIC);
    __m512 shifted = _mm512_fmadd_ps(x, _mm512_set1_ps(HP_LOG2E), magic);
    __m512 n = _mm512_sub_ps(shifted, magic);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(HP_LN2_HIGH), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(HP_LN2_LOW), r);
    __m512 r2 = _mm512_mul_ps(r, r);
    __m512 p = _mm512_set1_ps(HP_EXP_P0);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(HP_EXP_P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(HP_EXP_P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(HP_EXP_P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(HP_EXP_P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(HP_EXP_P5));
    p = _mm512_add_ps(_mm512_fmadd_ps(p, r2, r), _mm512_set1_ps(1.0f));
    __m512i nbits = _mm512_sub_epi32(_mm512_castps_si512(shifted), _mm512_castps_si512(magic));
    __m512i scale = _mm512_slli_epi32(_mm512_add_epi32(nbits, _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(scale));
}
#endif
