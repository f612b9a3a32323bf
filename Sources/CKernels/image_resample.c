// Separable uint8 resize passes (see include/image_resample.h for the contract).
#include "image_resample.h"
#include "cpu_features.h"

#if defined(__x86_64__) || defined(__i386__)
#define RS_X86 1
#include <immintrin.h>
#endif

static inline uint8_t clamp_u8(int32_t v) { return (uint8_t)(v < 0 ? 0 : (v > 255 ? 255 : v)); }

void hp_resample_horizontal_u8(const uint8_t *src, ptrdiff_t src_width, ptrdiff_t rows, ptrdiff_t channels,
                               uint8_t *dst, ptrdiff_t dst_width, const int32_t *first, const int32_t *count,
                               const int16_t *weights, ptrdiff_t max_taps, int precision) {
    const int32_t bias = precision > 0 ? (int32_t)1 << (precision - 1) : 0;
    for (ptrdiff_t y = 0; y < rows; y++) {
        const uint8_t *line = src + y * src_width * channels;
        uint8_t *out = dst + y * dst_width * channels;
        for (ptrdiff_t x = 0; x < dst_width; x++) {
            const uint8_t *p = line + (ptrdiff_t)first[x] * channels;
            const int16_t *w = weights + x * max_taps;
            const int32_t n = count[x];
            if (channels == 3) {
                int32_t r = bias, g = bias, b = bias;
                for (int32_t k = 0; k < n; k++) {
                    const int32_t wk = w[k];
                    r += wk * p[3 * k];
                    g += wk * p[3 * k + 1];
                    b += wk * p[3 * k + 2];
                }
                out[3 * x] = clamp_u8(r >> precision);
                out[3 * x + 1] = clamp_u8(g >> precision);
                out[3 * x + 2] = clamp_u8(b >> precision);
            } else {
                for (ptrdiff_t c = 0; c < channels; c++) {
                    int32_t acc = bias;
                    for (int32_t k = 0; k < n; k++) acc += (int32_t)w[k] * p[k * channels + c];
                    out[x * channels + c] = clamp_u8(acc >> precision);
                }
            }
        }
    }
}

static void vertical_row_portable(const uint8_t *src, ptrdiff_t row_bytes, uint8_t *out, int32_t first, int32_t n,
                                  const int16_t *w, int precision, ptrdiff_t from) {
    const int32_t bias = precision > 0 ? (int32_t)1 << (precision - 1) : 0;
    for (ptrdiff_t i = from; i < row_bytes; i++) {
        int32_t acc = bias;
        for (int32_t k = 0; k < n; k++) acc += (int32_t)w[k] * src[(ptrdiff_t)(first + k) * row_bytes + i];
        out[i] = clamp_u8(acc >> precision);
    }
}

#if RS_X86
#define AVX2 __attribute__((target("avx2,fma")))

// 16 bytes of a row at a time: widened to int16, multiplied by the tap's weight into int32 lanes
// (vpmaddwd pairs each byte with a zero), summed over the taps, shifted and packed back with
// saturation (the same clamp to 0…255 as the portable path).
AVX2 static ptrdiff_t vertical_row_avx2(const uint8_t *src, ptrdiff_t row_bytes, uint8_t *out, int32_t first,
                                        int32_t n, const int16_t *w, int precision) {
    const int32_t bias = precision > 0 ? (int32_t)1 << (precision - 1) : 0;
    const __m128i shift = _mm_cvtsi32_si128(precision);
    ptrdiff_t i = 0;
    for (; i + 16 <= row_bytes; i += 16) {
        __m256i lo = _mm256_set1_epi32(bias), hi = _mm256_set1_epi32(bias);
        for (int32_t k = 0; k < n; k++) {
            const __m256i wk = _mm256_set1_epi32((int32_t)(uint16_t)w[k]);  // (w, 0) pairs
            const __m256i v = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(src + (ptrdiff_t)(first + k) * row_bytes + i)));
            // v as int16 lanes 0…15; unpack with zeros so each int32 pair is (value, 0).
            const __m256i zero = _mm256_setzero_si256();
            const __m256i v_lo = _mm256_unpacklo_epi16(v, zero), v_hi = _mm256_unpackhi_epi16(v, zero);
            lo = _mm256_add_epi32(lo, _mm256_madd_epi16(v_lo, wk));
            hi = _mm256_add_epi32(hi, _mm256_madd_epi16(v_hi, wk));
        }
        lo = _mm256_sra_epi32(lo, shift);
        hi = _mm256_sra_epi32(hi, shift);
        // packs keeps the unpack's in-lane order, so lanes come back in source order.
        const __m256i words = _mm256_packs_epi32(lo, hi);
        const __m256i bytes = _mm256_packus_epi16(words, words);
        const __m256i ordered = _mm256_permute4x64_epi64(bytes, 0x08);
        _mm_storeu_si128((__m128i *)(out + i), _mm256_castsi256_si128(ordered));
    }
    return i;
}
#endif

void hp_resample_vertical_u8(const uint8_t *src, ptrdiff_t row_bytes, uint8_t *dst, ptrdiff_t dst_rows,
                             const int32_t *first, const int32_t *count, const int16_t *weights, ptrdiff_t max_taps,
                             int precision) {
    for (ptrdiff_t o = 0; o < dst_rows; o++) {
        const int16_t *w = weights + o * max_taps;
        uint8_t *out = dst + o * row_bytes;
        ptrdiff_t done = 0;
#if RS_X86
        if (hp_isa_active() >= HP_ISA_AVX2) done = vertical_row_avx2(src, row_bytes, out, first[o], count[o], w, precision);
#endif
        vertical_row_portable(src, row_bytes, out, first[o], count[o], w, precision, done);
    }
}
