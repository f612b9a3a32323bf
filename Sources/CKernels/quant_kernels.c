// Kernels for ggml's block formats; the contract is in quant_kernels.h. Block layouts follow
// ggml-common.h byte for byte (little-endian halves, no padding):
//   Q4_0 (18 B / 32): f16 d, 16 × nibbles           value j = (q_j − 8)·d
//   Q4_1 (20 B / 32): f16 d, f16 m, 16 × nibbles    value j = q_j·d + m
//   Q5_0 (22 B / 32): f16 d, u32 high bits, nibbles value j = (q_j | bit_j << 4) − 16)·d
//   Q5_1 (24 B / 32): f16 d, f16 m, u32, nibbles    value j = (q_j | bit_j << 4)·d + m
//   Q8_0 (34 B / 32): f16 d, 32 × int8              value j = q_j·d
//   (nibbles: byte j's low half is value j, its high half value j + 16)
//   Q4_K (144 B / 256): f16 d, f16 dmin, 12 B of 6-bit scales and mins for 8 sub-blocks of 32,
//     128 B of nibbles (each 32 bytes hold 64 values: low halves first, then high halves)
//     value = d·scale_s·q − dmin·min_s
//   Q5_K (176 B / 256): as Q4_K plus 32 B of high bits (value 64c + l uses bit 2c of byte l, value
//     64c + 32 + l bit 2c + 1) between the scales and the nibbles
//   Q6_K (210 B / 256): 128 B low nibbles, 64 B 2-bit highs, 16 × int8 scales (one per 16 values),
//     f16 d; value = d·scale·(q − 32)
#include "quant_kernels.h"
#include "decode_kernels.h"
#include "cpu_features.h"
#include "team.h"

#include <math.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAVE_X86 1
#else
#define HAVE_X86 0
#endif

enum { T_F32 = 0, T_F16 = 1, T_Q4_0 = 2, T_Q4_1 = 3, T_Q5_0 = 6, T_Q5_1 = 7, T_Q8_0 = 8,
       T_Q4_K = 12, T_Q5_K = 13, T_Q6_K = 14, T_BF16 = 30 };
enum { QK = 32, QKK = 256 };

// The activation of a product, quantized per block: 32 values against the 32-value types (ggml's
// q8_0 with the block's sum kept for the _1 types' minimum and the _0 types' offset), 256 against
// the K-quants (ggml's q8_K: sums of each 16 for the minimums and Q6_K's offset).
typedef struct {
    int8_t qs[QK];
    float d;
    float dsum;  // d · Σ qs
    int32_t sum; // Σ qs
    int32_t pad;
} act32;

typedef struct {
    float d;
    int16_t bsums[QKK / 16];
    int16_t bsum32[QKK / 32];  // the sums of each 32 (pairs of bsums): the many-row kernel's minimums
    int8_t qs[QKK];
} act256;

/// bsum32 from bsums.
static inline void act256_sums32(act256 *a) {
    for (int t = 0; t < QKK / 32; t++) a->bsum32[t] = (int16_t)(a->bsums[2 * t] + a->bsums[2 * t + 1]);
}

// MARK: - Halves

static inline uint32_t bits_of(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float float_of(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/// IEEE half to float, exact (normals, subnormals, infinities, NaN).
static inline float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF;
    if (exponent == 0x1F) return float_of(sign | 0x7F800000 | (mantissa << 13));
    if (exponent == 0) {
        float v = (float)mantissa * 0x1p-24f;
        return sign ? -v : v;
    }
    return float_of(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

/// Float to IEEE half, rounding to nearest even (as GGML_FP32_TO_FP16).
static inline uint16_t float_to_half(float f) {
    uint32_t x = bits_of(f), sign = (x >> 16) & 0x8000, ax = x & 0x7FFFFFFF;
    if (ax >= 0x7F800000) return (uint16_t)(sign | 0x7C00 | (ax > 0x7F800000 ? 0x200 : 0));
    if (ax >= 0x477FF000) return (uint16_t)(sign | 0x7C00);  // rounds past the largest half
    if (ax < 0x38800000) {                                   // below the smallest normal half
        float v = float_of(ax) * 0x1p24f;                    // in units of 2^-24, < 1024
        return (uint16_t)(sign | (uint32_t)rintf(v));
    }
    uint32_t mantissa = ax & 0x7FFFFF, exponent = (ax >> 23) - 112;
    uint32_t h = (exponent << 10) | (mantissa >> 13), rest = mantissa & 0x1FFF;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h += 1;
    return (uint16_t)(sign | h);
}

static inline float half_at(const uint8_t *p) { uint16_t h; memcpy(&h, p, 2); return half_to_float(h); }

// MARK: - Sizes

long quant_block_values(int type) {
    switch (type) {
    case T_F32: case T_F16: case T_BF16: return 1;
    case T_Q4_0: case T_Q4_1: case T_Q5_0: case T_Q5_1: case T_Q8_0: return QK;
    case T_Q4_K: case T_Q5_K: case T_Q6_K: return QKK;
    default: return 0;
    }
}

long quant_block_bytes(int type) {
    switch (type) {
    case T_F32: return 4;
    case T_F16: case T_BF16: return 2;
    case T_Q4_0: return 18;
    case T_Q4_1: return 20;
    case T_Q5_0: return 22;
    case T_Q5_1: return 24;
    case T_Q8_0: return 34;
    case T_Q4_K: return 144;
    case T_Q5_K: return 176;
    case T_Q6_K: return 210;
    default: return 0;
    }
}

long quant_row_bytes(int type, long cols) {
    long values = quant_block_values(type);
    return values ? cols / values * quant_block_bytes(type) : 0;
}

// MARK: - Instruction set

// The level comes from cpu_features (one place decides, HIPRUNE_ISA lowers it); tests may pin a
// lower one with quant_use_isa. -1: follow hp_isa_active().
static atomic_int isa_choice = -1;

int quant_best_isa(void) {
#if HAVE_X86
    if (!(hp_cpu_has(HP_CPU_AVX2) && hp_cpu_has(HP_CPU_FMA) && hp_cpu_has(HP_CPU_F16C))) return 0;
    if (hp_cpu_has(HP_CPU_AVX512F) && hp_cpu_has(HP_CPU_AVX512VL) && hp_cpu_has(HP_CPU_AVX512_VNNI)) return 2;
    return 1;
#else
    return 0;
#endif
}

static int isa(void) {
    int choice = atomic_load_explicit(&isa_choice, memory_order_relaxed);
    if (choice >= 0) return choice;
    int best = quant_best_isa();
    hp_isa active = hp_isa_active();
    if (active >= HP_ISA_AVX512) return best;
    if (active >= HP_ISA_AVX2) return best < 1 ? best : 1;
    return 0;
}

int quant_use_isa(int wanted) {
    int previous = isa(), best = quant_best_isa();
    atomic_store(&isa_choice, wanted < 0 ? 0 : wanted > best ? best : wanted);
    return previous;
}

const char *quant_kernel_isa(void) {
    switch (isa()) {
    case 2: return "avx512vnni";
    case 1: return "avx2";
    default: return "portable";
    }
}

// MARK: - Dequantization (portable; ggml's dequantize_row_*)

static inline void scale_min_k4(int j, const uint8_t *q, int *scale, int *min) {
    if (j < 4) {
        *scale = q[j] & 63;
        *min = q[j + 4] & 63;
    } else {
        *scale = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/// The 6-bit scales and minimums of Q4_K's / Q5_K's 8 sub-blocks (12 bytes at q) unpacked at once,
/// as scale_min_k4 reads them one at a time: bytes 0–7 the scales, 8–15 the minimums.
static inline void unpack_k4_scales(const uint8_t *q, uint32_t packed[4]) {
    memcpy(packed, q, 12);
    packed[3] = ((packed[2] >> 4) & 0x0F0F0F0F) | (((packed[1] >> 6) & 0x03030303) << 4);
    uint32_t mins_low = packed[1] & 0x3F3F3F3F;
    packed[1] = (packed[2] & 0x0F0F0F0F) | (((packed[0] >> 6) & 0x03030303) << 4);
    packed[2] = mins_low;
    packed[0] &= 0x3F3F3F3F;
}

static void dequantize_row(int type, const uint8_t *b, long cols, float *y) {
    long nb = cols / quant_block_values(type);
    switch (type) {
    case T_F32:
        memcpy(y, b, (size_t)cols * 4);
        break;
    case T_F16:
        for (long i = 0; i < cols; i++) y[i] = half_at(b + 2 * i);
        break;
    case T_BF16:
        for (long i = 0; i < cols; i++) {
            uint16_t h;
            memcpy(&h, b + 2 * i, 2);
            y[i] = float_of((uint32_t)h << 16);
        }
        break;
    case T_Q4_0:
        for (long i = 0; i < nb; i++, b += 18, y += QK) {
            float d = half_at(b);
            for (int j = 0; j < 16; j++) {
                y[j] = (float)((b[2 + j] & 0xF) - 8) * d;
                y[j + 16] = (float)((b[2 + j] >> 4) - 8) * d;
            }
        }
        break;
    case T_Q4_1:
        for (long i = 0; i < nb; i++, b += 20, y += QK) {
            float d = half_at(b), m = half_at(b + 2);
            for (int j = 0; j < 16; j++) {
                y[j] = (float)(b[4 + j] & 0xF) * d + m;
                y[j + 16] = (float)(b[4 + j] >> 4) * d + m;
            }
        }
        break;
    case T_Q5_0:
    case T_Q5_1: {
        int one = type == T_Q5_1, size = one ? 24 : 22;
        for (long i = 0; i < nb; i++, b += size, y += QK) {
            float d = half_at(b), m = one ? half_at(b + 2) : 0;
            uint32_t qh;
            memcpy(&qh, b + 2 + 2 * one, 4);
            const uint8_t *qs = b + 6 + 2 * one;
            for (int j = 0; j < 16; j++) {
                int x0 = (qs[j] & 0xF) | (int)(((qh >> j) & 1) << 4);
                int x1 = (qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
                if (one) {
                    y[j] = (float)x0 * d + m;
                    y[j + 16] = (float)x1 * d + m;
                } else {
                    y[j] = (float)(x0 - 16) * d;
                    y[j + 16] = (float)(x1 - 16) * d;
                }
            }
        }
        break;
    }
    case T_Q8_0:
        for (long i = 0; i < nb; i++, b += 34, y += QK) {
            float d = half_at(b);
            for (int j = 0; j < QK; j++) y[j] = (float)(int8_t)b[2 + j] * d;
        }
        break;
    case T_Q4_K:
    case T_Q5_K: {
        int five = type == T_Q5_K, size = five ? 176 : 144;
        for (long i = 0; i < nb; i++, b += size) {
            float d = half_at(b), dmin = half_at(b + 2);
            const uint8_t *scales = b + 4, *qh = b + 16, *q = b + 16 + 32 * five;
            for (int c = 0; c < 4; c++, q += 32) {
                int s1, m1, s2, m2;
                scale_min_k4(2 * c, scales, &s1, &m1);
                scale_min_k4(2 * c + 1, scales, &s2, &m2);
                float d1 = d * (float)s1, n1 = dmin * (float)m1, d2 = d * (float)s2, n2 = dmin * (float)m2;
                for (int l = 0; l < 32; l++) {
                    int lo = q[l] & 0xF, hi = q[l] >> 4;
                    if (five) {
                        lo += (qh[l] >> (2 * c)) & 1 ? 16 : 0;
                        hi += (qh[l] >> (2 * c + 1)) & 1 ? 16 : 0;
                    }
                    y[l] = d1 * (float)lo - n1;
                    y[l + 32] = d2 * (float)hi - n2;
                }
                y += 64;
            }
        }
        break;
    }
    case T_Q6_K:
        for (long i = 0; i < nb; i++, b += 210) {
            float d = half_at(b + 208);
            for (int n = 0; n < 2; n++, y += 128) {
                const uint8_t *ql = b + 64 * n, *qh = b + 128 + 32 * n;
                const int8_t *sc = (const int8_t *)(b + 192) + 8 * n;
                for (int l = 0; l < 32; l++) {
                    int is = l / 16;
                    int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                    int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                    int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                    int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                    y[l] = d * (float)sc[is] * (float)q1;
                    y[l + 32] = d * (float)sc[is + 2] * (float)q2;
                    y[l + 64] = d * (float)sc[is + 4] * (float)q3;
                    y[l + 96] = d * (float)sc[is + 6] * (float)q4;
                }
            }
        }
        break;
    default:
        break;
    }
}


// MARK: - Activations

static long activation_bytes(int type, long cols) {
    switch (type) {
    case T_Q4_0: case T_Q4_1: case T_Q5_0: case T_Q5_1: case T_Q8_0: return cols / QK * (long)sizeof(act32);
    case T_Q4_K: case T_Q5_K: case T_Q6_K: return cols / QKK * (long)sizeof(act256);
    default: return 0;
    }
}

static void prepare_activation_portable(int type, const float *x, long cols, void *scratch) {
    if (quant_block_values(type) == QK) {
        act32 *a = scratch;
        for (long b = 0; b < cols / QK; b++, x += QK) {
            float amax = 0;
            for (int j = 0; j < QK; j++) amax = fmaxf(amax, fabsf(x[j]));
            float d = amax / 127, id = d ? 1 / d : 0;
            int sum = 0;
            for (int j = 0; j < QK; j++) {
                int q = (int)rintf(x[j] * id);  // to nearest even, as the SIMD quantizers round
                a[b].qs[j] = (int8_t)q;
                sum += q;
            }
            a[b].d = d;
            a[b].sum = sum;
            a[b].dsum = d * (float)sum;
        }
    } else if (quant_block_values(type) == QKK) {
        // ggml's quantize_row_q8_K_ref: the scale comes from the signed value of largest magnitude.
        act256 *a = scratch;
        for (long b = 0; b < cols / QKK; b++, x += QKK) {
            float max = 0, amax = 0;
            for (int j = 0; j < QKK; j++) {
                float ax = fabsf(x[j]);
                if (ax > amax) { amax = ax; max = x[j]; }
            }
            if (!amax) {
                memset(&a[b], 0, sizeof a[b]);
                continue;
            }
            float iscale = -127.f / max;
            for (int j = 0; j < QKK; j++) {
                int v = (int)rintf(iscale * x[j]);
                a[b].qs[j] = (int8_t)(v < 127 ? v : 127);
            }
            for (int g = 0; g < QKK / 16; g++) {
                int sum = 0;
                for (int j = 0; j < 16; j++) sum += a[b].qs[16 * g + j];
                a[b].bsums[g] = (int16_t)sum;
            }
            act256_sums32(&a[b]);
            a[b].d = 1 / iscale;
        }
    }
}

// MARK: - Row dot products, portable

/// A K-quant row's result from its eight chains (chain r: the blocks b with b % 8 = r, see
/// kblock_sums), in the order the SIMD kernels add their lanes (hsum): ((c0 + c4) + (c2 + c6)) +
/// ((c1 + c5) + (c3 + c7)).
static inline float kchains_sum(const float c[8]) { return ((c[0] + c[4]) + (c[2] + c[6])) + ((c[1] + c[5]) + (c[3] + c[7])); }

static float dot_portable(int type, const uint8_t *b, const void *activation, long cols) {
    float sum = 0;
    if (quant_block_values(type) == QK) {
        // The SIMD kernels' arithmetic (row32 in quant_simd.h), so every instruction set gives the
        // same bits: per block the exact integer dot product (the _0 types' offset times the
        // activation block's sum taken off), times d_w · d_a, added; the _1 types' m · d_a·Σq added
        // on a second chain; a multiply then an add each (no fma).
        const act32 *a = activation;
        long size = quant_block_bytes(type);
        float extra = 0;
        for (long i = 0; i < cols / QK; i++, b += size) {
            const int8_t *y = a[i].qs;
            int s = 0;
            switch (type) {
            case T_Q8_0:
                for (int j = 0; j < QK; j++) s += (int8_t)b[2 + j] * y[j];
                break;
            case T_Q4_0:
            case T_Q4_1: {
                const uint8_t *q = b + (type == T_Q4_1 ? 4 : 2);
                for (int j = 0; j < 16; j++) s += (q[j] & 0xF) * y[j] + (q[j] >> 4) * y[j + 16];
                break;
            }
            default: {  // Q5_0, Q5_1
                int one = type == T_Q5_1;
                uint32_t qh;
                memcpy(&qh, b + 2 + 2 * one, 4);
                const uint8_t *q = b + 6 + 2 * one;
                for (int j = 0; j < 16; j++) {
                    s += ((q[j] & 0xF) | (int)(((qh >> j) & 1) << 4)) * y[j];
                    s += ((q[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4)) * y[j + 16];
                }
                break;
            }
            }
            s -= (type == T_Q4_0 ? 8 : type == T_Q5_0 ? 16 : 0) * a[i].sum;
            float scale = half_at(b) * a[i].d, product = (float)s * scale;
            sum = sum + product;
            if (type == T_Q4_1 || type == T_Q5_1) {
                float minimum = half_at(b + 2) * a[i].dsum;
                extra = extra + minimum;
            }
        }
        return sum + extra;
    }
    const act256 *a = activation;
    long size = quant_block_bytes(type);
    float chain[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (long i = 0; i < cols / QKK; i++, b += size) {
        const int8_t *y = a[i].qs;
        const int16_t *bs = a[i].bsums;
        if (type == T_Q6_K) {
            int sumi = 0;
            for (int n = 0; n < 2; n++) {
                const uint8_t *ql = b + 64 * n, *qh = b + 128 + 32 * n;
                const int8_t *sc = (const int8_t *)(b + 192) + 8 * n, *yy = y + 128 * n;
                int groups[8] = {0};
                for (int l = 0; l < 32; l++) {
                    int is = l / 16;
                    groups[is] += ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) * yy[l];
                    groups[is + 2] += ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) * yy[l + 32];
                    groups[is + 4] += ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) * yy[l + 64];
                    groups[is + 6] += ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) * yy[l + 96];
                }
                for (int g = 0; g < 8; g++) sumi += sc[g] * (groups[g] - 32 * bs[8 * n + g]);
            }
            // The SIMD kernels' chains (kblock_sums): the same numbers on every instruction set.
            chain[i % 8] = fmaf((float)sumi, half_at(b + 208) * a[i].d, chain[i % 8]);
            continue;
        }
        int five = type == T_Q5_K;
        const uint8_t *scales = b + 4, *qh = b + 16, *q = b + 16 + 32 * five;
        int sumi = 0, summ = 0;
        for (int c = 0; c < 4; c++, q += 32) {
            int s1, m1, s2, m2, lo = 0, hi = 0;
            scale_min_k4(2 * c, scales, &s1, &m1);
            scale_min_k4(2 * c + 1, scales, &s2, &m2);
            for (int l = 0; l < 32; l++) {
                int wl = q[l] & 0xF, wh = q[l] >> 4;
                if (five) {
                    wl |= ((qh[l] >> (2 * c)) & 1) << 4;
                    wh |= ((qh[l] >> (2 * c + 1)) & 1) << 4;
                }
                lo += wl * y[64 * c + l];
                hi += wh * y[64 * c + 32 + l];
            }
            sumi += s1 * lo + s2 * hi;
            summ += m1 * (bs[4 * c] + bs[4 * c + 1]) + m2 * (bs[4 * c + 2] + bs[4 * c + 3]);
        }
        chain[i % 8] = fmaf((float)sumi, half_at(b) * a[i].d, chain[i % 8]);
        chain[i % 8] = fmaf(-(float)summ, half_at(b + 2) * a[i].d, chain[i % 8]);
    }
    return kchains_sum(chain);
}

static float dot_f16_portable(const uint8_t *b, const float *x, long cols) {
    float lanes[8] = {0};
    long c = 0;
    for (; c + 8 <= cols; c += 8)
        for (int k = 0; k < 8; k++) lanes[k] += half_at(b + 2 * (c + k)) * x[c + k];
    float sum = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
    for (; c < cols; c++) sum += half_at(b + 2 * c) * x[c];
    return sum;
}

// MARK: - Row dot products, SIMD
//
// quant_simd.h holds the AVX2-shaped kernels once, written against two macros: DOT (unsigned bytes
// · signed bytes → eight int32 sums of four products each) and MADD_ACC (int32 accumulator + the
// products of 16-bit pairs, summed in pairs: the K-quants' scales). It is compiled twice: with AVX2's
// maddubs + madd (+ add), and with AVX-512 VNNI's dpbusd and dpwssd (the same exact integers).

// The products' tasks, which the SIMD row loops take whole.
typedef struct {
    int type, isa;
    const uint8_t *w;
    long row_bytes, cols;
    const uint8_t *activation;
    const float *x;
    float *y;
    int accumulate;
    int tiled;  // w in tile form (quant_tile_rows; K-quants), the activation in natural order
} matvec_task;

typedef struct {
    int type, isa;
    const uint8_t *w;
    long row_bytes, cols, m;
    const uint8_t *activation;
    long act_stride;
    float *y;
    long y_stride;
    int accumulate;
    const uint8_t *groups;  // 32-value types on a SIMD path: the activation rows as group_body lays them out
    int tiled;              // w in tile form (quant_tile_rows; K-quants)
} gemm_task;

// 32-value types: register tiles of eight weight rows (the lanes) × GEMM_RA activation rows
// (micro32). Weights are packed per call into panels of about G32_PANEL_BYTES (L2-resident while
// every activation group passes), G32_WTB bytes per tile and block; activations into groups of
// GEMM_RA rows, G32_AGB bytes per group and block. On one thread of the AVX2 Zen 3 (CPU-time
// probes: sign, maddubs, madd, fma and cvt each issue two a cycle, maddubs, madd and fma on the same
// two pipes, and an fma blocks a further one) the Q8_0 pair step of this tile (broadcast, sign,
// maddubs, madd, add: 1.37 cycles hot) replaced the 2 × 3 tile's (sign, maddubs, madd, cvt, fma with
// a broadcast scale: 1.51 before loads), and Q4/Q5's unsigned values need no sign at all (broadcast,
// maddubs, 16-bit add: 0.65). Five activation rows ran 1–5 % faster than four (7B and SmolLM2
// shapes, one thread, CPU time); six spill. Q8_0 in 16 bits (values sign-extended at packing,
// activation pairs broadcast, madd and add, no sign) ran 5 % faster hot (1.54 against 1.63 cycles
// per pair step with the scale steps) but doubles the packed block: at 11008 columns only two tiles
// fit a panel and the down projection ran 16 % slower, the whole layer 3–8 % slower.
#ifndef GEMM_RA
#define GEMM_RA 5
#endif
#ifndef G32_PANEL_BYTES
#define G32_PANEL_BYTES (384 * 1024)
#endif
// Blocks per pass of a group over the panel's tiles (its chunk, about 12 KB, stays in L1) and how
// far ahead the group's blocks are prefetched.
#ifndef G32_KC
#define G32_KC 64
#endif
#ifndef G32_PREFETCH
#define G32_PREFETCH 16
#endif
#ifndef MATVEC32_PREFETCH
#define MATVEC32_PREFETCH 1
#endif
// A group's block: GEMM_RA rows of 32 bytes, then their d, d·Σq and Σq (GEMM_RA each), rounded up
// to 32 bytes. A packed tile's block: 256 bytes of values (Q8_0 signed, its magnitudes taken in the
// kernel: storing them too doubled the panel's L2 traffic and ran 2–4 % slower at 7B shapes), then
// eight d (and for the _1 types eight m).
enum {
    G32_AD = GEMM_RA * QK, G32_ADSUM = G32_AD + 4 * GEMM_RA, G32_ASUM = G32_ADSUM + 4 * GEMM_RA,
    G32_AGB = (G32_ASUM + 4 * GEMM_RA + 31) / 32 * 32, G32_D = 256, G32_WTB_MAX = 256 + 64, G32_MAX_PANEL_ROWS = 64
};
#define G32_WTB(type) (G32_D + ((type) == T_Q4_1 || (type) == T_Q5_1 ? 64 : 32))

/// Weight rows per packed panel for rows of nb blocks: a multiple of 8.
static long gemm32_panel_rows(long nb) {
    long tiles = G32_PANEL_BYTES / (nb * G32_WTB_MAX);
    if (tiles < 1) tiles = 1;
    if (tiles > G32_MAX_PANEL_ROWS / 8) tiles = G32_MAX_PANEL_ROWS / 8;
    return tiles * 8;
}

// K-quants, many rows: tiles of 8 weight rows repacked per product (kpack) so that one register
// holds four consecutive values of each of the 8 rows, as unsigned bytes. Against four activation
// bytes broadcast, one maddubs gives each row's products in its own two 16-bit lanes; a group's
// maddubs add up in 16 bits (as many as the type's largest value allows: 8 for Q4_K's 0–15, 4 for
// Q5_K's 0–31, 2 for Q6_K's 0–63, each lane then at most 32004), then one madd by the group's scales
// leaves each row's exact sum in one 32-bit lane. So the integer work of a weight block and an
// activation row is one lane of eight: no reduction across lanes, and the scales applied once per
// eight pairs. Per tile and block: the values (dword t of the block, rows 0–7), the 16-bit scales of
// each 16-value group in both lanes of each row, the minimums' multipliers (Q4_K/Q5_K, mn[0..3]: the
// minimums of sub-blocks 2u, 2u + 1 against the activation's sums of 32 values; Q6_K, mn[0..7]: the
// scales of groups 2t, 2t + 1 against its sums of 16, for the −32 offset), and the rows' d and dmin.
typedef struct {
    uint8_t q[QKK / 4][32];
    int16_t sc[16][16];
    int16_t mn[8][16];
    float d[8], dmin[8];
} kpanel;
_Static_assert(sizeof(kpanel) % 64 == 0, "kpanel blocks keep 64-byte alignment");

// Activation rows per pass over a tile (KGEMM_RA), bytes of packed tiles kept per panel (L2-resident
// while every group of activation rows passes), and blocks per pass (a group's slice stays in L1).
#ifndef KGEMM_RA
#define KGEMM_RA 4
#endif
#ifndef KGEMM_PANEL_BYTES
#define KGEMM_PANEL_BYTES (192 * 1024)
#endif
#ifndef KGEMM_BLOCKS
#define KGEMM_BLOCKS 16
#endif
enum { KGEMM_MAX_TILES = 16 };

/// Tiles of 8 weight rows per panel for rows of nb blocks.
static long kgemm_panel_tiles(long nb) {
    long tiles = KGEMM_PANEL_BYTES / (nb * (long)sizeof(kpanel));
    return tiles < 1 ? 1 : tiles > KGEMM_MAX_TILES ? KGEMM_MAX_TILES : tiles;
}

/// The calling thread's buffer for a panel of packed K-quant tiles (`bytes`, 64-byte aligned),
/// grown as needed and kept for the thread's next product; NULL when it cannot be had (kgemm then
/// packs one block at a time on the stack: the same numbers).
static void *kquant_tile(long bytes) {
    static _Thread_local void *buffer;
    static _Thread_local long size;
    if (bytes > size) {
        void *grown = NULL;
        if (posix_memalign(&grown, 64, (size_t)bytes) != 0) return NULL;
        free(buffer);
        buffer = grown;
        size = bytes;
    }
    return buffer;
}

// K-quants repacked at load (quant_tile_rows): tiles of 8 weight rows, each tile's blocks in order,
// KT_BYTES(type) per tile and block. Registers of 32 bytes hold a dword of each of the 8 rows (lane j:
// row j), so one broadcast of four activation bytes meets eight rows and each row's sums stay in its
// lane (no reduction across lanes; the scales applied once per eight rows), as kpanel does for the
// many-row product — but with the values still packed (nibbles, high bits apart) and the scales a
// byte each, so the tiles are about the stored bytes (Q4_K 1184 B for 8 × 144, Q5_K 1440 for 8 × 176,
// Q6_K 1696 for 8 × 210) and decode streams no more than the stored form.
//   Q4_K / Q5_K: q[g][t] (g < 4, t < 8; 1024 B): lane j = stored bytes 32g + 4t … + 3 of row j's
//     nibbles (low halves: values 64g + 4t …, sub-block 2g; high halves: 64g + 32 + 4t …, 2g + 1);
//     Q5_K: qh[t] (256 B): lane j = bytes 4t … 4t + 3 of row j's high bits (bit c: value 32c + 4t + k);
//     scales[s][j], mins[s][j] (64 B each, the unpacked 6-bit values); d[j], dmin[j] halves (32 B).
//   Q6_K: per half n < 2 (768 B each): ql[u] (u < 16): lane j = bytes 64n + 4u … of row j's ql, qh[t]
//     (t < 8): lane j = bytes 32n + 4t … of its qh; then scales[G][j] (G < 16, int8, 128 B), d[j]
//     halves (16 B) and 16 B of zeros.
#define KT_BYTES(type) ((type) == T_Q4_K ? 1184 : (type) == T_Q5_K ? 1440 : (type) == T_Q6_K ? 1696 : 0)
#define KT_SC(type) ((type) == T_Q4_K ? 1024 : (type) == T_Q5_K ? 1280 : 1536)
#define KT_MN(type) (KT_SC(type) + 64)
#define KT_D(type) ((type) == T_Q4_K ? 1152 : (type) == T_Q5_K ? 1408 : 1664)
enum { KT_QH5 = 1024, KT_HALF6 = 768, KT_QH6 = 512 };
// Bytes of a tile-form single-row product's stream requested ahead of the block it reads.
#ifndef KT_AHEAD
#define KT_AHEAD 2048
#endif

/// The bytes of 8 stored blocks (rows 0–7 of a tile, block b each; NULL: a zero row) in tile form;
/// without `values` only the scales, minimums and d (the SIMD repacker transposes the values).
static void ktile_block(int type, const uint8_t *const src[8], uint8_t *dst, int values) {
    memset(dst, 0, (size_t)KT_BYTES(type));
    for (int j = 0; j < 8; j++) {
        const uint8_t *b = src[j];
        if (!b) continue;
        if (type == T_Q6_K) {
            for (int n = 0; n < 2 && values; n++) {
                uint8_t *h = dst + KT_HALF6 * n;
                for (int u = 0; u < 16; u++) memcpy(h + 32 * u + 4 * j, b + 64 * n + 4 * u, 4);
                for (int t = 0; t < 8; t++) memcpy(h + KT_QH6 + 32 * t + 4 * j, b + 128 + 32 * n + 4 * t, 4);
            }
            for (int g = 0; g < 16; g++) dst[KT_SC(type) + 8 * g + j] = b[192 + g];
            memcpy(dst + KT_D(type) + 2 * j, b + 208, 2);
            continue;
        }
        const int five = type == T_Q5_K;
        const uint8_t *q = b + 16 + 32 * five;
        for (int g = 0; g < 4 && values; g++)
            for (int t = 0; t < 8; t++) memcpy(dst + 256 * g + 32 * t + 4 * j, q + 32 * g + 4 * t, 4);
        if (five && values)
            for (int t = 0; t < 8; t++) memcpy(dst + KT_QH5 + 32 * t + 4 * j, b + 16 + 4 * t, 4);
        for (int k = 0; k < 8; k++) {
            int scale, min;
            scale_min_k4(k, b + 4, &scale, &min);
            dst[KT_SC(type) + 8 * k + j] = (uint8_t)scale;
            dst[KT_MN(type) + 8 * k + j] = (uint8_t)min;
        }
        memcpy(dst + KT_D(type) + 2 * j, b, 2);
        memcpy(dst + KT_D(type) + 16 + 2 * j, b + 2, 2);
    }
}

/// Row j of a tile block back in its stored bytes (ktile_block's inverse; the 6-bit scales packed as
/// ggml packs them).
static void kuntile_block(int type, const uint8_t *tile, int j, uint8_t *b) {
    if (type == T_Q6_K) {
        for (int n = 0; n < 2; n++) {
            const uint8_t *h = tile + KT_HALF6 * n;
            for (int u = 0; u < 16; u++) memcpy(b + 64 * n + 4 * u, h + 32 * u + 4 * j, 4);
            for (int t = 0; t < 8; t++) memcpy(b + 128 + 32 * n + 4 * t, h + KT_QH6 + 32 * t + 4 * j, 4);
        }
        for (int g = 0; g < 16; g++) b[192 + g] = tile[KT_SC(type) + 8 * g + j];
        memcpy(b + 208, tile + KT_D(type) + 2 * j, 2);
        return;
    }
    const int five = type == T_Q5_K;
    uint8_t *q = b + 16 + 32 * five, *sc = b + 4;
    for (int g = 0; g < 4; g++)
        for (int t = 0; t < 8; t++) memcpy(q + 32 * g + 4 * t, tile + 256 * g + 32 * t + 4 * j, 4);
    if (five)
        for (int t = 0; t < 8; t++) memcpy(b + 16 + 4 * t, tile + KT_QH5 + 32 * t + 4 * j, 4);
    memset(sc, 0, 12);
    for (int k = 0; k < 8; k++) {
        int ls = tile[KT_SC(type) + 8 * k + j], lm = tile[KT_MN(type) + 8 * k + j];
        if (k < 4) {
            sc[k] |= (uint8_t)ls;
            sc[k + 4] |= (uint8_t)lm;
        } else {
            sc[k + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
            sc[k - 4] |= (uint8_t)((ls >> 4) << 6);
            sc[k] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    memcpy(b, tile + KT_D(type) + 2 * j, 2);
    memcpy(b + 2, tile + KT_D(type) + 16 + 2 * j, 2);
}

#if HAVE_X86
#define SIMD_TARGET __attribute__((target("avx2,fma,f16c")))
#define SIMD_SUFFIX avx2
#define SIMD_VNNI 0
#define DOT(u, s) _mm256_madd_epi16(_mm256_maddubs_epi16((u), (s)), _mm256_set1_epi16(1))
#define DOT_ACC(acc, u, s) _mm256_add_epi32((acc), DOT(u, s))
#define MADD_ACC(acc, p, s) _mm256_add_epi32((acc), _mm256_madd_epi16((p), (s)))
#include "quant_simd.h"
#undef SIMD_TARGET
#undef SIMD_SUFFIX
#undef SIMD_VNNI
#undef DOT
#undef DOT_ACC
#undef MADD_ACC

#define SIMD_TARGET __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512vnni")))
#define SIMD_SUFFIX vnni
#define SIMD_VNNI 1
#define DOT(u, s) _mm256_dpbusd_epi32(_mm256_setzero_si256(), (u), (s))
#define DOT_ACC(acc, u, s) _mm256_dpbusd_epi32((acc), (u), (s))
#define MADD_ACC(acc, p, s) _mm256_dpwssd_epi32((acc), (p), (s))
#include "quant_simd.h"
#undef SIMD_TARGET
#undef SIMD_SUFFIX
#undef SIMD_VNNI
#undef DOT
#undef DOT_ACC
#undef MADD_ACC
#endif

// MARK: - Products

/// The activation quantized for `type`'s blocks; K-quants with `natural` in order (the many-row
/// kernel's layout), else in the SIMD decode kernel's order (portable: always in order).
static void prepare_activation(int isa, int type, const float *x, long cols, void *scratch, int natural) {
#if HAVE_X86
    if (isa == 2) { prepare_activation_vnni(type, x, cols, scratch, natural); return; }
    if (isa == 1) { prepare_activation_avx2(type, x, cols, scratch, natural); return; }
#endif
    (void)natural;
    (void)isa;
    prepare_activation_portable(type, x, cols, scratch);
}

/// Bytes of rows per chunk of a single-row product, and how far past a chunk its claim's lines are
/// requested before the chunk runs (matvec_body).
#ifndef MATVEC_CHUNK
#define MATVEC_CHUNK 1024
#endif
#ifndef MATVEC_AHEAD
#define MATVEC_AHEAD 2048
#endif

/// Row r of w as stored: in place, or for tile form restored into the calling thread's buffer (grown
/// as needed; NULL when it cannot be had). The portable paths read tile-form rows this way.
static const uint8_t *stored_row(int type, const uint8_t *w, int tiled, long row_bytes, long cols, long r) {
    if (!tiled) return w + r * row_bytes;
    static _Thread_local uint8_t *buffer;
    static _Thread_local long size;
    if (row_bytes > size) {
        uint8_t *grown = realloc(buffer, (size_t)row_bytes);
        if (!grown) return NULL;
        buffer = grown;
        size = row_bytes;
    }
    quant_untile_rows(type, w, cols, r, 1, buffer);
    return buffer;
}

static void matvec_body(void *context, long begin, long end) {
    const matvec_task *t = context;
#if HAVE_X86
    if (t->type == T_F16 && t->isa >= 1) {
        for (long r = begin; r < end; r++) {
            const uint8_t *row = t->w + r * t->row_bytes;
            float v = t->isa == 2 ? dot_f16_vnni(row, t->x, t->cols) : dot_f16_avx2(row, t->x, t->cols);
            t->y[r] = t->accumulate ? t->y[r] + v : v;
        }
        return;
    }
    if (t->isa >= 1 && t->tiled) {
        // Tile form: 8 rows per pass, prefetching its own stream (ktile_matvec).
        if (t->isa == 2) matvec_rows_vnni(t->type, t, begin, end);
        else matvec_rows_avx2(t->type, t, begin, end);
        return;
    }
    if (t->isa >= 1 && quant_block_values(t->type) != QK) {
        // K-quant rows are read one at a time: a single stream per thread, which the hardware
        // prefetchers pick up anew at each claim (and each 4 KiB page of a file mapped with small
        // pages): they run a chunk at a time, the claim's lines up to MATVEC_AHEAD bytes past the
        // chunk requested first. The 32-value types' eight-row passes prefetch their next rows.
        long rb = t->row_bytes;
        long step = (MATVEC_CHUNK + rb - 1) / rb;
        const uint8_t *stop = t->w + end * rb, *next = (const uint8_t *)((uintptr_t)(t->w + begin * rb) & ~(uintptr_t)63);
        for (long r = begin; r < end; r += step) {
            long e = end - r > step ? r + step : end;
            const uint8_t *want = e < end ? t->w + e * rb + MATVEC_AHEAD : stop;
            if (want > stop) want = stop;
            for (; next < want; next += 64) _mm_prefetch((const char *)next, _MM_HINT_T0);
            if (t->isa == 2) matvec_rows_vnni(t->type, t, r, e);
            else matvec_rows_avx2(t->type, t, r, e);
        }
        return;
    }
    if (t->isa == 2) { matvec_rows_vnni(t->type, t, begin, end); return; }
    if (t->isa == 1) { matvec_rows_avx2(t->type, t, begin, end); return; }
#endif
    for (long r = begin; r < end; r++) {
        const uint8_t *row = stored_row(t->type, t->w, t->tiled, t->row_bytes, t->cols, r);
        float v = !row ? NAN : t->type == T_F16 ? dot_f16_portable(row, t->x, t->cols) : dot_portable(t->type, row, t->activation, t->cols);
        t->y[r] = t->accumulate ? t->y[r] + v : v;
    }
}

int quant_gemm_supported(int type) { return activation_bytes(type, quant_block_values(type)) > 0; }

typedef struct {
    int type, isa;
    const float *x;
    long x_stride, cols, act_stride;
    uint8_t *activation;
} activation_task;

static void activation_body(void *context, long begin, long end) {
    const activation_task *t = context;
    for (long i = begin; i < end; i++)
        prepare_activation(t->isa, t->type, t->x + i * t->x_stride, t->cols, t->activation + i * t->act_stride, 1);
}

/// The calling thread's buffer for a packed panel of weight rows (pack32) of `cols` values, 32-byte
/// aligned, grown as needed and kept for the thread's next product; NULL when it cannot be had (the
/// rows then go through the single-row kernel, the same numbers).
static uint8_t *tile_buffer(long cols) {
    static _Thread_local uint8_t *buffer;
    static _Thread_local long size;
    long nb = cols / QK, need = gemm32_panel_rows(nb) / 8 * nb * G32_WTB_MAX;
    if (need > size) {
        free(buffer);
        buffer = aligned_alloc(64, (size_t)(need + 63) / 64 * 64);
        size = buffer ? need : 0;
    }
    return buffer;
}

/// The activation rows of a many-row product in groups of GEMM_RA for micro32: per group and block
/// G32_AGB bytes, the rows' 32 quantized values, then their d, d·Σq and Σq (G32_AD, G32_ADSUM,
/// G32_ASUM). Rows past m are zeros.
typedef struct {
    const uint8_t *rows;  // act32 rows, `stride` bytes apart
    long stride, m, nb;
    uint8_t *groups;
} group_task;

static void group_body(void *context, long begin, long end) {
    const group_task *t = context;
    for (long g = begin; g < end; g++)
        for (long i = 0; i < t->nb; i++) {
            uint8_t *b = t->groups + (g * t->nb + i) * G32_AGB;
            memset(b, 0, G32_AGB);
            float *d = (float *)(b + G32_AD), *dsum = (float *)(b + G32_ADSUM);
            int32_t *sum = (int32_t *)(b + G32_ASUM);
            for (int k = 0; k < GEMM_RA && g * GEMM_RA + k < t->m; k++) {
                const act32 *a = (const act32 *)(t->rows + (g * GEMM_RA + k) * t->stride) + i;
                memcpy(b + k * QK, a->qs, QK);
                d[k] = a->d;
                dsum[k] = a->dsum;
                sum[k] = a->sum;
            }
        }
}

static void gemm_body(void *context, long begin, long end) {
    const gemm_task *t = context;
#if HAVE_X86
    uint8_t *tile = quant_block_values(t->type) == QK ? tile_buffer(t->cols) : NULL;
    if (t->isa == 2) { gemm_rows_vnni(t->type, t, begin, end, tile); return; }
    if (t->isa == 1) { gemm_rows_avx2(t->type, t, begin, end, tile); return; }
#endif
    for (long r = begin; r < end; r++) {
        const uint8_t *row = stored_row(t->type, t->w, t->tiled, t->row_bytes, t->cols, r);
        for (long i = 0; i < t->m; i++) {
            float v = row ? dot_portable(t->type, row, t->activation + i * t->act_stride, t->cols) : NAN, *y = t->y + i * t->y_stride + r;
            *y = t->accumulate ? *y + v : v;
        }
    }
}

// MARK: - Products over stacked parts
//
// A stacked matrix (Q, K and V one above the other, gate above up) is one product: the activation
// quantized once per block size its parts need (32-value blocks, 256-value q8_K blocks), one team
// run over all rows, each claim cut at the parts' boundaries. Rows are numbered across the parts.

typedef struct {
    const quant_part *parts;
    long count, cols;
    int isa, accumulate;
    const uint8_t *act32, *act256;  // the activation rows in each block size (as a part needs)
    long stride32, stride256;       // bytes between rows of X in each
    const uint8_t *act256n;         // single-row products: the q8_K activation in natural order (tile-form parts)
    const float *x;
    float *y;
    long m, y_stride;
    const uint8_t *groups32;  // many-row products of 32-value parts on a SIMD path: group_body's layout
} parts_task;

/// Whether the parts are all types these products take (block formats; F16 too for `single`; tile
/// form only for the K-quants), with their total rows and which activation block sizes they need
/// (need256: stored K-quant parts; tiled: tile-form parts).
static int parts_shape(const quant_part *parts, long count, int single, long *rows, int *need32, int *need256, int *tiled) {
    *rows = 0;
    *need32 = *need256 = *tiled = 0;
    for (long p = 0; p < count; p++) {
        long values = quant_block_values(parts[p].type);
        if (!(values == QK || values == QKK || (single && parts[p].type == T_F16))) return 0;
        if (parts[p].tiled && !KT_BYTES(parts[p].type)) return 0;
        *need32 |= values == QK;
        *need256 |= values == QKK && !parts[p].tiled;
        *tiled |= parts[p].tiled;
        *rows += parts[p].rows;
    }
    return 1;
}

typedef void (*part_range)(const parts_task *t, const quant_part *part, long first, long begin, long end);

/// Runs `run` on each part's share of rows begin ..< end (its rows begin − first ..< end − first).
static void each_part(const parts_task *t, long begin, long end, part_range run) {
    long first = 0;
    for (long p = 0; p < t->count && first < end; p++) {
        long last = first + t->parts[p].rows, b = begin > first ? begin : first, e = end < last ? end : last;
        if (b < e) run(t, &t->parts[p], first, b - first, e - first);
        first = last;
    }
}

static const uint8_t *activation_of(const parts_task *t, int type, long *stride) {
    int small = quant_block_values(type) == QK;
    *stride = small ? t->stride32 : t->stride256;
    return small ? t->act32 : t->act256;
}

static void matvec_part(const parts_task *t, const quant_part *part, long first, long begin, long end) {
    long stride;
    const uint8_t *activation = part->tiled ? t->act256n : activation_of(t, part->type, &stride);
    matvec_task task = {part->type, t->isa, part->w, part->row_bytes, t->cols, activation, t->x, t->y + first, t->accumulate,
                        part->tiled};
    matvec_body(&task, begin, end);
}

static void matvec_parts_body(void *context, long begin, long end) { each_part(context, begin, end, matvec_part); }

static void gemm_part(const parts_task *t, const quant_part *part, long first, long begin, long end) {
    long stride;
    const uint8_t *activation = activation_of(t, part->type, &stride);
    gemm_task task = {part->type, t->isa, part->w, part->row_bytes, t->cols, t->m, activation, stride, t->y + first,
                      t->y_stride, t->accumulate, quant_block_values(part->type) == QK ? t->groups32 : NULL, part->tiled};
    gemm_body(&task, begin, end);
}

static void gemm_parts_body(void *context, long begin, long end) { each_part(context, begin, end, gemm_part); }

int quant_matvec_parts(const quant_part *parts, long count, long cols, const float *x, float *y, int accumulate) {
    long rows;
    int need32, need256, tiled;
    if (!parts_shape(parts, count, 1, &rows, &need32, &need256, &tiled)) return -1;
    if (rows <= 0) return 0;
    static _Thread_local uint8_t *scratch;
    static _Thread_local long scratch_bytes;
    long bytes32 = need32 ? activation_bytes(T_Q8_0, cols) : 0, bytes256 = need256 ? activation_bytes(T_Q4_K, cols) : 0;
    long natural = tiled ? activation_bytes(T_Q4_K, cols) : 0;
    if (bytes32 + bytes256 + natural > scratch_bytes) {
        void *grown = realloc(scratch, (size_t)(bytes32 + bytes256 + natural));
        if (!grown) return -1;
        scratch = grown;
        scratch_bytes = bytes32 + bytes256 + natural;
    }
    int level = isa();
    if (bytes32) prepare_activation(level, T_Q8_0, x, cols, scratch, 0);
    if (bytes256) prepare_activation(level, T_Q4_K, x, cols, scratch + bytes32, 0);
    // Tile-form parts take the q8_K values in order (the many-row kernel's broadcasts).
    if (natural) prepare_activation(level, T_Q4_K, x, cols, scratch + bytes32 + bytes256, 1);
    parts_task task = {parts, count, cols, level, accumulate, scratch, scratch + bytes32, 0, 0, scratch + bytes32 + bytes256,
                       x, y, 1, 0, NULL};
    hp_team_run(matvec_parts_body, &task, rows, 8, rows * cols >= 65536);
    return 0;
}

int quant_matvec(int type, const void *w, long row_bytes, long rows, long cols, const float *x, float *y,
                 int accumulate) {
    quant_part part = {type, w, row_bytes, rows, 0};
    return quant_matvec_parts(&part, 1, cols, x, y, accumulate);
}

int quant_gemm_parts(const quant_part *parts, long count, long cols, const float *x, long m, long x_stride, float *y,
                     long y_stride, int accumulate) {
    long rows;
    int need32, need256, tiled;
    if (!parts_shape(parts, count, 0, &rows, &need32, &need256, &tiled)) return -1;
    if (rows <= 0 || m <= 0) return 0;
    need256 |= tiled;  // the many-row products take q8_K values in order, stored or tiled
    long stride32 = need32 ? activation_bytes(T_Q8_0, cols) : 0, stride256 = need256 ? activation_bytes(T_Q4_K, cols) : 0;
    // Freed on return: a prefill's activations (MBs at 7B shapes) are not kept between products.
    uint8_t *activation = malloc((size_t)((stride32 + stride256) * m));
    if (!activation) return -1;
    int level = isa();
    uint8_t *act256 = activation + stride32 * m;
    if (stride32) {
        activation_task prepare = {T_Q8_0, level, x, x_stride, cols, stride32, activation};
        hp_team_run(activation_body, &prepare, m, 1, m * cols >= 65536);
    }
    if (stride256) {
        activation_task prepare = {T_Q4_K, level, x, x_stride, cols, stride256, act256};
        hp_team_run(activation_body, &prepare, m, 1, m * cols >= 65536);
    }
    // The SIMD paths read 32-value activations in groups of rows (group_body); without that memory
    // they run row by row (the same numbers).
    uint8_t *groups = NULL;
    if (stride32 && level >= 1) {
        long count32 = (m + GEMM_RA - 1) / GEMM_RA, nb = cols / QK;
        groups = aligned_alloc(64, (size_t)(count32 * nb * G32_AGB + 63) / 64 * 64);
        if (groups) {
            group_task regroup = {activation, stride32, m, nb, groups};
            hp_team_run(group_body, &regroup, count32, 1, m * cols >= 65536);
        }
    }
    parts_task task = {parts, count, cols, level, accumulate, activation, act256, stride32, stride256, NULL, x, y, m, y_stride, groups};
    hp_team_run(gemm_parts_body, &task, rows, 8, 1);
    free(groups);
    free(activation);
    return 0;
}

int quant_gemm(int type, const void *w, long row_bytes, long rows, long cols, const float *x, long m, long x_stride,
               float *y, long y_stride, int accumulate) {
    quant_part part = {type, w, row_bytes, rows, 0};
    return quant_gemm_parts(&part, 1, cols, x, m, x_stride, y, y_stride, accumulate);
}

// MARK: - Quantizers (ggml's quantize_row_q8_0_ref, _q5_0_ref, _q5_1_ref and _q4_K_ref)

static inline int nearest_int(float v) { return (int)rintf(v); }

static void quantize_q8_0(const float *x, uint8_t *b, long cols) {
    for (long i = 0; i < cols / QK; i++, x += QK, b += 34) {
        float amax = 0;
        for (int j = 0; j < QK; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127, id = d ? 1 / d : 0;
        uint16_t h = float_to_half(d);
        memcpy(b, &h, 2);
        for (int j = 0; j < QK; j++) b[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
    }
}

static void quantize_q5_0(const float *x, uint8_t *b, long cols) {
    for (long i = 0; i < cols / QK; i++, x += QK, b += 22) {
        float amax = 0, max = 0;
        for (int j = 0; j < QK; j++)
            if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
        float d = max / -16, id = d ? 1 / d : 0;
        uint16_t h = float_to_half(d);
        memcpy(b, &h, 2);
        uint32_t qh = 0;
        for (int j = 0; j < QK / 2; ++j) {
            int t0 = (int8_t)(x[j] * id + 16.5f), t1 = (int8_t)(x[j + QK / 2] * id + 16.5f);
            uint8_t x0 = (uint8_t)(t0 < 31 ? t0 : 31), x1 = (uint8_t)(t1 < 31 ? t1 : 31);
            b[6 + j] = (uint8_t)((x0 & 0x0F) | ((x1 & 0x0F) << 4));
            qh |= ((x0 & 0x10u) >> 4) << j;
            qh |= ((x1 & 0x10u) >> 4) << (j + QK / 2);
        }
        memcpy(b + 2, &qh, 4);
    }
}

static void quantize_q5_1(const float *x, uint8_t *b, long cols) {
    for (long i = 0; i < cols / QK; i++, x += QK, b += 24) {
        float min = x[0], max = x[0];
        for (int j = 1; j < QK; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        float d = (max - min) / 31, id = d ? 1 / d : 0;
        uint16_t hd = float_to_half(d), hm = float_to_half(min);
        memcpy(b, &hd, 2);
        memcpy(b + 2, &hm, 2);
        uint32_t qh = 0;
        for (int j = 0; j < QK / 2; ++j) {
            uint8_t x0 = (uint8_t)((x[j] - min) * id + 0.5f), x1 = (uint8_t)((x[j + QK / 2] - min) * id + 0.5f);
            b[8 + j] = (uint8_t)((x0 & 0x0F) | ((x1 & 0x0F) << 4));
            qh |= ((x0 & 0x10u) >> 4) << j;
            qh |= ((x1 & 0x10u) >> 4) << (j + QK / 2);
        }
        memcpy(b + 4, &qh, 4);
    }
}

static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *the_min,
                              uint8_t *Laux, float rmin, float rdelta, int nstep) {
    float min = x[0], max = x[0], sum_w = weights[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min), scale = 1 / iscale, best_error = 0;
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)(l < 0 ? 0 : l > nmax ? nmax : l);
        float diff = scale * L[i] + min - x[i];
        best_error += weights[i] * diff * diff;
    }
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * (x[i] - min));
            l = l < 0 ? 0 : l > nmax ? nmax : l;
            Laux[i] = (uint8_t)l;
            float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; ++i) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                cur_error += weights[i] * diff * diff;
            }
            if (cur_error < best_error) {
                for (int i = 0; i < n; ++i) L[i] = Laux[i];
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

static void quantize_q4_K(const float *x, uint8_t *b, long cols) {
    uint8_t L[QKK], Laux[32];
    float weights[32], mins[QKK / 32], scales[QKK / 32];
    for (long i = 0; i < cols / QKK; i++, x += QKK, b += 144) {
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < QKK / 32; ++j) {
            float sum_x2 = 0;
            for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
            float av_x = sqrtf(sum_x2 / 32);
            for (int l = 0; l < 32; ++l) weights[l] = av_x + fabsf(x[32 * j + l]);
            scales[j] = make_qkx2_quants(32, 15, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -1.f, 0.1f, 20);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        uint8_t *sc = b + 4;
        memset(sc, 0, 12);
        float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f, inv_min = max_min > 0 ? 63.f / max_min : 0.f;
        for (int j = 0; j < QKK / 32; ++j) {
            int ls = nearest_int(inv_scale * scales[j]), lm = nearest_int(inv_min * mins[j]);
            ls = ls > 63 ? 63 : ls;
            lm = lm > 63 ? 63 : lm;
            if (j < 4) {
                sc[j] = (uint8_t)ls;
                sc[j + 4] = (uint8_t)lm;
            } else {
                sc[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
                sc[j - 4] |= (uint8_t)((ls >> 4) << 6);
                sc[j] |= (uint8_t)((lm >> 4) << 6);
            }
        }
        uint16_t hd = float_to_half(max_scale / 63.f), hm = float_to_half(max_min / 63.f);
        memcpy(b, &hd, 2);
        memcpy(b + 2, &hm, 2);
        for (int j = 0; j < QKK / 32; ++j) {
            int s, m;
            scale_min_k4(j, sc, &s, &m);
            float d = half_to_float(hd) * (float)s;
            if (!d) continue;
            float dm = half_to_float(hm) * (float)m;
            for (int ii = 0; ii < 32; ++ii) {
                int l = nearest_int((x[32 * j + ii] + dm) / d);
                L[32 * j + ii] = (uint8_t)(l < 0 ? 0 : l > 15 ? 15 : l);
            }
        }
        uint8_t *q = b + 16;
        for (int j = 0; j < QKK; j += 64, q += 32)
            for (int l = 0; l < 32; ++l) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
    }
}

typedef struct {
    int type;
    const float *src;
    long cols, row_bytes;
    uint8_t *dst;
} quantize_task;

static void quantize_body(void *context, long begin, long end) {
    const quantize_task *t = context;
    for (long r = begin; r < end; r++) {
        if (t->type == T_Q8_0) quantize_q8_0(t->src + r * t->cols, t->dst + r * t->row_bytes, t->cols);
        else if (t->type == T_Q5_0) quantize_q5_0(t->src + r * t->cols, t->dst + r * t->row_bytes, t->cols);
        else if (t->type == T_Q5_1) quantize_q5_1(t->src + r * t->cols, t->dst + r * t->row_bytes, t->cols);
        else quantize_q4_K(t->src + r * t->cols, t->dst + r * t->row_bytes, t->cols);
    }
}

int quant_quantize_rows(int type, const float *src, long rows, long cols, void *dst) {
    if (type != T_Q8_0 && type != T_Q4_K && type != T_Q5_0 && type != T_Q5_1) return -1;
    if (rows <= 0 || cols <= 0) return 0;
    quantize_task task = {type, src, cols, quant_row_bytes(type, cols), dst};
    hp_team_run(quantize_body, &task, rows, 1, rows * cols >= 16384);
    return 0;
}

// MARK: - Tile form (the layout is described at KT_BYTES)

long quant_tiled_bytes(int type, long rows, long cols) {
    long tb = KT_BYTES(type);
    if (!tb || rows < 0 || rows % 8 || cols % QKK) return 0;
    return rows / 8 * (cols / QKK) * tb;
}

typedef struct {
    int type;
    const uint8_t *const *rows;
    long nb, size;
    uint8_t *dst;
} tile_task;

static void tile_body(void *context, long begin, long end) {
    const tile_task *t = context;
    const long tb = KT_BYTES(t->type);
    int simd = HAVE_X86 && isa() >= 1;
    for (long k = begin; k < end; k++)
        for (long i = 0; i < t->nb; i++) {
            const uint8_t *src[8];
            for (int j = 0; j < 8; j++) src[j] = t->rows[8 * k + j] + i * t->size;
            uint8_t *dst = t->dst + (k * t->nb + i) * tb;
            ktile_block(t->type, src, dst, !simd);
#if HAVE_X86
            // The values by 8 × 8 dword transposes (the scalar copy ran about 1.3 GB/s a thread).
            if (simd) ktile_values_avx2(t->type, src, dst);
#endif
        }
}

int quant_tile_rows(int type, const void *const *rows, long count, long cols, void *dst) {
    if (!KT_BYTES(type) || count % 8 || cols % QKK) return -1;
    if (count <= 0 || cols <= 0) return 0;
    tile_task task = {type, (const uint8_t *const *)rows, cols / QKK, quant_block_bytes(type), dst};
    hp_team_run(tile_body, &task, count / 8, 1, count * cols >= 65536);
    return 0;
}

void quant_untile_rows(int type, const void *tiles, long cols, long first, long count, void *dst) {
    const long nb = cols / QKK, tb = KT_BYTES(type), size = quant_block_bytes(type);
    if (!tb) return;
    uint8_t *out = dst;
    for (long r = first; r < first + count; r++)
        for (long i = 0; i < nb; i++, out += size)
            kuntile_block(type, (const uint8_t *)tiles + (r / 8 * nb + i) * tb, (int)(r % 8), out);
}

typedef struct {
    const quant_part *part;
    long first, cols, dst_stride;
    float *dst;
} dequantize_part_task;

static void dequantize_part_body(void *context, long begin, long end) {
    const dequantize_part_task *t = context;
    const quant_part *p = t->part;
    for (long r = begin; r < end; r++) {
        const uint8_t *row = stored_row(p->type, p->w, p->tiled, p->row_bytes, t->cols, t->first + r);
        float *y = t->dst + r * t->dst_stride;
        if (row) dequantize_row(p->type, row, t->cols, y);
        else
            for (long c = 0; c < t->cols; c++) y[c] = NAN;
    }
}

void quant_dequantize_part(const quant_part *part, long first, long count, long cols, float *dst, long dst_stride) {
    if (count <= 0 || cols <= 0 || !quant_block_values(part->type) || (part->tiled && !KT_BYTES(part->type))) return;
    dequantize_part_task task = {part, first, cols, dst_stride, dst};
    hp_team_run(dequantize_part_body, &task, count, 4, count * cols >= 65536);
}

void quant_dequantize_rows(int type, const void *src, long row_bytes, long rows, long cols, float *dst, long dst_stride) {
    quant_part part = {type, src, row_bytes, rows, 0};
    quant_dequantize_part(&part, 0, rows, cols, dst, dst_stride);
}
