// Finiteness of weights in every format the loaders hold; the contract is in weight_check.h.
// Block layouts as in quant_kernels.c's header comment (ggml-common.h): the F16 scale `d` starts
// the 32-value blocks and Q4_K/Q5_K (then `m` / `dmin` at byte 2), Q6_K ends with it (byte 208).
#include "weight_check.h"
#include "quant_kernels.h"

#include <string.h>

static inline int half_nonfinite(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return (h & 0x7C00) == 0x7C00;
}

/// Per block type: offsets of its F16 scales, `count` of them (0 for an unknown type).
static int scale_offsets(int type, int offsets[2]) {
    switch (type) {
    case 2: case 6: case 8: offsets[0] = 0; return 1;                       // Q4_0, Q5_0, Q8_0
    case 3: case 7: case 12: case 13: offsets[0] = 0; offsets[1] = 2; return 2;  // Q4_1, Q5_1, Q4_K, Q5_K
    case 14: offsets[0] = 208; return 1;                                     // Q6_K
    default: return 0;
    }
}

long weight_first_nonfinite(int type, const void *src, long row_bytes, long rows, long cols) {
    const uint8_t *base = src;
    for (long r = 0; r < rows; r++) {
        const uint8_t *row = base + r * row_bytes;
        switch (type) {
        case 0: {  // F32: exponent bits all set
            for (long c = 0; c < cols; c++) {
                uint32_t u;
                memcpy(&u, row + 4 * c, 4);
                if ((u & 0x7F800000u) == 0x7F800000u) return r * cols + c;
            }
            break;
        }
        case 1:  // F16
            for (long c = 0; c < cols; c++) if (half_nonfinite(row + 2 * c)) return r * cols + c;
            break;
        case 30: {  // BF16: the upper half of an F32
            for (long c = 0; c < cols; c++) {
                uint16_t h;
                memcpy(&h, row + 2 * c, 2);
                if ((h & 0x7F80) == 0x7F80) return r * cols + c;
            }
            break;
        }
        default: {
            int offsets[2];
            int count = scale_offsets(type, offsets);
            long values = quant_block_values(type), bytes = quant_block_bytes(type);
            if (!count || !values) return -2;
            for (long b = 0; b < cols / values; b++) {
                const uint8_t *block = row + b * bytes;
                for (int s = 0; s < count; s++) if (half_nonfinite(block + offsets[s])) return r * cols + b * values;
            }
        }
        }
    }
    return -1;
}
