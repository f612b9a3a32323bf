#pragma once
// The finiteness check weights get at load: a NaN or an infinity in a weight answers nothing
// (every logit NaN) without a word, so loaders refuse such a tensor, naming it.
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The index (row · cols + column) of the first value of `rows` rows of `cols` values (`row_bytes`
/// apart, ggml type numbers as in quant_kernels.h) that is not finite, or -1 when all are finite.
/// Float types are checked value by value; a block type by its F16 scales (and minimums), since
/// its values are those scales times small integers: the index is then the block's first value.
/// Returns -2 for a type not handled here.
long weight_first_nonfinite(int type, const void *src, long row_bytes, long rows, long cols);

#ifdef __cplusplus
}
#endif
