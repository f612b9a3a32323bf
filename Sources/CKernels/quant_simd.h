// The SIMD row dot products of quant_kernels.c, included once per instruction set with SIMD_TARGET,
// SIMD_SUFFIX, DOT and DOT_SCALED defined (see there). Integer sums per block are exact; each block's
// sum is scaled into eight F32 lanes, so a row's result depends only on the row and the activation.
// Weights are unpacked to unsigned bytes (Q8_0's signed bytes go in as |w| with y carrying w's sign).

#define SIMD_PASTE2(a, b) a##_##b
#define SIMD_PASTE(a, b) SIMD_PASTE2(a, b)
#define SIMD_NAME(name) SIMD_PASTE(name, SIMD_SUFFIX)

static inline SIMD_TARGET float SIMD_NAME(hsum)(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/// A half at `p` (F16C's one-instruction conversion).
static inline SIMD_TARGET float SIMD_NAME(half)(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/// 16 bytes of nibbles → 32 bytes: low halves (values 0–15), then high halves (values 16–31).
static inline SIMD_TARGET __m256i SIMD_NAME(nibbles)(const uint8_t *q) {
    __m128i v = _mm_loadu_si128((const __m128i *)q);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), _mm256_set1_epi8(0x0F));
}

/// 32 bits → 32 bytes holding 0x10 where the bit is set (the fifth bit of Q5_0 / Q5_1 values).
static inline SIMD_TARGET __m256i SIMD_NAME(fifth_bits)(const uint8_t *p) {
    uint32_t bits;
    memcpy(&bits, p, 4);
    const __m256i spread = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), spread);
    const __m256i select = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(bytes, select), select);
    return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
}

/// One 32-value block's integer products (eight sums of four) and its scale; the _0 types' offset
/// and the _1 types' minimum go into `extra` (they need only the activation block's sum).
static inline SIMD_TARGET __m256i SIMD_NAME(block32)(int type, const uint8_t *b, const act32 *a, float *d, float *extra) {
    __m256i y = _mm256_loadu_si256((const __m256i *)a->qs), u;
    *d = SIMD_NAME(half)(b) * a->d;
    switch (type) {
    case T_Q8_0: {
        __m256i w = _mm256_loadu_si256((const __m256i *)(b + 2));
        u = _mm256_sign_epi8(w, w);
        y = _mm256_sign_epi8(y, w);
        break;
    }
    case T_Q4_0:
        u = SIMD_NAME(nibbles)(b + 2);
        *extra -= *d * (float)(8 * a->sum);
        break;
    case T_Q4_1:
        u = SIMD_NAME(nibbles)(b + 4);
        *extra += SIMD_NAME(half)(b + 2) * a->d * (float)a->sum;
        break;
    case T_Q5_0:
        u = _mm256_or_si256(SIMD_NAME(nibbles)(b + 6), SIMD_NAME(fifth_bits)(b + 2));
        *extra -= *d * (float)(16 * a->sum);
        break;
    default:  // Q5_1
        u = _mm256_or_si256(SIMD_NAME(nibbles)(b + 8), SIMD_NAME(fifth_bits)(b + 4));
        *extra += SIMD_NAME(half)(b + 2) * a->d * (float)a->sum;
        break;
    }
    return DOT(u, y);
}

static SIMD_TARGET float SIMD_NAME(dot)(int type, const uint8_t *b, const void *activation, long cols) {
    __m256 acc = _mm256_setzero_ps();
    float extra = 0;
    if (type == T_Q8_0 || type == T_Q4_0 || type == T_Q4_1 || type == T_Q5_0 || type == T_Q5_1) {
        // Two blocks per iteration into two accumulators: one chain of dependent FMAs would bound
        // the loop by their latency.
        const act32 *a = activation;
        long size = quant_block_bytes(type), nb = cols / QK, i = 0;
        __m256 acc1 = _mm256_setzero_ps();
        float extra1 = 0;
        for (; i + 1 < nb; i += 2, b += 2 * size) {
            float d0, d1;
            __m256i p0 = SIMD_NAME(block32)(type, b, a + i, &d0, &extra);
            __m256i p1 = SIMD_NAME(block32)(type, b + size, a + i + 1, &d1, &extra1);
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(d0), acc);
            acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), _mm256_set1_ps(d1), acc1);
        }
        if (i < nb) {
            float d0;
            __m256i p0 = SIMD_NAME(block32)(type, b, a + i, &d0, &extra);
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(d0), acc);
        }
        return SIMD_NAME(hsum)(_mm256_add_ps(acc, acc1)) + (extra + extra1);
    }
    const act256 *a = activation;
    long size = quant_block_bytes(type);
    const __m256i low4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1), three = _mm256_set1_epi8(3);
    __m128 minimums = _mm_setzero_ps();
    for (long i = 0; i < cols / QKK; i++, b += size) {
        const int8_t *y = a[i].qs;
        const int16_t *bs = a[i].bsums;
        __m256i sumi = _mm256_setzero_si256();
        if (type == T_Q6_K) {
            const int8_t *sc = (const int8_t *)(b + 192);
            for (int n = 0; n < 2; n++) {
                const uint8_t *ql = b + 64 * n;
                __m256i qh = _mm256_loadu_si256((const __m256i *)(b + 128 + 32 * n));
                __m256i l0 = _mm256_loadu_si256((const __m256i *)ql), l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
                __m256i q[4] = {
                    _mm256_or_si256(_mm256_and_si256(l0, low4), _mm256_slli_epi16(_mm256_and_si256(qh, three), 4)),
                    _mm256_or_si256(_mm256_and_si256(l1, low4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), three), 4)),
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low4),
                                    _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), three), 4)),
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low4),
                                    _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), three), 4)),
                };
                for (int k = 0; k < 4; k++) {
                    const int8_t *s = sc + 8 * n + 2 * k;
                    __m256i yy = _mm256_loadu_si256((const __m256i *)(y + 128 * n + 32 * k));
                    sumi = _mm256_add_epi32(sumi, DOT_SCALED(q[k], yy, s[0], s[1]));
                }
            }
            // The −32 offset of every value: Σ_g scale_g · (activation sum of group g) · 32.
            __m256i offset = _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc)),
                                               _mm256_loadu_si256((const __m256i *)bs));
            sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32(offset, 5));
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(SIMD_NAME(half)(b + 208) * a[i].d), acc);
            continue;
        }
        int five = type == T_Q5_K;
        const uint8_t *q = b + 16 + 32 * five;
        // The 6-bit scales and mins of the 8 sub-blocks unpacked at once (what scale_min_k4 reads one
        // at a time): bytes 0–7 scales, 8–15 mins.
        uint32_t packed[4];
        memcpy(packed, b + 4, 12);
        packed[3] = ((packed[2] >> 4) & 0x0F0F0F0F) | (((packed[1] >> 6) & 0x03030303) << 4);
        uint32_t mins_low = packed[1] & 0x3F3F3F3F;
        packed[1] = (packed[2] & 0x0F0F0F0F) | (((packed[0] >> 6) & 0x03030303) << 4);
        packed[2] = mins_low;
        packed[0] &= 0x3F3F3F3F;
        const uint8_t *sc = (const uint8_t *)packed;
        // Σ_s min_s · (activation sum of sub-block s), from the sums of each 16.
        __m128i pairs = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)bs), _mm_loadu_si128((const __m128i *)(bs + 8)));
        __m128i mins = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)(sc + 8)));
        __m128i summ = _mm_madd_epi16(mins, pairs);
        __m256i high = five ? _mm256_loadu_si256((const __m256i *)(b + 16)) : _mm256_setzero_si256();
        for (int c = 0; c < 4; c++, q += 32) {
            __m256i w = _mm256_loadu_si256((const __m256i *)q);
            __m256i lo = _mm256_and_si256(w, low4), hi = _mm256_and_si256(_mm256_srli_epi16(w, 4), low4);
            if (five) {
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(high, one), 4));
                high = _mm256_srli_epi16(high, 1);
                hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(high, one), 4));
                high = _mm256_srli_epi16(high, 1);
            }
            __m256i y0 = _mm256_loadu_si256((const __m256i *)(y + 64 * c));
            __m256i y1 = _mm256_loadu_si256((const __m256i *)(y + 64 * c + 32));
            sumi = _mm256_add_epi32(sumi, DOT_SCALED(lo, y0, sc[2 * c], sc[2 * c]));
            sumi = _mm256_add_epi32(sumi, DOT_SCALED(hi, y1, sc[2 * c + 1], sc[2 * c + 1]));
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(SIMD_NAME(half)(b) * a[i].d), acc);
        minimums = _mm_fmadd_ps(_mm_cvtepi32_ps(summ), _mm_set1_ps(-SIMD_NAME(half)(b + 2) * a[i].d), minimums);
    }
    __m128 m = _mm_add_ps(minimums, _mm_movehl_ps(minimums, minimums));
    m = _mm_add_ss(m, _mm_movehdup_ps(m));
    return SIMD_NAME(hsum)(acc) + extra + _mm_cvtss_f32(m);
}

static SIMD_TARGET float SIMD_NAME(dot_f16)(const uint8_t *b, const float *x, long cols) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    long c = 0;
    for (; c + 16 <= cols; c += 16) {
        a0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + 2 * c))), _mm256_loadu_ps(x + c), a0);
        a1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + 2 * c + 16))), _mm256_loadu_ps(x + c + 8), a1);
    }
    float sum = SIMD_NAME(hsum)(_mm256_add_ps(a0, a1));
    for (; c < cols; c++) sum += SIMD_NAME(half)(b + 2 * c) * x[c];
    return sum;
}

#undef SIMD_NAME
#undef SIMD_PASTE
#undef SIMD_PASTE2
