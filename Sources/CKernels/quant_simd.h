// The SIMD row dot products of quant_kernels.c, included once per instruction set with SIMD_TARGET,
// SIMD_SUFFIX, SIMD_VNNI, DOT, DOT_ACC and MADD_ACC defined (see there). Integer sums per block are
// exact, so a result depends only on the weight row and the activation row (never on how many rows
// are computed together, nor on the thread).
//
// 32-value types: per block, the exact integer dot product of the weights' bytes and the
// activation's (Q8_0's signs moved onto the activation; the other types' unsigned values as they
// are, the _0 types' offset taken off once per block through the activation block's sum), that
// integer times d_w · d_a added onto the pair's accumulator (the _1 types' m · d_a·Σq onto a second
// chain), blocks in order: the portable dot product's arithmetic, so every instruction set gives
// the same bits. The decode step runs eight weight rows per pass, each row's eight
// partial sums reduced to its integer (reduce8) so the rows' chains run in the lanes of one vector
// (the last rows one at a time, row32), or, repacked at load into tile form, reads a dword of 8 rows
// per register (t32_rows: no reduction, the same chains in the lanes); the many-row product runs
// `micro32`, register tiles of eight weight rows (lanes) × GEMM_RA activation rows over weights
// packed once per panel (pack32, or pack32_tiles from the tile form: four bytes of each row per
// lane, so each activation row's four bytes are one broadcast) and
// activations grouped once per product (group_body): the same integers, the same chains. K-quants:
// each block's exact integer sums (S, M), then eight F32 chains per pair (kblock_sums); the decode
// step reads a row as stored (kdot_row) or, repacked at load into tile form, 8 rows per pass
// (ktmicro, the rows in the lanes); the many-row product runs `kmicro` on tiles of 8 weight rows
// packed once per panel (kpack from stored rows, kpack_tiles from the tile form), the rows in the
// lanes: the portable code's chains too.
// All are always inlined with constant shapes, so the accumulators live in registers.

#define SIMD_PASTE2(a, b) a##_##b
#define SIMD_PASTE(a, b) SIMD_PASTE2(a, b)
#define SIMD_NAME(name) SIMD_PASTE(name, SIMD_SUFFIX)

static inline SIMD_TARGET float SIMD_NAME(hsum)(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline SIMD_TARGET float SIMD_NAME(hsum128)(__m128 m) {
    m = _mm_add_ps(m, _mm_movehl_ps(m, m));
    m = _mm_add_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/// A half at `p` (F16C's conversion). Moved in through a zero-extended register: _cvtsh_ss inserts
/// into whatever register the compiler picks, which made each block wait for an accumulator.
static inline SIMD_TARGET float SIMD_NAME(half)(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h)));
}

/// 16 bytes of nibbles → 32 bytes: low halves (values 0–15), then high halves (values 16–31).
static inline __attribute__((always_inline)) SIMD_TARGET __m256i SIMD_NAME(nibbles)(const uint8_t *q) {
    __m128i v = _mm_loadu_si128((const __m128i *)q);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), _mm256_set1_epi8(0x0F));
}

/// 32 bits → 32 bytes all ones where the bit is set.
static inline __attribute__((always_inline)) SIMD_TARGET __m256i SIMD_NAME(bit_bytes)(const uint8_t *p) {
    uint32_t bits;
    memcpy(&bits, p, 4);
    const __m256i spread = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), spread);
    const __m256i select = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    return _mm256_cmpeq_epi8(_mm256_and_si256(bytes, select), select);
}

/// Whether a 32-value type has a minimum (the _1 types: value = d·q + m).
#define HAS_MIN(type) ((type) == T_Q4_1 || (type) == T_Q5_1)
/// The _0 types' offset: Q4_0's values are d·(q − 8), Q5_0's d·(q − 16), q unsigned.
#define OFFSET32(type) ((type) == T_Q4_0 ? 8 : (type) == T_Q5_0 ? 16 : 0)

/// One 32-value weight block's bytes for the integer products: Q8_0's signed bytes as stored, the
/// other types' unsigned values q (0–15 for Q4_0/Q4_1, 0–31 for Q5_0/Q5_1; see OFFSET32, HAS_MIN).
static inline __attribute__((always_inline)) SIMD_TARGET __m256i SIMD_NAME(bytes32)(const int type, const uint8_t *b) {
    switch (type) {
    case T_Q8_0: return _mm256_loadu_si256((const __m256i *)(b + 2));
    case T_Q4_0: return SIMD_NAME(nibbles)(b + 2);
    case T_Q4_1: return SIMD_NAME(nibbles)(b + 4);
    case T_Q5_0: return _mm256_or_si256(SIMD_NAME(nibbles)(b + 6), _mm256_and_si256(SIMD_NAME(bit_bytes)(b + 2), _mm256_set1_epi8(0x10)));
    default: return _mm256_or_si256(SIMD_NAME(nibbles)(b + 8), _mm256_and_si256(SIMD_NAME(bit_bytes)(b + 4), _mm256_set1_epi8(0x10)));
    }
}

/// Eight int32 lanes whose sum is Σ_j q_j · y_j for a weight block's bytes `w` (bytes32) and an
/// activation block's `y`, exact: maddubs takes unsigned × signed bytes, so Q8_0's signs move onto
/// y; the other types' values are unsigned already (their offset is not in this sum).
static inline __attribute__((always_inline)) SIMD_TARGET __m256i SIMD_NAME(dot32)(const int type, __m256i w, __m256i y) {
    if (type == T_Q8_0) return DOT(_mm256_sign_epi8(w, w), _mm256_sign_epi8(y, w));
    return DOT(w, y);
}

// MARK: K-quants
//
// Decode (kblock_sums): a 256-value block is four groups of 64 values. Each group is two registers of 32 weights (Ra, Rb)
// whose 8-byte quarters hold, in order, values 0–7, 40–47, 16–23, 56–63 (Ra) and 8–15, 32–39, 24–31,
// 48–55 (Rb) of the group: so every 8-byte quarter of Ra and of Rb belongs to the same scale group (a
// Q4_K/Q5_K sub-block of 32, a Q6_K group of 16), the two byte products (maddubs) of a group add in
// 16 bits before one multiply by the scales (madd) — three multiplies per 64 values and activation
// row where a multiply per 32 values and its scale made four. The activation's quantized bytes are
// stored in the same order (prepare_activation), so the weights' order costs one shuffle each.
// 16 bits hold it: |y| ≤ 127 and weights ≤ 63 give four products ≤ 32004. Many rows: kpanel (in
// quant_kernels.c) and kmicro.

/// The K-quant blocks' sub-block scales as the groups' multipliers: sc[g] the 16 int16 scales of
/// group g's lanes, mn the minimums (Q4_K/Q5_K: each sub-block's twice, against the activation's
/// sums of 16) or Q6_K's 16 scales (against the same sums, for its −32 offset), d and dmin.
typedef struct {
    __m256i sc[4], mn;
    float d, dmin;
} SIMD_NAME(kscales);

static inline __attribute__((always_inline)) SIMD_TARGET SIMD_NAME(kscales) SIMD_NAME(kscales_raw)(const int type, const uint8_t *b) {
    SIMD_NAME(kscales) k;
    if (type == T_Q6_K) {
        // Group g (values 64g ..< 64g + 64) uses scales 4g … 4g + 3 (one per 16 values): Ra/Rb's
        // quarters are groups 4g, 4g + 2 (low half) and 4g + 1, 4g + 3 (high half).
        const int8_t *sc = (const int8_t *)(b + 192);
        for (int n = 0; n < 2; n++) {
            __m256i s = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)(sc + 8 * n))));
            // Half p picks scales 4p … 4p + 3: the p = 0 mask plus 8p bytes. One constant mask: masks
            // made in a loop over p were built byte by byte at -O2 (SwiftPM's C level).
            const __m256i pick = _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 4, 5, 4, 5, 4, 5, 4, 5,
                                                  2, 3, 2, 3, 2, 3, 2, 3, 6, 7, 6, 7, 6, 7, 6, 7);
            k.sc[2 * n] = _mm256_shuffle_epi8(s, pick);
            k.sc[2 * n + 1] = _mm256_shuffle_epi8(s, _mm256_add_epi8(pick, _mm256_set1_epi8(8)));
        }
        k.mn = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc));
        k.d = SIMD_NAME(half)(b + 208);
        k.dmin = 0;
        return k;
    }
    // The 6-bit scales (bytes 0–7) and mins (8–15) of the 8 sub-blocks.
    uint32_t packed[4];
    unpack_k4_scales(b + 4, packed);
    __m128i bytes = _mm_loadu_si128((const __m128i *)packed);
    __m256i s = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(bytes));
    // Group c is sub-blocks 2c (low nibbles: Ra/Rb's quarters 0 and 2) and 2c + 1 (quarters 1, 3).
    // Group c's mask is group 0's plus 4c bytes. One constant mask: masks made in a loop over c were
    // built byte by byte at -O2 (SwiftPM's C level), 32 inserts a mask, every block, which ran the
    // Q4_K decode 4.5× slower than this (38 against 8.9 ns per block, one thread).
    const __m256i pick = _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3,
                                          0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3);
    k.sc[0] = _mm256_shuffle_epi8(s, pick);
    k.sc[1] = _mm256_shuffle_epi8(s, _mm256_add_epi8(pick, _mm256_set1_epi8(4)));
    k.sc[2] = _mm256_shuffle_epi8(s, _mm256_add_epi8(pick, _mm256_set1_epi8(8)));
    k.sc[3] = _mm256_shuffle_epi8(s, _mm256_add_epi8(pick, _mm256_set1_epi8(12)));
    __m128i mins = _mm_srli_si128(bytes, 8);
    k.mn = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mins, mins));
    k.d = SIMD_NAME(half)(b);
    k.dmin = SIMD_NAME(half)(b + 2);
    return k;
}

/// Group g of a block as stored → Ra, Rb (unsigned: Q4_K 0–15, Q5_K 0–31, Q6_K 0–63).
static inline __attribute__((always_inline)) SIMD_TARGET void SIMD_NAME(kgroup_raw)(const int type, const uint8_t *b, const int g,
                                                                                 __m256i *ra, __m256i *rb) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    if (type == T_Q6_K) {
        // Group g is half n = g/2 of the block, its values 64p … 64p + 63 (p = g % 2): the low
        // nibbles (p = 0) or high nibbles (p = 1) of ql's two 32-byte runs, and bits 4p … 4p + 3 of qh.
        const int n = g / 2, p = g % 2;
        __m256i l0 = _mm256_loadu_si256((const __m256i *)(b + 64 * n)), l1 = _mm256_loadu_si256((const __m256i *)(b + 64 * n + 32));
        __m256i qh = _mm256_loadu_si256((const __m256i *)(b + 128 + 32 * n));
        __m256i la = _mm256_blend_epi32(l0, l1, 0xCC), lb = _mm256_shuffle_epi32(_mm256_blend_epi32(l1, l0, 0xCC), 0x4E);
        __m256i ha = qh, hb = _mm256_shuffle_epi32(qh, 0x4E);
        if (p) {
            la = _mm256_srli_epi16(la, 4);
            lb = _mm256_srli_epi16(lb, 4);
            // bits 4–5 (quarters 0, 2) and 6–7 (quarters 1, 3) to bits 4–5
            const __m256i shift = _mm256_setr_epi64x(0, 2, 0, 2);
            ha = _mm256_srlv_epi64(ha, shift);
            hb = _mm256_srlv_epi64(hb, shift);
        } else {
            // bits 0–1 and 2–3 to bits 4–5
            const __m256i shift = _mm256_setr_epi64x(4, 2, 4, 2);
            ha = _mm256_sllv_epi64(ha, shift);
            hb = _mm256_sllv_epi64(hb, shift);
        }
        const __m256i two = _mm256_set1_epi8(0x30);
        *ra = _mm256_or_si256(_mm256_and_si256(la, low4), _mm256_and_si256(ha, two));
        *rb = _mm256_or_si256(_mm256_and_si256(lb, low4), _mm256_and_si256(hb, two));
        return;
    }
    // Q4_K/Q5_K: group g is the nibbles of bytes 32g … 32g + 31 (low halves values 0–31, high 32–63).
    const int five = type == T_Q5_K;
    __m256i w = _mm256_loadu_si256((const __m256i *)(b + 16 + 32 * five + 32 * g));
    const __m256i nibble = _mm256_setr_epi64x(0, 4, 0, 4);
    __m256i a = _mm256_and_si256(_mm256_srlv_epi64(w, nibble), low4);
    __m256i c = _mm256_and_si256(_mm256_srlv_epi64(_mm256_shuffle_epi32(w, 0x4E), nibble), low4);
    if (five) {
        // Value 64g + l's fifth bit is bit 2g of qh[l], value 64g + 32 + l's bit 2g + 1: moved to bit 4.
        __m256i qh = _mm256_loadu_si256((const __m256i *)(b + 16)), qs = _mm256_shuffle_epi32(qh, 0x4E);
        const __m256i bit = _mm256_set1_epi8(0x10);
        __m256i ha, hb;
        if (g < 2) {
            const __m256i shift = _mm256_setr_epi64x(4 - 2 * g, 3 - 2 * g, 4 - 2 * g, 3 - 2 * g);
            ha = _mm256_sllv_epi64(qh, shift);
            hb = _mm256_sllv_epi64(qs, shift);
        } else {
            const __m256i shift = _mm256_setr_epi64x(2 * g - 4, 2 * g - 3, 2 * g - 4, 2 * g - 3);
            ha = _mm256_srlv_epi64(qh, shift);
            hb = _mm256_srlv_epi64(qs, shift);
        }
        a = _mm256_or_si256(a, _mm256_and_si256(ha, bit));
        c = _mm256_or_si256(c, _mm256_and_si256(hb, bit));
    }
    *ra = a;
    *rb = c;
}

/// The exact integer sums of one K-quant block of a row against one activation block (decode's
/// arrangement: the row as stored, the activation in the groups' order of prepare_activation), in
/// eight lanes each: S = Σ scale · Σ q·y over the sub-blocks (Q6_K: minus 32 · Σ scale · the group's
/// activation sum) and M = Σ min · the sub-block's activation sum (Q4_K/Q5_K). A pair (weight row,
/// activation row) runs eight chains, chain r over the blocks b with b % 8 = r in order: c = fma(S, d·d_a,
/// c), then for Q4_K/Q5_K c = fnmadd(M, dmin·d_a, c); its result is ((c0 + c4) + (c2 + c6)) + ((c1 +
/// c5) + (c3 + c7)). S and M are integers whatever lanes held their parts: the many-row product
/// (kmicro, eight weight rows in eight lanes) gives the same S and M and runs the same chains, and
/// here eight blocks' S and M, summed across their lanes together, make one vector per eight blocks.
static inline __attribute__((always_inline)) SIMD_TARGET void SIMD_NAME(kblock_sums)(const int type, const uint8_t *b, const act256 *a,
                                                                                  __m256i *s, __m256i *m, float *d, float *dmin) {
    SIMD_NAME(kscales) k = SIMD_NAME(kscales_raw)(type, b);
    __m256i sumi = _mm256_setzero_si256();
    for (int g = 0; g < 4; g++) {
        __m256i wa, wb;
        SIMD_NAME(kgroup_raw)(type, b, g, &wa, &wb);
        __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(wa, _mm256_loadu_si256((const __m256i *)(a->qs + 64 * g))),
                                     _mm256_maddubs_epi16(wb, _mm256_loadu_si256((const __m256i *)(a->qs + 64 * g + 32))));
        sumi = MADD_ACC(sumi, p, k.sc[g]);
        // Keeps Q4_K/Q5_K's groups in order: left free, the compiler hoists every group's products
        // ahead of their sums and spills them (Q6_K ran its decode 10 % faster without: one thread,
        // 4096 × 4096).
        if (type != T_Q6_K) __asm__ volatile("" : "+x"(sumi));
    }
    __m256i sums = _mm256_madd_epi16(k.mn, _mm256_loadu_si256((const __m256i *)a->bsums));
    if (type == T_Q6_K) sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32(sums, 5));
    *s = sumi;
    *m = sums;
    *d = k.d;
    *dmin = k.dmin;
}

/// Lane j: the sum of v[j]'s eight lanes (j < 8).
static inline __attribute__((always_inline)) SIMD_TARGET __m256i SIMD_NAME(hsum8)(const __m256i v[8]) {
    __m256i h0 = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    __m256i h1 = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
    return _mm256_add_epi32(_mm256_permute2x128_si256(h0, h1, 0x20), _mm256_permute2x128_si256(h0, h1, 0x31));
}

/// Weight row `row` (as stored, nb blocks) · the activation: the pair's eight chains (kblock_sums) in
/// eight lanes, eight blocks per pass; the blocks past nb of the last pass add nothing.
static inline __attribute__((always_inline)) SIMD_TARGET float SIMD_NAME(kdot_row)(const int type, const uint8_t *row, const act256 *a,
                                                                               long nb) {
    const long size = quant_block_bytes(type);
    __m256 acc = _mm256_setzero_ps();
    for (long i0 = 0; i0 < nb; i0 += 8) {
        __m256i s[8], m[8];
        _Alignas(32) float d[8], dmin[8], da[8];
        for (int j = 0; j < 8; j++) {
            if (i0 + j < nb) {
                SIMD_NAME(kblock_sums)(type, row + (i0 + j) * size, a + i0 + j, &s[j], &m[j], &d[j], &dmin[j]);
                da[j] = a[i0 + j].d;
            } else {
                s[j] = m[j] = _mm256_setzero_si256();
                d[j] = dmin[j] = da[j] = 0;
            }
        }
        __m256 dv = _mm256_load_ps(da);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(SIMD_NAME(hsum8)(s)), _mm256_mul_ps(_mm256_load_ps(d), dv), acc);
        if (type != T_Q6_K) acc = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(SIMD_NAME(hsum8)(m)), _mm256_mul_ps(_mm256_load_ps(dmin), dv), acc);
    }
    return SIMD_NAME(hsum)(acc);
}

/// An 8 × 8 transpose of 32-bit elements: r[j] element k ← r[k] element j (eight rows of eight
/// dwords → eight vectors whose lane j is dword c of row j; the K-quant and 32-value packers share it).
static inline __attribute__((always_inline)) SIMD_TARGET void SIMD_NAME(transpose8)(__m256i r[8]) {
    __m256i t[8], u[8];
    for (int j = 0; j < 8; j += 2) {
        t[j] = _mm256_unpacklo_epi32(r[j], r[j + 1]);
        t[j + 1] = _mm256_unpackhi_epi32(r[j], r[j + 1]);
    }
    for (int j = 0; j < 8; j += 4)
        for (int h = 0; h < 2; h++) {
            u[j + 2 * h] = _mm256_unpacklo_epi64(t[j + h], t[j + h + 2]);
            u[j + 2 * h + 1] = _mm256_unpackhi_epi64(t[j + h], t[j + h + 2]);
        }
    for (int j = 0; j < 4; j++) {
        r[j] = _mm256_permute2x128_si256(u[j], u[j + 4], 0x20);
        r[j + 4] = _mm256_permute2x128_si256(u[j], u[j + 4], 0x31);
    }
}

/// ktile_block's values (the tile form's registers) from 8 stored blocks (none NULL): each 32-byte
/// run of the 8 rows is one 8 × 8 dword transpose.
static inline SIMD_TARGET void SIMD_NAME(ktile_values)(const int type, const uint8_t *const src[8], uint8_t *dst) {
    if (quant_block_values(type) == QK) {
        // Q8_0's 32 bytes a row, Q4's 16 nibble bytes or Q5's 16 packed bytes (q5_pack; the upper half
        // of each row's register zero).
        __m256i v[8];
        for (int j = 0; j < 8; j++) {
            if (type == T_Q8_0) {
                v[j] = _mm256_loadu_si256((const __m256i *)(src[j] + 2));
                continue;
            }
            __m128i q = _mm_loadu_si128((const __m128i *)(src[j] + q32_nibbles(type)));
            if (type == T_Q5_0 || type == T_Q5_1) {
                const __m128i low4 = _mm_set1_epi8(0x0F), five = _mm_set1_epi8(0x10);
                __m256i bits = SIMD_NAME(bit_bytes)(src[j] + q32_high(type));
                __m128i lo = _mm_or_si128(_mm_and_si128(q, low4), _mm_and_si128(_mm256_castsi256_si128(bits), five));
                __m128i hi = _mm_or_si128(_mm_and_si128(_mm_srli_epi16(q, 4), low4), _mm_and_si128(_mm256_extracti128_si256(bits, 1), five));
                q = _mm_or_si128(lo, _mm_slli_epi16(_mm_and_si128(hi, _mm_set1_epi8(7)), 5));
                // Values 16 + 4u + k's bits 3–4 (0–3 a byte) to bits 2u, 2u + 1 of byte k: dword u shifted by 2u.
                __m128i top = _mm_and_si128(_mm_srli_epi16(hi, 3), _mm_set1_epi8(3));
                __m128i e = _mm_or_si128(_mm_or_si128(top, _mm_slli_epi32(_mm_srli_si128(top, 4), 2)),
                                         _mm_or_si128(_mm_slli_epi32(_mm_srli_si128(top, 8), 4), _mm_slli_epi32(_mm_srli_si128(top, 12), 6)));
                uint32_t ext = (uint32_t)_mm_cvtsi128_si32(e);
                memcpy(dst + T32_EXT + 4 * j, &ext, 4);
            }
            v[j] = _mm256_zextsi128_si256(q);
        }
        SIMD_NAME(transpose8)(v);
        for (int t = 0; t < (type == T_Q8_0 ? 8 : 4); t++) _mm256_storeu_si256((__m256i *)(dst + 32 * t), v[t]);
        return;
    }
    // (source offset in a stored block, destination offset in the tile block) per 32-byte run.
    int runs = 0, from[8], to[8];
    if (type == T_Q6_K) {
        for (int n = 0; n < 2; n++) {
            for (int h = 0; h < 2; h++, runs++) from[runs] = 64 * n + 32 * h, to[runs] = KT_HALF6 * n + 256 * h;
            from[runs] = 128 + 32 * n, to[runs] = KT_HALF6 * n + KT_QH6, runs++;
        }
    } else {
        const int five = type == T_Q5_K;
        for (int g = 0; g < 4; g++, runs++) from[runs] = 16 + 32 * five + 32 * g, to[runs] = 256 * g;
        if (five) from[runs] = 16, to[runs] = KT_QH5, runs++;
    }
    for (int r = 0; r < runs; r++) {
        __m256i v[8];
        for (int j = 0; j < 8; j++) v[j] = _mm256_loadu_si256((const __m256i *)(src[j] + from[r]));
        SIMD_NAME(transpose8)(v);
        for (int t = 0; t < 8; t++) _mm256_storeu_si256((__m256i *)(dst + to[r] + 32 * t), v[t]);
    }
}

/// Values 32c … 32c + 31 of a K-quant block as unsigned bytes in order (c < 8).
static inline __attribute__((always_inline)) SIMD_TARGET __m256i SIMD_NAME(kvalues)(const int type, const uint8_t *b, const int c) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    if (type == T_Q6_K) {
        // Half n = c / 4 of the block: ql's two 32-byte runs (low nibbles, then high) and qh's 2-bit pairs.
        const int n = c / 4, p = c % 4;
        __m256i ql = _mm256_loadu_si256((const __m256i *)(b + 64 * n + 32 * (p & 1)));
        __m256i qh = _mm256_loadu_si256((const __m256i *)(b + 128 + 32 * n));
        const __m256i two = _mm256_set1_epi8(0x30);
        __m256i low = p < 2 ? _mm256_and_si256(ql, low4) : _mm256_and_si256(_mm256_srli_epi16(ql, 4), low4);
        __m256i high;
        switch (p) {
        case 0: high = _mm256_slli_epi16(qh, 4); break;
        case 1: high = _mm256_slli_epi16(qh, 2); break;
        case 2: high = qh; break;
        default: high = _mm256_srli_epi16(qh, 2); break;
        }
        return _mm256_or_si256(low, _mm256_and_si256(high, two));
    }
    const int five = type == T_Q5_K;
    __m256i raw = _mm256_loadu_si256((const __m256i *)(b + 16 + 32 * five + 32 * (c / 2)));
    __m256i v = c % 2 ? _mm256_and_si256(_mm256_srli_epi16(raw, 4), low4) : _mm256_and_si256(raw, low4);
    if (five) {
        // Value 32c + l's fifth bit is bit c of qh[l].
        __m256i qh = _mm256_loadu_si256((const __m256i *)(b + 16));
        __m256i bit = _mm256_and_si256(_mm256_srli_epi16(qh, c), _mm256_set1_epi8(1));
        v = _mm256_or_si256(v, _mm256_slli_epi16(bit, 4));
    }
    return v;
}

/// A K-quant block's multipliers as kpanel holds them for one row, a 32-bit lane each (the value in
/// both 16-bit halves, or pairs): lo / hi the scales of the 16-value groups 0–7 / 8–15, mn the
/// minimums' multipliers (kpanel.mn); and d, dmin.
static inline __attribute__((always_inline)) SIMD_TARGET void SIMD_NAME(kscale_dwords)(const int type, const uint8_t *b, __m256i *lo,
                                                                                    __m256i *hi, __m256i *mn, float *d, float *dmin) {
    if (type == T_Q6_K) {
        __m128i sc = _mm_loadu_si128((const __m128i *)(b + 192));
        const __m256i low16 = _mm256_set1_epi32(0xFFFF);
        __m256i a = _mm256_cvtepi8_epi32(sc), c = _mm256_cvtepi8_epi32(_mm_srli_si128(sc, 8));
        *lo = _mm256_or_si256(_mm256_and_si256(a, low16), _mm256_slli_epi32(a, 16));
        *hi = _mm256_or_si256(_mm256_and_si256(c, low16), _mm256_slli_epi32(c, 16));
        *mn = _mm256_cvtepi8_epi16(sc);
        *d = SIMD_NAME(half)(b + 208);
        *dmin = 0;
        return;
    }
    // The 6-bit scales (bytes 0–7) and minimums (8–15) of the 8 sub-blocks.
    uint32_t packed[4];
    unpack_k4_scales(b + 4, packed);
    __m128i bytes = _mm_loadu_si128((const __m128i *)packed);
    __m256i s = _mm256_cvtepu8_epi32(bytes);
    s = _mm256_or_si256(s, _mm256_slli_epi32(s, 16));
    // Group g (16 values) is sub-block g / 2.
    *lo = _mm256_permutevar8x32_epi32(s, _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3));
    *hi = _mm256_permutevar8x32_epi32(s, _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7));
    // Pairs of sub-blocks' minimums (2u, 2u + 1) against the activation's pairs of sums of 32.
    *mn = _mm256_zextsi128_si256(_mm_cvtepu8_epi16(_mm_srli_si128(bytes, 8)));
    *d = SIMD_NAME(half)(b);
    *dmin = SIMD_NAME(half)(b + 2);
}

/// Packs weight rows `rows[0..7]` (NULL: a zero row) of nb blocks into kpanel tiles (see there).
static inline __attribute__((always_inline)) SIMD_TARGET void SIMD_NAME(kpack)(const int type, const uint8_t *const rows[8], long nb,
                                                                            kpanel *out) {
    long size = quant_block_bytes(type);
    for (long i = 0; i < nb; i++) {
        kpanel *o = out + i;
        for (int c = 0; c < 8; c++) {
            __m256i r[8];
            for (int k = 0; k < 8; k++) r[k] = rows[k] ? SIMD_NAME(kvalues)(type, rows[k] + i * size, c) : _mm256_setzero_si256();
            SIMD_NAME(transpose8)(r);
            for (int j = 0; j < 8; j++) _mm256_store_si256((__m256i *)o->q[8 * c + j], r[j]);
        }
        __m256i lo[8], hi[8], mn[8];
        for (int k = 0; k < 8; k++) {
            o->d[k] = o->dmin[k] = 0;
            lo[k] = hi[k] = mn[k] = _mm256_setzero_si256();
            if (rows[k]) SIMD_NAME(kscale_dwords)(type, rows[k] + i * size, &lo[k], &hi[k], &mn[k], &o->d[k], &o->dmin[k]);
        }
        SIMD_NAME(transpose8)(lo);
        SIMD_NAME(transpose8)(hi);
        SIMD_NAME(transpose8)(mn);
        for (int g = 0; g < 8; g++) {
            _mm256_store_si256((__m256i *)o->sc[g], lo[g]);
            _mm256_store_si256((__m256i *)o->sc[8 + g], hi[g]);
            _mm256_store_si256((__m256i *)o->mn[g], mn[g]);
        }
    }
}

/// One block's S and M (sumi, ms) of ra pairs onto chain r (see kblock_sums): c = fma(S, d·d_a, c),
/// then for Q4_K/Q5_K c = fnmadd(M, dmin·d_a, c); Q6_K's S is its sum less 32 · ms.
static inline __attribute__((always_inline)) SIMD_TARGET void SIMD_NAME(kchain_step)(const int type, const int ra, const __m256i *sumi,
                                                                                  const __m256i *ms, __m256 dw8, __m256 dm8,
                                                                                  const act256 *const *x, int r,
                                                                                  __m256 acc[KGEMM_RA][8]) {
        for (int a = 0; a < ra; a++) {
            __m256 da = _mm256_broadcast_ss(&x[a]->d), c = acc[a][r];
            if (type == T_Q6_K) {
                c = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(sumi[a], _mm256_slli_epi32(ms[a], 5))), _mm256_mul_ps(dw8, da), c);
            } else {
                c = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi[a]), _mm256_mul_ps(dw8, da), c);
                c = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(ms[a]), _mm256_mul_ps(dm8, da), c);
            }
            acc[a][r] = c;
        }
}

/// The chains of packed tile row k × activation row a (lane k of acc[a][r], chain r) over blocks first
/// ..< last (the tile's from `p`, its block `first`), a < ra (a constant, 1 to KGEMM_RA), the activation
/// rows in natural order `stride` bytes apart. Per block and pair exactly kblock_sums' S and M, onto the same chain, in lane k.
static inline __attribute__((always_inline)) SIMD_TARGET void SIMD_NAME(kmicro)(const int type, const int ra, const kpanel *p,
                                                                             const uint8_t *activation, long stride, long first,
                                                                             long last, __m256 acc[KGEMM_RA][8]) {
    // Dwords (four values) per 16-bit group: as many as keep every lane within 16 bits.
    const int dw = type == T_Q4_K ? 8 : type == T_Q5_K ? 4 : 2;
    for (long i = first; i < last; i++) {
        const kpanel *b = p + (i - first);
        const act256 *x[KGEMM_RA];
        for (int a = 0; a < ra; a++) x[a] = (const act256 *)(activation + a * stride) + i;
        __m256i sumi[KGEMM_RA], ms[KGEMM_RA];
        for (int a = 0; a < ra; a++) sumi[a] = ms[a] = _mm256_setzero_si256();
        for (int h = 0; h < 64 / dw; h++) {
            __m256i s16[KGEMM_RA];
            for (int t = 0; t < dw; t++) {
                __m256i w = _mm256_load_si256((const __m256i *)b->q[h * dw + t]);
                for (int a = 0; a < ra; a++) {
                    int32_t v;
                    memcpy(&v, x[a]->qs + 4 * (h * dw + t), 4);
                    __m256i prod = _mm256_maddubs_epi16(w, _mm256_set1_epi32(v));
                    s16[a] = t ? _mm256_add_epi16(s16[a], prod) : prod;
                }
            }
            __m256i sc = _mm256_load_si256((const __m256i *)b->sc[h * dw / 4]);
            for (int a = 0; a < ra; a++) sumi[a] = MADD_ACC(sumi[a], s16[a], sc);
        }
        // Q6_K: its scales against the sums of 16; Q4_K/Q5_K: the minimums against the sums of 32.
        for (int t = 0; t < (type == T_Q6_K ? 8 : 4); t++) {
            __m256i mn = _mm256_load_si256((const __m256i *)b->mn[t]);
            for (int a = 0; a < ra; a++) {
                int32_t v;
                memcpy(&v, (type == T_Q6_K ? x[a]->bsums : x[a]->bsum32) + 2 * t, 4);
                ms[a] = MADD_ACC(ms[a], mn, _mm256_set1_epi32(v));
            }
        }
        __m256 dw8 = _mm256_load_ps(b->d), dm8 = _mm256_load_ps(b->dmin);
        SIMD_NAME(kchain_step)(type, ra, sumi, ms, dw8, dm8, x, (int)(i % 8), acc);
    }
}

#ifndef KT_UNROLL
// Loops over a tile block's registers, unrolled whole (their shifts and offsets become constants).
#if defined(__clang__)
#define KT_UNROLL _Pragma("unroll")
#else
#define KT_UNROLL _Pragma("GCC unroll 16")
#endif
#endif

/// The tile form's scale shuffles (pshufb on a 128-bit broadcast of 16 scale bytes): lane j (rows 0–3
/// in the low 128 bits, 4–7 in the high) gets byte j in both 16-bit halves, unsigned (dup) or in the
/// high byte for an arithmetic shift (sdup); "+ 8" picks bytes 8–15 (the 0x80 entries stay zeroing);
/// pair / spair: bytes j and j + 8, unsigned / signed. Constants: built in a loop they became byte
/// inserts at -O2.
typedef struct {
    __m256i dup, sdup, pair, spair;
} SIMD_NAME(ktshuffles);

static inline __attribute__((always_inline)) SIMD_TARGET SIMD_NAME(ktshuffles) SIMD_NAME(ktshuffles_make)(void) {
    SIMD_NAME(ktshuffles) m;
    m.dup = _mm256_setr_epi8(0, -128, 0, -128, 1, -128, 1, -128, 2, -128, 2, -128, 3, -128, 3, -128,
                             4, -128, 4, -128, 5, -128, 5, -128, 6, -128, 6, -128, 7, -128, 7, -128);
    m.sdup = _mm256_setr_epi8(-128, 0, -128, 0, -128, 1, -128, 1, -128, 2, -128, 2, -128, 3, -128, 3,
                              -128, 4, -128, 4, -128, 5, -128, 5, -128, 6, -128, 6, -128, 7, -128, 7);
    m.pair = _mm256_setr_epi8(0, -128, 8, -128, 1, -128, 9, -128, 2, -128, 10, -128, 3, -128, 11, -128,
                                          4, -128, 12, -128, 5, -128, 13, -128, 6, -128, 14, -128, 7, -128, 15, -128);
    m.spair = _mm256_setr_epi8(-128, 0, -128, 8, -128, 1, -128, 9, -128, 2, -128, 10, -128, 3, -128, 11,
                                           -128, 4, -128, 12, -128, 5, -128, 13, -128, 6, -128, 14, -128, 7, -128, 15);
    return m;
}

/// kmicro's products on tile-form blocks (quant_tile_rows; the tile's blocks first ..< last from `p`,
/// its block `first`): the same exact S and M per pair onto the same chains, so the same bits. The
/// values are unpacked here (nibbles masked, high bits moved in), the byte scales spread into both
/// 16-bit halves of their row's lane by one shuffle (pshufb from a 128-bit broadcast; Q6_K's signed
/// ones then shifted down arithmetically). ra = 1 is the decode step.
static inline __attribute__((always_inline)) SIMD_TARGET void SIMD_NAME(ktmicro)(const int type, const int ra, const uint8_t *p,
                                                                              const uint8_t *activation, long stride, long first,
                                                                              long last, __m256 acc[KGEMM_RA][8]) {
    const long tb = KT_BYTES(type);
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const SIMD_NAME(ktshuffles) m = SIMD_NAME(ktshuffles_make)();
    const __m256i dup = m.dup, sdup = m.sdup, pair = m.pair, spair = m.spair;
    const __m256i eight = _mm256_set1_epi8(8);
    for (long i = first; i < last; i++) {
        const uint8_t *b = p + (i - first) * tb;
        const act256 *x[KGEMM_RA];
        for (int a = 0; a < ra; a++) x[a] = (const act256 *)(activation + a * stride) + i;
        __m256i sumi[KGEMM_RA], ms[KGEMM_RA];
        for (int a = 0; a < ra; a++) sumi[a] = ms[a] = _mm256_setzero_si256();
        if (type == T_Q6_K) {
            const __m256i two = _mm256_set1_epi8(0x30);
            KT_UNROLL
            for (int n = 0; n < 2; n++) {
                const uint8_t *h = b + KT_HALF6 * n;
                // Dwords t, t + 8, t + 16, t + 24 of the half (families f = 0 … 3) come from ql[t],
                // ql[t + 8] and qh[t]; family f's dwords 2k, 2k + 1 share scale group 8n + 2f + k / 2
                // and one 16-bit sum (2 · 2 · 63 · 128 fits).
                KT_UNROLL
                for (int k = 0; k < 4; k++) {
                    __m256i s16[4][KGEMM_RA];
                    KT_UNROLL
                    for (int e = 0; e < 2; e++) {
                        const int t = 2 * k + e;
                        __m256i qa = _mm256_load_si256((const __m256i *)(h + 32 * t));
                        __m256i qb = _mm256_load_si256((const __m256i *)(h + 32 * (t + 8)));
                        __m256i qh = _mm256_load_si256((const __m256i *)(h + KT_QH6 + 32 * t));
                        __m256i w[4];
                        w[0] = _mm256_or_si256(_mm256_and_si256(qa, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), two));
                        w[1] = _mm256_or_si256(_mm256_and_si256(qb, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), two));
                        w[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qa, 4), low4), _mm256_and_si256(qh, two));
                        w[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qb, 4), low4), _mm256_and_si256(_mm256_srli_epi16(qh, 2), two));
                        KT_UNROLL
                        for (int f = 0; f < 4; f++)
                            for (int a = 0; a < ra; a++) {
                                int32_t v;
                                memcpy(&v, x[a]->qs + 128 * n + 4 * (8 * f + t), 4);
                                __m256i prod = _mm256_maddubs_epi16(w[f], _mm256_set1_epi32(v));
                                s16[f][a] = e ? _mm256_add_epi16(s16[f][a], prod) : prod;
                            }
                    }
                    KT_UNROLL
                    for (int f = 0; f < 4; f++) {
                        __m256i scv = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(b + KT_SC(type) + 8 * (8 * n + 2 * f))));
                        __m256i sc = _mm256_srai_epi16(_mm256_shuffle_epi8(scv, k < 2 ? sdup : _mm256_add_epi8(sdup, eight)), 8);
                        for (int a = 0; a < ra; a++) sumi[a] = MADD_ACC(sumi[a], s16[f][a], sc);
                    }
                }
            }
            KT_UNROLL
            for (int t = 0; t < 8; t++) {
                __m256i scv = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(b + KT_SC(type) + 16 * t)));
                __m256i mn = _mm256_srai_epi16(_mm256_shuffle_epi8(scv, spair), 8);
                for (int a = 0; a < ra; a++) {
                    int32_t v;
                    memcpy(&v, x[a]->bsums + 2 * t, 4);
                    ms[a] = MADD_ACC(ms[a], mn, _mm256_set1_epi32(v));
                }
            }
        } else {
            const int five = type == T_Q5_K, dw = five ? 4 : 8;
            KT_UNROLL
            for (int g = 0; g < 4; g++) {
                __m256i scv = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(b + KT_SC(type) + 16 * g)));
                KT_UNROLL
                for (int hf = 0; hf < 2; hf++) {
                    // Sub-block 2g + hf: the low (hf = 0) or high nibbles of the group's registers.
                    __m256i sc = _mm256_shuffle_epi8(scv, hf ? _mm256_add_epi8(dup, eight) : dup);
                    __m256i s16[KGEMM_RA];
                    for (int t = 0; t < 8; t++) {
                        __m256i raw = _mm256_load_si256((const __m256i *)(b + 256 * g + 32 * t));
                        __m256i w = hf ? _mm256_and_si256(_mm256_srli_epi16(raw, 4), low4) : _mm256_and_si256(raw, low4);
                        if (five) {
                            // Bit 2g + hf of each high-bit byte to bit 4 (16-bit shifts: the bit stays in its byte).
                            const int c = 2 * g + hf;
                            __m256i qh = _mm256_load_si256((const __m256i *)(b + KT_QH5 + 32 * t));
                            __m256i moved = c <= 4 ? _mm256_slli_epi16(qh, 4 - c) : _mm256_srli_epi16(qh, c - 4);
                            w = _mm256_or_si256(w, _mm256_and_si256(moved, _mm256_set1_epi8(0x10)));
                        }
                        for (int a = 0; a < ra; a++) {
                            int32_t v;
                            memcpy(&v, x[a]->qs + 64 * g + 32 * hf + 4 * t, 4);
                            __m256i prod = _mm256_maddubs_epi16(w, _mm256_set1_epi32(v));
                            s16[a] = t % dw ? _mm256_add_epi16(s16[a], prod) : prod;
                            if (t % dw == dw - 1) sumi[a] = MADD_ACC(sumi[a], s16[a], sc);
                        }
                    }
                }
            }
            KT_UNROLL
            for (int u = 0; u < 4; u++) {
                __m256i mn = _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(b + KT_MN(type) + 16 * u))), pair);
                for (int a = 0; a < ra; a++) {
                    int32_t v;
                    memcpy(&v, x[a]->bsum32 + 2 * u, 4);
                    ms[a] = MADD_ACC(ms[a], mn, _mm256_set1_epi32(v));
                }
            }
        }
        __m256 dw8 = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(b + KT_D(type))));
        __m256 dm8 = type == T_Q6_K ? _mm256_setzero_ps() : _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(b + KT_D(type) + 16)));
        SIMD_NAME(kchain_step)(type, ra, sumi, ms, dw8, dm8, x, (int)(i % 8), acc);
    }
    (void)spair;
}

/// A pair's result from its chains (see kblock_sums), lane by lane.
static inline __attribute__((always_inline)) SIMD_TARGET __m256 SIMD_NAME(kchains)(const __m256 c[8]) {
    return _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c[0], c[4]), _mm256_add_ps(c[2], c[6])),
                         _mm256_add_ps(_mm256_add_ps(c[1], c[5]), _mm256_add_ps(c[3], c[7])));
}

/// int32 lanes of a, b, c, d (8 each) → 32 signed bytes in order, saturating.
static inline SIMD_TARGET __m256i SIMD_NAME(pack_bytes)(__m256i a, __m256i b, __m256i c, __m256i d) {
    __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
    return _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static inline SIMD_TARGET __m256 SIMD_NAME(abs_ps)(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

static inline SIMD_TARGET float SIMD_NAME(hmax)(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

static inline SIMD_TARGET int SIMD_NAME(hsum_epi32)(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

/// prepare_activation's numbers (the portable quantizer's, value for value: the same scales, and
/// rounding to nearest even), eight lanes at a time.
/// K-quants: the values in the decode kernel's groups' order (kblock_sums), or with `natural` in order
/// (the many-row kernel's broadcasts).
static SIMD_TARGET void SIMD_NAME(prepare_activation)(int type, const float *x, long cols, void *scratch, int natural) {
    if (quant_block_values(type) == QK) {
        act32 *a = scratch;
        for (long b = 0; b < cols / QK; b++, x += QK) {
            __m256 v[4];
            __m256 m = _mm256_setzero_ps();
            for (int j = 0; j < 4; j++) {
                v[j] = _mm256_loadu_ps(x + 8 * j);
                m = _mm256_max_ps(m, SIMD_NAME(abs_ps)(v[j]));
            }
            float d = SIMD_NAME(hmax)(m) / 127, id = d ? 1 / d : 0;
            __m256i q[4], sum = _mm256_setzero_si256();
            for (int j = 0; j < 4; j++) {
                q[j] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[j], _mm256_set1_ps(id)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
                sum = _mm256_add_epi32(sum, q[j]);
            }
            _mm256_storeu_si256((__m256i *)a[b].qs, SIMD_NAME(pack_bytes)(q[0], q[1], q[2], q[3]));
            a[b].d = d;
            a[b].sum = SIMD_NAME(hsum_epi32)(sum);
            a[b].dsum = d * (float)a[b].sum;
        }
        return;
    }
    act256 *a = scratch;
    for (long b = 0; b < cols / QKK; b++, x += QKK) {
        __m256 m = _mm256_setzero_ps();
        for (int j = 0; j < QKK; j += 8) m = _mm256_max_ps(m, SIMD_NAME(abs_ps)(_mm256_loadu_ps(x + j)));
        float amax = SIMD_NAME(hmax)(m);
        if (!amax) {
            memset(&a[b], 0, sizeof a[b]);
            continue;
        }
        // The signed value of the first element of largest magnitude, as the portable loop finds it.
        float max = 0;
        for (int j = 0; j < QKK; j += 8) {
            int hits = _mm256_movemask_ps(_mm256_cmp_ps(SIMD_NAME(abs_ps)(_mm256_loadu_ps(x + j)), _mm256_set1_ps(amax), _CMP_EQ_OQ));
            if (hits) {
                max = x[j + __builtin_ctz((unsigned)hits)];
                break;
            }
        }
        float iscale = -127.f / max;
        for (int j = 0; j < QKK; j += 64) {
            __m256i n[2];
            for (int h = 0; h < 2; h++) {
                __m256i q[4];
                for (int k = 0; k < 4; k++)
                    q[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_set1_ps(iscale), _mm256_loadu_ps(x + j + 32 * h + 8 * k)),
                                                              _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
                a[b].bsums[j / 16 + 2 * h] = (int16_t)SIMD_NAME(hsum_epi32)(_mm256_add_epi32(q[0], q[1]));
                a[b].bsums[j / 16 + 2 * h + 1] = (int16_t)SIMD_NAME(hsum_epi32)(_mm256_add_epi32(q[2], q[3]));
                // Packing saturates at 127, the portable loop's clamp.
                n[h] = SIMD_NAME(pack_bytes)(q[0], q[1], q[2], q[3]);
            }
            if (natural) {
                _mm256_storeu_si256((__m256i *)(a[b].qs + j), n[0]);
                _mm256_storeu_si256((__m256i *)(a[b].qs + j + 32), n[1]);
                continue;
            }
            // In the decode kernel's order (see kblock_sums): values 0–7, 40–47, 16–23, 56–63, then
            // 8–15, 32–39, 24–31, 48–55 of the 64.
            _mm256_storeu_si256((__m256i *)(a[b].qs + j), _mm256_blend_epi32(n[0], n[1], 0xCC));
            _mm256_storeu_si256((__m256i *)(a[b].qs + j + 32), _mm256_shuffle_epi32(_mm256_blend_epi32(n[1], n[0], 0xCC), 0x4E));
        }
        act256_sums32(&a[b]);
        a[b].d = 1 / iscale;
    }
}

/// Eight vectors of eight int32 lanes → one whose lane j is the sum of v[j]'s lanes (exact): two
/// rounds of unpack-and-add and one across the halves (phaddd is four µops on Zen 3).
static inline __attribute__((always_inline)) SIMD_TARGET __m256i SIMD_NAME(reduce8)(const __m256i v[8]) {
    __m256i a[4];
    for (int p = 0; p < 4; p++)
        a[p] = _mm256_add_epi32(_mm256_unpacklo_epi32(v[2 * p], v[2 * p + 1]), _mm256_unpackhi_epi32(v[2 * p], v[2 * p + 1]));
    __m256i b0 = _mm256_add_epi32(_mm256_unpacklo_epi64(a[0], a[1]), _mm256_unpackhi_epi64(a[0], a[1]));
    __m256i b1 = _mm256_add_epi32(_mm256_unpacklo_epi64(a[2], a[3]), _mm256_unpackhi_epi64(a[2], a[3]));
    return _mm256_add_epi32(_mm256_permute2x128_si256(b0, b1, 0x20), _mm256_permute2x128_si256(b0, b1, 0x31));
}

/// The halves at p + j · stride (j < 4) and q + j · stride (j < 4) as eight floats (F16C). With
/// `inserts`, word inserts (an instruction a row: Q8_0's eight-row pass ran ~10 % faster than with
/// the scalar gather, one thread in L2, CPU time); else gathered in two 64-bit registers by scalar
/// shifts and ors, which the _1 types keep (their two sets of inserts a block measured no faster).
static inline __attribute__((always_inline)) SIMD_TARGET __m256 SIMD_NAME(halves8)(const uint8_t *p, const uint8_t *q, long stride,
                                                                                   const int inserts) {
    uint16_t h[8];
    for (int j = 0; j < 4; j++) {
        memcpy(h + j, p + j * stride, 2);
        memcpy(h + 4 + j, q + j * stride, 2);
    }
    if (!inserts) {
        uint64_t lo = 0, hi = 0;
        for (int j = 0; j < 4; j++) {
            lo |= (uint64_t)h[j] << (16 * j);
            hi |= (uint64_t)h[j + 4] << (16 * j);
        }
        return _mm256_cvtph_ps(_mm_set_epi64x((long long)hi, (long long)lo));
    }
    __m128i v = _mm_cvtsi32_si128(h[0]);
    v = _mm_insert_epi16(v, h[1], 1);
    v = _mm_insert_epi16(v, h[2], 2);
    v = _mm_insert_epi16(v, h[3], 3);
    v = _mm_insert_epi16(v, h[4], 4);
    v = _mm_insert_epi16(v, h[5], 5);
    v = _mm_insert_epi16(v, h[6], 6);
    v = _mm_insert_epi16(v, h[7], 7);
    return _mm256_cvtph_ps(v);
}

/// One weight row (nb blocks of `type`) against one activation row: per block the exact integer
/// dot product (dot32, less the _0 types' offset times the activation block's sum), then
/// acc += that · (d_w · d_a), the _1 types' extra += m · d_a·Σq, each a multiply then an add (no
/// fma: the portable product's steps); acc + extra. The lanes of the eight-row pass (matvec_typed)
/// and of micro32 run exactly this, a pair per lane.
static inline __attribute__((always_inline)) SIMD_TARGET float SIMD_NAME(row32)(const int type, const uint8_t *row, const act32 *act,
                                                                               long nb) {
    const long size = quant_block_bytes(type);
    float acc = 0, extra = 0;
    for (long i = 0; i < nb; i++, row += size) {
        int s = SIMD_NAME(hsum_epi32)(SIMD_NAME(dot32)(type, SIMD_NAME(bytes32)(type, row), _mm256_loadu_si256((const __m256i *)act[i].qs)));
        s -= OFFSET32(type) * act[i].sum;
        float product = (float)s * (SIMD_NAME(half)(row) * act[i].d);
        acc = acc + product;
        if (HAS_MIN(type)) {
            float minimum = SIMD_NAME(half)(row + 2) * act[i].dsum;
            extra = extra + minimum;
        }
    }
    return acc + extra;
}

#ifndef KMICRO_BY_RA
/// A K-quant micro-kernel called with `ra` (1 to KGEMM_RA ≤ 6, given at run time) as a constant (cases
/// past KGEMM_RA are never taken; they are capped so that they compile).
#define KMICRO_BY_RA_CASE(kernel, k)                                                                                   \
    case k: SIMD_NAME(kernel)(type, (k) <= KGEMM_RA ? (k) : KGEMM_RA, p, activation, stride, first, last, acc); break;
#define KMICRO_BY_RA(kernel)                                                                                           \
    switch (ra) {                                                                                                      \
        KMICRO_BY_RA_CASE(kernel, 1) KMICRO_BY_RA_CASE(kernel, 2) KMICRO_BY_RA_CASE(kernel, 3)                         \
        KMICRO_BY_RA_CASE(kernel, 4) KMICRO_BY_RA_CASE(kernel, 5) KMICRO_BY_RA_CASE(kernel, 6)                         \
    default: break;                                                                                                    \
    }
#endif

/// ktmicro for ra (1 to KGEMM_RA) given at run time, each case inlined with constants.
static inline __attribute__((always_inline)) SIMD_TARGET void SIMD_NAME(ktmicro_any)(const int type, long ra, const uint8_t *p,
                                                                                  const uint8_t *activation, long stride, long first,
                                                                                  long last, __m256 acc[KGEMM_RA][8]) {
    KMICRO_BY_RA(ktmicro)
}

/// Stores lanes of `v` for rows r0 + q (q < 8) that fall in begin ..< end into y (+=).
static inline __attribute__((always_inline)) SIMD_TARGET void SIMD_NAME(kt_store)(__m256 v, float *y, long r0, long begin, long end,
                                                                               int accumulate) {
    if (r0 >= begin && r0 + 8 <= end) {
        if (accumulate) v = _mm256_add_ps(_mm256_loadu_ps(y + r0), v);
        _mm256_storeu_ps(y + r0, v);
        return;
    }
    _Alignas(32) float lanes[8];
    _mm256_store_ps(lanes, v);
    for (long q = 0; q < 8; q++)
        if (r0 + q >= begin && r0 + q < end) y[r0 + q] = accumulate ? y[r0 + q] + lanes[q] : lanes[q];
}

/// Dword t (values 4t … 4t + 3, t < 8) of a 32-value tile-form block's 8 rows (lane j: row j), as
/// bytes32 gives them: Q8_0's signed bytes, the other types' unsigned values (Q4: a nibble; Q5: bits
/// 0–4 of the byte, or bits 5–7 and two bits of ext moved to 3–4 — 16-bit shifts by at most 5, the
/// bits kept stay in their byte).
static inline __attribute__((always_inline)) SIMD_TARGET __m256i SIMD_NAME(t32_dword)(const int type, const uint8_t *b, const int t) {
    if (type == T_Q8_0) return _mm256_loadu_si256((const __m256i *)(b + 32 * t));
    __m256i raw = _mm256_loadu_si256((const __m256i *)(b + 32 * (t % 4)));
    if (type == T_Q5_0 || type == T_Q5_1) {
        if (t < 4) return _mm256_and_si256(raw, _mm256_set1_epi8(0x1F));
        __m256i ext = _mm256_loadu_si256((const __m256i *)(b + T32_EXT));
        __m256i moved = t == 4 ? _mm256_slli_epi16(ext, 3) : t == 5 ? _mm256_slli_epi16(ext, 1) : t == 6 ? _mm256_srli_epi16(ext, 1)
                                                                                                         : _mm256_srli_epi16(ext, 3);
        return _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw, 5), _mm256_set1_epi8(0x07)),
                               _mm256_and_si256(moved, _mm256_set1_epi8(0x18)));
    }
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    return t < 4 ? _mm256_and_si256(raw, low4) : _mm256_and_si256(_mm256_srli_epi16(raw, 4), low4);
}

/// The exact integer products of a 32-value tile-form block's 8 rows and one activation block, lane
/// j row j's, the _0 types' offset taken off: row32's integers. Q8_0 moves its signs onto the
/// activation; Q4/Q5's unsigned byte products add in 16 bits (8 or 4 at a time, as block_dots) before
/// one widening.
static inline __attribute__((always_inline)) SIMD_TARGET __m256i SIMD_NAME(t32_sums)(const int type, const uint8_t *b, const act32 *a) {
    __m256i s = _mm256_setzero_si256(), p = s;
    const int per = type == T_Q4_0 || type == T_Q4_1 ? 8 : 4;
    KT_UNROLL
    for (int t = 0; t < 8; t++) {
        int32_t four;
        memcpy(&four, a->qs + 4 * t, 4);
        __m256i w = SIMD_NAME(t32_dword)(type, b, t), y = _mm256_set1_epi32(four);
        if (type == T_Q8_0) {
            s = DOT_ACC(s, _mm256_sign_epi8(w, w), _mm256_sign_epi8(y, w));
            continue;
        }
#if SIMD_VNNI
        s = DOT_ACC(s, w, y);
#else
        __m256i prod = _mm256_maddubs_epi16(w, y);
        p = t % per ? _mm256_add_epi16(p, prod) : prod;
        if (t % per == per - 1) s = _mm256_add_epi32(s, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
#endif
    }
    (void)p;
    (void)per;
    if (OFFSET32(type)) s = _mm256_sub_epi32(s, _mm256_set1_epi32(OFFSET32(type) * a->sum));
    return s;
}

/// Rows begin ..< end of a single-row product on 32-value tile-form weights (`w`, nb blocks a row)
/// against `act` into y: each tile that holds one of them, 8 rows at once in the lanes, per block
/// row32's steps (acc += cvt(s) · (d_w · d_a), the _1 types' m · d_a·Σq on a second chain), so the
/// same bits; the stream requested KT_AHEAD bytes ahead. Rows of a tile outside the range are
/// computed and not stored.
static inline __attribute__((always_inline)) SIMD_TARGET void SIMD_NAME(t32_rows)(const int type, const uint8_t *w, long nb,
                                                                               const act32 *act, long begin, long end, float *y,
                                                                               int accumulate) {
    const long tb = 8 * quant_block_bytes(type), tile = nb * tb;
    const long t0 = begin / 8, t1 = (end + 7) / 8;
    const uint8_t *stop = w + t1 * tile, *next = (const uint8_t *)((uintptr_t)(w + t0 * tile) & ~(uintptr_t)63);
    for (long k = t0; k < t1; k++) {
        __m256 acc = _mm256_setzero_ps(), extra = _mm256_setzero_ps();
        const uint8_t *b = w + k * tile;
        for (long i = 0; i < nb; i++, b += tb) {
            const uint8_t *want = b + tb + KT_AHEAD;
            if (want > stop) want = stop;
            for (; next < want; next += 64) _mm_prefetch((const char *)next, _MM_HINT_T0);
            __m256i s = SIMD_NAME(t32_sums)(type, b, act + i);
            __m256 d = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + T32_D(type)))), _mm256_set1_ps(act[i].d));
            acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_cvtepi32_ps(s), d));
            if (HAS_MIN(type))
                extra = _mm256_add_ps(extra, _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + T32_D(type) + 16))),
                                                           _mm256_set1_ps(act[i].dsum)));
        }
        SIMD_NAME(kt_store)(_mm256_add_ps(acc, extra), y, 8 * k, begin, end, accumulate);
    }
}

/// Rows begin ..< end of a single-row product on tile-form weights: each tile that holds one of them
/// against the activation (in natural order), 8 rows at once, the tiles' bytes requested KT_AHEAD
/// bytes before they are read (a claim's tiles are contiguous). Rows of a tile outside the range
/// (a claim cut at another part's boundary) are computed and not stored.
static inline __attribute__((always_inline)) SIMD_TARGET void SIMD_NAME(ktile_matvec)(const int type, const matvec_task *t, long begin,
                                                                                   long end) {
    const long nb = t->cols / QKK, tb = KT_BYTES(type), tile = nb * tb;
    const long t0 = begin / 8, t1 = (end + 7) / 8;
    const uint8_t *stop = t->w + t1 * tile, *next = (const uint8_t *)((uintptr_t)(t->w + t0 * tile) & ~(uintptr_t)63);
    for (long k = t0; k < t1; k++) {
        __m256 acc[KGEMM_RA][8];
        for (int r = 0; r < 8; r++) acc[0][r] = _mm256_setzero_ps();
        const uint8_t *w = t->w + k * tile;
        for (long i = 0; i < nb; i++) {
            const uint8_t *want = w + (i + 1) * tb + KT_AHEAD;
            if (want > stop) want = stop;
            for (; next < want; next += 64) _mm_prefetch((const char *)next, _MM_HINT_T0);
            SIMD_NAME(ktmicro)(type, 1, w + i * tb, t->activation, 0, i, i + 1, acc);
        }
        SIMD_NAME(kt_store)(SIMD_NAME(kchains)(acc[0]), t->y, 8 * k, begin, end, t->accumulate);
    }
}

/// Rows begin ..< end of a single-row product (matvec_task), inlined for one type. 32-value types in
/// tile form: t32_rows; stored: eight weight rows per pass, the activation block loaded once for the
/// eight, each row's partial sums reduced to its integer (reduce8) and the eight rows' chains run in
/// the lanes of one vector (one cvt, scale multiply, multiply and add per block for the eight); the
/// last rows one at a time (row32, the same arithmetic). K-quants: ktile_matvec on the tile form,
/// else a row at a time.
static inline __attribute__((always_inline)) SIMD_TARGET void SIMD_NAME(matvec_typed)(const int type, const matvec_task *t,
                                                                                  long begin, long end) {
    if (quant_block_values(type) == QK && t->tiled) {
        SIMD_NAME(t32_rows)(type, t->w, t->cols / QK, (const act32 *)t->activation, begin, end, t->y, t->accumulate);
        return;
    }
    if (quant_block_values(type) == QK) {
        const long nb = t->cols / QK, size = quant_block_bytes(type);
        const act32 *act = (const act32 *)t->activation;
        const long rb = t->row_bytes;
        long r = begin;
        for (; r + 8 <= end; r += 8) {
            // Rows r ..< r + 4 at p + j · rb, the next four at q + j · rb: two pointers and the
            // stride, not eight pointers (which spilled: a dozen reloads a block).
            const uint8_t *p = t->w + r * rb, *q = p + 4 * rb;
            __m256 acc = _mm256_setzero_ps(), extra = _mm256_setzero_ps();
            // The next eight rows (contiguous) are fetched at the pace these are read: over short
            // rows the eight interleaved streams alone ran at half the rate of one row at a time.
            const uint8_t *ahead = p + 8 * rb;
            for (long i = 0; i < nb; i++, p += size, q += size) {
                const act32 *a = act + i;
#if MATVEC32_PREFETCH
                for (long o = i * 8 * size; o < (i + 1) * 8 * size; o += 64) _mm_prefetch((const char *)(ahead + o), _MM_HINT_T0);
#endif
                __m256i y = _mm256_loadu_si256((const __m256i *)a->qs), v[8];
                for (int j = 0; j < 4; j++) {
                    v[j] = SIMD_NAME(dot32)(type, SIMD_NAME(bytes32)(type, p + j * rb), y);
                    v[4 + j] = SIMD_NAME(dot32)(type, SIMD_NAME(bytes32)(type, q + j * rb), y);
                }
                __m256i s = SIMD_NAME(reduce8)(v);
                if (OFFSET32(type)) s = _mm256_sub_epi32(s, _mm256_set1_epi32(OFFSET32(type) * a->sum));
                __m256 d = _mm256_mul_ps(SIMD_NAME(halves8)(p, q, rb, !HAS_MIN(type)), _mm256_set1_ps(a->d));
                acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_cvtepi32_ps(s), d));
                if (HAS_MIN(type)) extra = _mm256_add_ps(extra, _mm256_mul_ps(SIMD_NAME(halves8)(p + 2, q + 2, rb, !HAS_MIN(type)), _mm256_set1_ps(a->dsum)));
            }
            __m256 v = _mm256_add_ps(acc, extra);
            if (t->accumulate) v = _mm256_add_ps(_mm256_loadu_ps(t->y + r), v);
            _mm256_storeu_ps(t->y + r, v);
        }
        for (; r < end; r++) {
            float v = SIMD_NAME(row32)(type, t->w + r * t->row_bytes, act, nb);
            t->y[r] = t->accumulate ? t->y[r] + v : v;
        }
        return;
    }
    if (t->tiled) {
        SIMD_NAME(ktile_matvec)(type, t, begin, end);
        return;
    }
    const long nb = t->cols / QKK;
    const act256 *act = (const act256 *)t->activation;
    for (long r = begin; r < end; r++) {
        float v = SIMD_NAME(kdot_row)(type, t->w + r * t->row_bytes, act, nb);
        t->y[r] = t->accumulate ? t->y[r] + v : v;
    }
}

/// kmicro for ra (1 to KGEMM_RA) given at run time, each case inlined with constants.
static inline __attribute__((always_inline)) SIMD_TARGET void SIMD_NAME(kmicro_any)(const int type, long ra, const kpanel *p,
                                                                                 const uint8_t *activation, long stride, long first,
                                                                                 long last, __m256 acc[KGEMM_RA][8]) {
    KMICRO_BY_RA(kmicro)
}

/// Every group of KGEMM_RA activation rows over a panel of `count` tiles (tile j: weight rows row0 +
/// 8j …), KGEMM_BLOCKS blocks per pass (the group's slice stays in L1 while the tiles come from L2;
/// each pair's chains carried from one slice to the next): kmicro on `packed` (kpanel blocks, a tile's
/// nb in a row), or without it ktmicro on `tiles` (tile form). Outputs of rows begin ..< end are stored.
static inline __attribute__((always_inline)) SIMD_TARGET void SIMD_NAME(kpanel_pass)(const int type, const gemm_task *t,
                                                                                  const kpanel *packed, const uint8_t *tiles,
                                                                                  long count, long row0, long begin, long end) {
    const long nb = t->cols / QKK, tb = KT_BYTES(type);
    __m256 acc[KGEMM_MAX_TILES][KGEMM_RA][8];
    for (long i = 0; i < t->m; i += KGEMM_RA) {
        long ra = t->m - i < KGEMM_RA ? t->m - i : KGEMM_RA;
        const uint8_t *a = t->activation + i * t->act_stride;
        for (long j = 0; j < count; j++)
            for (int k = 0; k < KGEMM_RA; k++)
                for (int r = 0; r < 8; r++) acc[j][k][r] = _mm256_setzero_ps();
        for (long first = 0; first < nb; first += KGEMM_BLOCKS) {
            long last = first + KGEMM_BLOCKS < nb ? first + KGEMM_BLOCKS : nb;
            for (long j = 0; j < count; j++) {
                if (packed) SIMD_NAME(kmicro_any)(type, ra, packed + j * nb + first, a, t->act_stride, first, last, acc[j]);
                else SIMD_NAME(ktmicro_any)(type, ra, tiles + (j * nb + first) * tb, a, t->act_stride, first, last, acc[j]);
            }
        }
        for (long j = 0; j < count; j++)
            for (long k = 0; k < ra; k++)
                SIMD_NAME(kt_store)(SIMD_NAME(kchains)(acc[j][k]), t->y + (i + k) * t->y_stride, row0 + 8 * j, begin, end, t->accumulate);
    }
}

/// K-quant weight rows begin ..< end of a many-row product: panels of up to KGEMM_MAX_TILES tiles of
/// 8 rows packed once (kpack, into the thread's kquant_tile; the last tile padded with zero rows),
/// then every group of KGEMM_RA activation rows passes over the panel's tiles KGEMM_BLOCKS blocks at
/// a time (the group's slice stays in L1 while the tiles come from L2; each pair's chains are carried
/// from one slice to the next, so they are unchanged). Without panel memory, a tile is packed one
/// block at a time on the stack, again for each group of activation rows (the same numbers).
static inline __attribute__((always_inline)) SIMD_TARGET void SIMD_NAME(kgemm)(const int type, const gemm_task *t, long begin,
                                                                            long end) {
    const long nb = t->cols / QKK, size = quant_block_bytes(type), tiles = kgemm_panel_tiles(nb);
    kpanel *panel = kquant_tile(tiles * nb * (long)sizeof(kpanel));
    __m256 acc[KGEMM_MAX_TILES][KGEMM_RA][8];
    if (!panel) {
        // One tile and one block at a time on the stack, packed again for each group of rows.
        _Alignas(64) kpanel one;
        for (long r0 = begin; r0 < end; r0 += 8) {
            long rows = end - r0 < 8 ? end - r0 : 8;
            for (long i = 0; i < t->m; i += KGEMM_RA) {
                long ra = t->m - i < KGEMM_RA ? t->m - i : KGEMM_RA;
                for (int k = 0; k < KGEMM_RA; k++)
                    for (int r = 0; r < 8; r++) acc[0][k][r] = _mm256_setzero_ps();
                for (long b = 0; b < nb; b++) {
                    const uint8_t *block[8];
                    for (int k = 0; k < 8; k++) block[k] = k < rows ? t->w + (r0 + k) * t->row_bytes + b * size : NULL;
                    SIMD_NAME(kpack)(type, block, 1, &one);
                    SIMD_NAME(kmicro_any)(type, ra, &one, t->activation + i * t->act_stride, t->act_stride, b, b + 1, acc[0]);
                }
                for (long k = 0; k < ra; k++) {
                    _Alignas(32) float v[8];
                    _mm256_store_ps(v, SIMD_NAME(kchains)(acc[0][k]));
                    float *y = t->y + (i + k) * t->y_stride + r0;
                    for (long q = 0; q < rows; q++) y[q] = t->accumulate ? y[q] + v[q] : v[q];
                }
            }
        }
        return;
    }
    for (long r0 = begin; r0 < end; r0 += 8 * tiles) {
        long r1 = r0 + 8 * tiles < end ? r0 + 8 * tiles : end, count = (r1 - r0 + 7) / 8;
        for (long j = 0; j < count; j++) {
            const uint8_t *rows[8];
            for (int k = 0; k < 8; k++) rows[k] = r0 + 8 * j + k < r1 ? t->w + (r0 + 8 * j + k) * t->row_bytes : NULL;
            SIMD_NAME(kpack)(type, rows, nb, panel + j * nb);
        }
        SIMD_NAME(kpanel_pass)(type, t, panel, NULL, count, r0, r0, r1);
    }
}

/// Dword d (values 4d … 4d + 3, d < 64) of a tile-form block's 8 rows as unsigned bytes, lane j row j.
static inline __attribute__((always_inline)) SIMD_TARGET __m256i SIMD_NAME(ktvalues)(const int type, const uint8_t *b, const int d) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    if (type == T_Q6_K) {
        const int n = d / 32, f = d % 32 / 8, t = d % 8;
        const uint8_t *h = b + KT_HALF6 * n;
        __m256i ql = _mm256_load_si256((const __m256i *)(h + 32 * (t + 8 * (f & 1))));
        __m256i qh = _mm256_load_si256((const __m256i *)(h + KT_QH6 + 32 * t));
        __m256i low = f < 2 ? _mm256_and_si256(ql, low4) : _mm256_and_si256(_mm256_srli_epi16(ql, 4), low4);
        __m256i high = f == 0 ? _mm256_slli_epi16(qh, 4) : f == 1 ? _mm256_slli_epi16(qh, 2) : f == 2 ? qh : _mm256_srli_epi16(qh, 2);
        return _mm256_or_si256(low, _mm256_and_si256(high, _mm256_set1_epi8(0x30)));
    }
    // Group g = d / 16: its low nibbles are dwords 16g … 16g + 7 (sub-block 2g), its high 16g + 8 ….
    const int g = d / 16, hf = d % 16 / 8, t = d % 8;
    __m256i raw = _mm256_load_si256((const __m256i *)(b + 256 * g + 32 * t));
    __m256i w = hf ? _mm256_and_si256(_mm256_srli_epi16(raw, 4), low4) : _mm256_and_si256(raw, low4);
    if (type == T_Q5_K) {
        const int c = 2 * g + hf;
        __m256i qh = _mm256_load_si256((const __m256i *)(b + KT_QH5 + 32 * t));
        __m256i moved = c <= 4 ? _mm256_slli_epi16(qh, 4 - c) : _mm256_srli_epi16(qh, c - 4);
        w = _mm256_or_si256(w, _mm256_and_si256(moved, _mm256_set1_epi8(0x10)));
    }
    return w;
}

/// Tile-form blocks (`tile`, nb of them) into kpanel blocks for kmicro: the values unpacked, the
/// scales spread into 16-bit pairs, d and dmin widened — no transposes (the rows are in the lanes already).
static inline __attribute__((always_inline)) SIMD_TARGET void SIMD_NAME(kpack_tiles)(const int type, const uint8_t *tile, long nb,
                                                                                  kpanel *out) {
    const long tb = KT_BYTES(type);
    const SIMD_NAME(ktshuffles) m = SIMD_NAME(ktshuffles_make)();
    const __m256i dup = m.dup, sdup = m.sdup, pair = m.pair, spair = m.spair;
    const __m256i eight = _mm256_set1_epi8(8);
    for (long i = 0; i < nb; i++) {
        const uint8_t *b = tile + i * tb;
        kpanel *o = out + i;
        for (int d = 0; d < 64; d++) _mm256_store_si256((__m256i *)o->q[d], SIMD_NAME(ktvalues)(type, b, d));
        for (int g = 0; g < 16; g += 2) {
            // 16-value groups g, g + 1: Q6_K's scales G = g, g + 1; Q4_K/Q5_K's sub-block g / 2 (both).
            __m256i scv = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(b + KT_SC(type) + (type == T_Q6_K ? 8 * g : 16 * (g / 4)))));
            __m256i lo, hi;
            if (type == T_Q6_K) {
                lo = _mm256_srai_epi16(_mm256_shuffle_epi8(scv, sdup), 8);
                hi = _mm256_srai_epi16(_mm256_shuffle_epi8(scv, _mm256_add_epi8(sdup, eight)), 8);
            } else {
                lo = hi = _mm256_shuffle_epi8(scv, g / 2 % 2 ? _mm256_add_epi8(dup, eight) : dup);
            }
            _mm256_store_si256((__m256i *)o->sc[g], lo);
            _mm256_store_si256((__m256i *)o->sc[g + 1], hi);
        }
        for (int t = 0; t < 8; t++) {
            __m256i mn = _mm256_setzero_si256();
            if (type == T_Q6_K) {
                __m256i scv = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(b + KT_SC(type) + 16 * t)));
                mn = _mm256_srai_epi16(_mm256_shuffle_epi8(scv, spair), 8);
            } else if (t < 4) {
                mn = _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(b + KT_MN(type) + 16 * t))), pair);
            }
            _mm256_store_si256((__m256i *)o->mn[t], mn);
        }
        _mm256_store_ps(o->d, _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(b + KT_D(type)))));
        _mm256_store_ps(o->dmin, type == T_Q6_K ? _mm256_setzero_ps() : _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(b + KT_D(type) + 16))));
    }
}

/// K-quant tile-form rows begin ..< end of a many-row product: kgemm's loops (panels of tiles, groups
/// of KGEMM_RA activation rows, KGEMM_BLOCKS blocks per pass, kmicro) with each panel unpacked from
/// the tiles once (kpack_tiles: no transposes, no scale unpacking from 6 bits). Without panel memory,
/// ktmicro reads the tiles directly (the same numbers; it unpacks again for every group of
/// activation rows, which ran 20–45 % slower than unpacking once, one thread, 142 × 4096 × 4096).
static inline __attribute__((always_inline)) SIMD_TARGET void SIMD_NAME(ktile_gemm)(const int type, const gemm_task *t, long begin,
                                                                                 long end) {
    const long nb = t->cols / QKK, tb = KT_BYTES(type), tiles = kgemm_panel_tiles(nb);
    kpanel *unpacked = kquant_tile(tiles * nb * (long)sizeof(kpanel));
    const long t0 = begin / 8, t1 = (end + 7) / 8;
    for (long p0 = t0; p0 < t1; p0 += tiles) {
        long count = t1 - p0 < tiles ? t1 - p0 : tiles;
        const uint8_t *panel = t->w + p0 * nb * tb;
        if (unpacked)
            for (long j = 0; j < count; j++) SIMD_NAME(kpack_tiles)(type, panel + j * nb * tb, nb, unpacked + j * nb);
        SIMD_NAME(kpanel_pass)(type, t, unpacked, panel, count, 8 * p0, begin, end);
    }
}

/// Packs weight rows r0 ..< r1 of a many-row product into `panel` for micro32: tiles of eight rows
/// (the last padded with zero rows), per block G32_WTB bytes: the rows' bytes (bytes32) as eight
/// vectors whose lane j holds four bytes of row j (vector c: bytes 4c … 4c + 3), then the rows' d as
/// eight floats (and for the _1 types their m).
static inline __attribute__((always_inline)) SIMD_TARGET void SIMD_NAME(pack32)(const int type, const gemm_task *t, long r0,
                                                                             long r1, uint8_t *panel) {
    const long nb = t->cols / QK, size = quant_block_bytes(type);
    for (long r = r0; r < r1; r += 8, panel += nb * G32_WTB(type)) {
        const uint8_t *rows[8];
        for (int j = 0; j < 8; j++) rows[j] = t->w + (r + j < r1 ? r + j : r) * t->row_bytes;
        for (long i = 0; i < nb; i++) {
            uint8_t *b = panel + i * G32_WTB(type);
            __m256i q[8];
            float d[8], m[8];
            for (int j = 0; j < 8; j++) {
                int live = r + j < r1;
                const uint8_t *block = rows[j] + i * size;
                q[j] = live ? SIMD_NAME(bytes32)(type, block) : _mm256_setzero_si256();
                d[j] = live ? SIMD_NAME(half)(block) : 0;
                m[j] = live && HAS_MIN(type) ? SIMD_NAME(half)(block + 2) : 0;
            }
            SIMD_NAME(transpose8)(q);
            for (int c = 0; c < 8; c++) _mm256_store_si256((__m256i *)(b + 32 * c), q[c]);
            float *dv = (float *)(b + G32_D);
            for (int j = 0; j < 8; j++) {
                dv[j] = d[j];
                if (HAS_MIN(type)) dv[8 + j] = m[j];
            }
        }
    }
}

/// The integer products of one packed block (`wt`) against GEMM_RA activation rows (`ag`), exact,
/// in s[k] (lane j: weight row j against activation row k), the _0 types' offset taken off.
/// Q8_0: per four bytes the weights' magnitudes (a sign, shared by the GEMM_RA rows), per four bytes
/// and activation row a broadcast, a sign and the dot (maddubs + madd + add, or dpbusd). Q4/Q5 values are unsigned and small: with AVX2 the byte products of 8 (Q4) or 4
/// (Q5) broadcasts add in 16 bits before one madd (8 · 2 · 15 · 127 and 4 · 2 · 31 · 127 fit).
static inline __attribute__((always_inline)) SIMD_TARGET void SIMD_NAME(block_dots)(const int type, const uint8_t *wt,
                                                                                 const uint8_t *ag, __m256i s[GEMM_RA]) {
    if (type == T_Q8_0) {
        for (int c = 0; c < 8; c++) {
            __m256i w = _mm256_load_si256((const __m256i *)(wt + 32 * c)), u = _mm256_sign_epi8(w, w);
            for (int k = 0; k < GEMM_RA; k++) {
                int32_t four;
                memcpy(&four, ag + k * QK + 4 * c, 4);
                __m256i y = _mm256_sign_epi8(_mm256_set1_epi32(four), w);
                s[k] = c ? DOT_ACC(s[k], u, y) : DOT(u, y);
            }
        }
        return;
    }
#if SIMD_VNNI
    for (int k = 0; k < GEMM_RA; k++) s[k] = _mm256_setzero_si256();
    for (int c = 0; c < 8; c++) {
        __m256i u = _mm256_load_si256((const __m256i *)(wt + 32 * c));
        for (int k = 0; k < GEMM_RA; k++) {
            int32_t four;
            memcpy(&four, ag + k * QK + 4 * c, 4);
            s[k] = DOT_ACC(s[k], u, _mm256_set1_epi32(four));
        }
    }
#else
    const int per = type == T_Q4_0 || type == T_Q4_1 ? 8 : 4;
    __m256i p[GEMM_RA];
    for (int c = 0; c < 8; c++) {
        __m256i u = _mm256_load_si256((const __m256i *)(wt + 32 * c));
        for (int k = 0; k < GEMM_RA; k++) {
            int32_t four;
            memcpy(&four, ag + k * QK + 4 * c, 4);
            __m256i b = _mm256_maddubs_epi16(u, _mm256_set1_epi32(four));
            p[k] = c % per ? _mm256_add_epi16(p[k], b) : b;
            if (c % per == per - 1) {
                __m256i wide = _mm256_madd_epi16(p[k], _mm256_set1_epi16(1));
                s[k] = c < per ? wide : _mm256_add_epi32(s[k], wide);
            }
        }
    }
#endif
    if (OFFSET32(type)) {
        const int32_t *sums = (const int32_t *)(ag + G32_ASUM);
        for (int k = 0; k < GEMM_RA; k++) s[k] = _mm256_sub_epi32(s[k], _mm256_set1_epi32(OFFSET32(type) * sums[k]));
    }
}

/// The products of one packed tile of eight weight rows (`wt`, pack32) and one group of GEMM_RA
/// activation rows (`ag`, group_body's layout) over n blocks: per block and pair exactly row32's
/// arithmetic, the eight weight rows in the lanes (acc[k] += cvt(s[k]) · (d_w · d_a), the
/// _1 types' extras a second chain), so each result equals the single-row product bit for bit. The
/// blocks may be one chunk of a row: unless `first` the chains start from `state`; they are left
/// there (acc[k], then extra[k]) for the next chunk or, after the last, store32.
static inline __attribute__((always_inline)) SIMD_TARGET void SIMD_NAME(micro32)(const int type, const uint8_t *wt,
                                                                              const uint8_t *ag, long n, int first,
                                                                              __m256 *state) {
    __m256 acc[GEMM_RA], extra[GEMM_RA];
    for (int k = 0; k < GEMM_RA; k++) {
        acc[k] = first ? _mm256_setzero_ps() : state[k];
        extra[k] = first || !HAS_MIN(type) ? _mm256_setzero_ps() : state[GEMM_RA + k];
    }
    if (HAS_MIN(type))  // Their own chains, in block order: apart, they keep registers from the main loop.
        for (long c = 0; c < n; c++) {
            __m256 mv = _mm256_load_ps((const float *)(wt + c * G32_WTB(type) + G32_D) + 8);
            const float *dsum = (const float *)(ag + c * G32_AGB + G32_ADSUM);
            for (int k = 0; k < GEMM_RA; k++) extra[k] = _mm256_add_ps(extra[k], _mm256_mul_ps(mv, _mm256_set1_ps(dsum[k])));
        }
    for (long c = 0; c < n; c++, wt += G32_WTB(type), ag += G32_AGB) {
#if G32_PREFETCH
        // The group's block G32_PREFETCH ahead: its first pass over a chunk reads it from L3. The
        // tile's weights (one sequential stream from L2) are left to the hardware prefetcher: their
        // five prefetches per block cost more than they saved (7B Q8_0 layer at 612 rows, one
        // thread, AVX2, CPU time: 0.5–7 % slower in each of five alternating comparisons).
        for (int line = 0; line < G32_AGB; line += 64) _mm_prefetch((const char *)(ag + G32_PREFETCH * G32_AGB + line), _MM_HINT_T0);
#endif
        __m256i s[GEMM_RA];
        SIMD_NAME(block_dots)(type, wt, ag, s);
        __m256 dw = _mm256_load_ps((const float *)(wt + G32_D));
        const float *da = (const float *)(ag + G32_AD);
        for (int k = 0; k < GEMM_RA; k++)
            acc[k] = _mm256_add_ps(acc[k], _mm256_mul_ps(_mm256_cvtepi32_ps(s[k]), _mm256_mul_ps(dw, _mm256_set1_ps(da[k]))));
    }
    for (int k = 0; k < GEMM_RA; k++) {
        state[k] = acc[k];
        state[GEMM_RA + k] = extra[k];
    }
}

/// micro32's finished chains (`state`) out: activation row k < acts to y + k · y_stride, lanes lo ..< hi.
static inline __attribute__((always_inline)) SIMD_TARGET void SIMD_NAME(store32)(const __m256 *state, float *y, long y_stride,
                                                                              long lo, long hi, long acts, int accumulate) {
    for (long k = 0; k < acts; k++) {
        __m256 v = _mm256_add_ps(state[k], state[GEMM_RA + k]);
        float *out = y + k * y_stride;
        if (lo == 0 && hi == 8) {
            if (accumulate) v = _mm256_add_ps(_mm256_loadu_ps(out), v);
            _mm256_storeu_ps(out, v);
            continue;
        }
        _Alignas(32) float lanes[8];
        _mm256_store_ps(lanes, v);
        for (long j = lo; j < hi; j++) out[j] = accumulate ? out[j] + lanes[j] : lanes[j];
    }
}

/// pack32's panel from 32-value tile-form weights: `count` tiles (from `tiles`, nb blocks each), each
/// block's dwords unpacked (t32_dword) and its d (and m) widened — no transposes, the rows are in the
/// lanes already.
static inline __attribute__((always_inline)) SIMD_TARGET void SIMD_NAME(pack32_tiles)(const int type, const uint8_t *tiles, long count,
                                                                                   long nb, uint8_t *panel) {
    const long tb = 8 * quant_block_bytes(type);
    for (long i = 0; i < count * nb; i++, tiles += tb, panel += G32_WTB(type)) {
        KT_UNROLL
        for (int c = 0; c < 8; c++) _mm256_store_si256((__m256i *)(panel + 32 * c), SIMD_NAME(t32_dword)(type, tiles, c));
        _mm256_store_ps((float *)(panel + G32_D), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(tiles + T32_D(type)))));
        if (HAS_MIN(type))
            _mm256_store_ps((float *)(panel + G32_D) + 8, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(tiles + T32_D(type) + 16))));
    }
}

/// Every group of GEMM_RA activation rows (`groups`, made once per product by group_body) over a
/// packed panel of `count` tiles (tile j: weight rows row0 + 8j …), G32_KC blocks at a time (the
/// group's chunk stays in L1 while the panel's tiles pass), micro32 per tile, group and chunk.
/// Outputs of rows begin ..< end are stored.
static inline __attribute__((always_inline)) SIMD_TARGET void SIMD_NAME(panel32_pass)(const int type, const gemm_task *t,
                                                                                   const uint8_t *tile, long count, long row0,
                                                                                   long begin, long end) {
    const long nb = t->cols / QK;
    __m256 state[G32_MAX_PANEL_ROWS / 8][2 * GEMM_RA];
    for (long g = 0; g * GEMM_RA < t->m; g++) {
        long acts = t->m - g * GEMM_RA < GEMM_RA ? t->m - g * GEMM_RA : GEMM_RA;
        for (long i0 = 0; i0 < nb; i0 += G32_KC) {
            long n = nb - i0 < G32_KC ? nb - i0 : G32_KC;
            const uint8_t *ag = t->groups + (g * nb + i0) * G32_AGB;
            for (long j = 0; j < count; j++) {
                SIMD_NAME(micro32)(type, tile + (j * nb + i0) * G32_WTB(type), ag, n, i0 == 0, state[j]);
                if (i0 + n < nb) continue;
                long r = row0 + 8 * j, lo = begin > r ? begin - r : 0, hi = end - r < 8 ? end - r : 8;
                SIMD_NAME(store32)(state[j], t->y + g * GEMM_RA * t->y_stride + r, t->y_stride, lo, hi, acts, t->accumulate);
            }
        }
    }
}

// panel32_pass compiled apart for each type (panel32 picks one): inlined into gemm_rows beside every
// other type's kernels, its loop was allocated worse once the tile form's code joined (Q5_0: per block
// 11 spill loads and stores, not 6) and Q5_0 at SmolLM2 shapes ran 6–8 % slower (612 × 576 × 576,
// one thread), stored rows as much as tiles.
#define PANEL32_OF(T, N)                                                                                              \
    static __attribute__((noinline)) SIMD_TARGET void SIMD_NAME(panel32_##N)(const gemm_task *t, const uint8_t *tile,  \
                                                                             long count, long row0, long begin, long end) { \
        SIMD_NAME(panel32_pass)(T, t, tile, count, row0, begin, end);                                                  \
    }
PANEL32_OF(T_Q8_0, q8_0)
PANEL32_OF(T_Q4_0, q4_0)
PANEL32_OF(T_Q4_1, q4_1)
PANEL32_OF(T_Q5_0, q5_0)
PANEL32_OF(T_Q5_1, q5_1)
#undef PANEL32_OF

static inline __attribute__((always_inline)) SIMD_TARGET void SIMD_NAME(panel32)(const int type, const gemm_task *t,
                                                                              const uint8_t *tile, long count, long row0,
                                                                              long begin, long end) {
    switch (type) {
    case T_Q8_0: SIMD_NAME(panel32_q8_0)(t, tile, count, row0, begin, end); break;
    case T_Q4_0: SIMD_NAME(panel32_q4_0)(t, tile, count, row0, begin, end); break;
    case T_Q4_1: SIMD_NAME(panel32_q4_1)(t, tile, count, row0, begin, end); break;
    case T_Q5_0: SIMD_NAME(panel32_q5_0)(t, tile, count, row0, begin, end); break;
    default: SIMD_NAME(panel32_q5_1)(t, tile, count, row0, begin, end); break;
    }
}

/// Weight rows begin ..< end of a many-row product (gemm_task). 32-value types: panels of rows
/// packed once (pack32 from stored rows, pack32_tiles from the tile form; as many rows as keep a
/// panel about G32_PANEL_BYTES, in L2), then panel32_pass. With no panel memory, rows go one
/// activation row at a time through the single-row kernels (the same numbers). K-quants: kgemm, or
/// ktile_gemm on the tile form.
static inline __attribute__((always_inline)) SIMD_TARGET void SIMD_NAME(gemm_typed)(const int type, const gemm_task *t,
                                                                                long begin, long end, uint8_t *tile) {
    if (quant_block_values(type) == QK) {
        long nb = t->cols / QK, rows = gemm32_panel_rows(nb);
        if (!tile || !t->groups) {
            for (long i = 0; i < t->m; i++) {
                const act32 *a = (const act32 *)(t->activation + i * t->act_stride);
                float *y = t->y + i * t->y_stride;
                if (t->tiled) {
                    SIMD_NAME(t32_rows)(type, t->w, nb, a, begin, end, y, t->accumulate);
                    continue;
                }
                for (long r = begin; r < end; r++) {
                    float v = SIMD_NAME(row32)(type, t->w + r * t->row_bytes, a, nb);
                    y[r] = t->accumulate ? y[r] + v : v;
                }
            }
            return;
        }
        // Panels from the stored rows (from begin) or from the tile form (from the tile that holds begin).
        const long tb = 8 * quant_block_bytes(type);
        for (long r0 = t->tiled ? begin / 8 * 8 : begin; r0 < end; r0 += rows) {
            long r1 = r0 + rows < end ? r0 + rows : end;
            if (t->tiled) SIMD_NAME(pack32_tiles)(type, t->w + r0 / 8 * nb * tb, (r1 - r0 + 7) / 8, nb, tile);
            else SIMD_NAME(pack32)(type, t, r0, r1, tile);
            SIMD_NAME(panel32)(type, t, tile, (r1 - r0 + 7) / 8, r0, begin, end);
        }
        return;
    }
    if (t->tiled) SIMD_NAME(ktile_gemm)(type, t, begin, end);
    else SIMD_NAME(kgemm)(type, t, begin, end);
}

#define SIMD_BY_TYPE(call, ...)                                                \
    switch (type) {                                                            \
    case T_Q8_0: SIMD_NAME(call)(T_Q8_0, t, begin, end __VA_ARGS__); break;     \
    case T_Q4_0: SIMD_NAME(call)(T_Q4_0, t, begin, end __VA_ARGS__); break;     \
    case T_Q4_1: SIMD_NAME(call)(T_Q4_1, t, begin, end __VA_ARGS__); break;     \
    case T_Q5_0: SIMD_NAME(call)(T_Q5_0, t, begin, end __VA_ARGS__); break;     \
    case T_Q5_1: SIMD_NAME(call)(T_Q5_1, t, begin, end __VA_ARGS__); break;     \
    case T_Q4_K: SIMD_NAME(call)(T_Q4_K, t, begin, end __VA_ARGS__); break;     \
    case T_Q5_K: SIMD_NAME(call)(T_Q5_K, t, begin, end __VA_ARGS__); break;     \
    default: SIMD_NAME(call)(T_Q6_K, t, begin, end __VA_ARGS__); break;         \
    }

static SIMD_TARGET void SIMD_NAME(matvec_rows)(int type, const matvec_task *t, long begin, long end) { SIMD_BY_TYPE(matvec_typed) }
static SIMD_TARGET void SIMD_NAME(gemm_rows)(int type, const gemm_task *t, long begin, long end, uint8_t *tile) {
    SIMD_BY_TYPE(gemm_typed, , tile)
}
#undef SIMD_BY_TYPE

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
