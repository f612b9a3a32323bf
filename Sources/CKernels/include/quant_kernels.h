#pragma once
// Kernels for weights held in llama.cpp's (ggml's) block formats, exactly as ggml-common.h lays the
// blocks out (types are ggml's numbers: Q4_0 2, Q4_1 3, Q5_0 6, Q5_1 7, Q8_0 8, Q4_K 12, Q5_K 13,
// Q6_K 14; F16 1 and BF16 30 are handled beside them where noted).
//
// A single-row product (the decode step) quantizes the activation once per product, as llama.cpp
// does: to 8-bit blocks of 32 (scale amax/127, for the 32-value block types) or of 256 with sums of
// each 16 (ggml's q8_K, for the K-quants). Each weight row is then an integer dot product per block
// (AVX2 maddubs, or AVX-512 VNNI dpbusd where the CPU has it, or portable C) scaled in F32; rows
// repacked at load (quant_tile_rows) run 8 rows per pass with the rows in the lanes. Rows are
// split over the decode team; a row's result depends only on the row, the activation and the
// instruction set, never on the thread that computes it.
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Values per block of `type` (1 for F16/BF16/F32), or 0 when the type is not handled here.
long quant_block_values(int type);

/// Bytes per block of `type`, or 0 when the type is not handled here.
long quant_block_bytes(int type);

/// Bytes of one row of `cols` values (cols a multiple of the block).
long quant_row_bytes(int type, long cols);

/// Dequantizes `rows` rows of `cols` values (`row_bytes` apart) into `dst` (rows `dst_stride`
/// floats apart), as ggml's dequantize_row_* does. Large jobs run on the decode team.
void quant_dequantize_rows(int type, const void *src, long row_bytes, long rows, long cols, float *dst,
                           long dst_stride);

/// y[r] (+)= Σ_c W[r, c] · x[c] for r < rows, `W` in `type` blocks (rows `row_bytes` apart; F16 too).
/// `x` is quantized first (into per-thread scratch grown as needed; the call allocates only when a
/// wider activation than before arrives). Returns -1 when that memory cannot be had, else 0.
int quant_matvec(int type, const void *w, long row_bytes, long rows, long cols, const float *x, float *y,
                 int accumulate);

/// Y[i, r] (+)= Σ_c W[r, c] · X[i, c] for i < m, r < rows (X rows `x_stride` floats apart, Y rows
/// `y_stride`): the many-row product with integer dot products. Each row of X is quantized as
/// quant_matvec quantizes it. 32-value types: the quantized rows are regrouped five at a time,
/// weights packed once per panel of rows (eight rows' bytes interleaved four at a time, scales as
/// F32) and multiplied in register tiles of eight weight rows (the lanes) × five rows of X. K-quants:
/// tiles of 8 weight rows packed once per panel (four values of each row per register, 16-bit
/// scales), each tile against four rows of X at a time, 16 blocks at a time, the 8 rows' sums in the
/// lanes. Every Y[i, r] equals what quant_matvec gives for X[i], bit for bit, on every instruction
/// set, portable included. Rows of W are split over the decode team. Returns -1 for a type without an
/// integer path (F16, BF16, F32) or when the quantized activations (freed on return) cannot be had,
/// else 0.
int quant_gemm(int type, const void *w, long row_bytes, long rows, long cols, const float *x, long m, long x_stride,
               float *y, long y_stride, int accumulate);

/// One run of rows of a stacked matrix: `rows` rows of `type` blocks, `row_bytes` apart, at `w`; or,
/// with `tiled`, the same rows in the 8-row tile form of quant_tile_rows at `w` (row_bytes still the
/// stored row's bytes).
typedef struct {
    int type;
    const void *w;
    long row_bytes;
    long rows;
    int tiled;
} quant_part;

/// Block-format weights (Q4_K, Q5_K, Q6_K; Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) repacked once (at load)
/// into tiles of 8 rows with the rows in the lanes, which the single-row and the many-row products
/// read directly: per tile and block, the 8 rows' values four a lane (a dword of each row per
/// register; Q5_0/Q5_1's fifth bits spread into the bytes at load), K-quants' sub-block scales and
/// minimums unpacked to a byte per row, d (and dmin, or m) as halves. The 32-value types' tiles are
/// exactly the stored bytes, the K-quants' about 1.03× them. Same bits as the stored form on every
/// path. Bytes of the tile form of `rows` rows (a multiple of 8) of `cols` values, or 0 when `type`
/// has none.
long quant_tiled_bytes(int type, long rows, long cols);

/// Repacks the stored rows `rows[0 ..< count]` (count a multiple of 8; each cols values in `type`
/// blocks) into tile form at `dst` (quant_tiled_bytes, 32-byte aligned). Runs on the decode team.
/// Returns 0, or -1 for a type without a tile form.
int quant_tile_rows(int type, const void *const *rows, long count, long cols, void *dst);

/// The stored bytes of rows first ..< first + count of a tile-form part (`tiles`, rows of cols
/// values) into `dst` (rows contiguous): exactly the bytes quant_tile_rows read.
void quant_untile_rows(int type, const void *tiles, long cols, long first, long count, void *dst);

/// quant_dequantize_rows for rows first ..< first + count of `part` (stored or tiled).
void quant_dequantize_part(const quant_part *part, long first, long count, long cols, float *dst, long dst_stride);

/// quant_matvec over the rows of `count` parts one after another (y's rows in the same order): the
/// activation quantized once per block size the parts need, one team run for all rows; each row's
/// result is what quant_matvec gives for its part. Returns -1 for a part of another type (F32, BF16)
/// or when the activation's memory cannot be had, else 0.
int quant_matvec_parts(const quant_part *parts, long count, long cols, const float *x, float *y, int accumulate);

/// quant_gemm over the rows of `count` parts one after another (Y's columns in the same order), as
/// quant_matvec_parts does for one row. Returns -1 for a part without an integer path (F16, BF16,
/// F32) or when the quantized activations cannot be had, else 0.
int quant_gemm_parts(const quant_part *parts, long count, long cols, const float *x, long m, long x_stride, float *y,
                     long y_stride, int accumulate);

/// Whether quant_gemm takes `type` (the block formats; not F16, BF16, F32).
int quant_gemm_supported(int type);

/// Quantizes `rows` rows of `cols` floats into `type` blocks at `dst` (rows contiguous) with ggml's
/// reference quantizers: Q8_0 (round to nearest, scale amax/127), Q5_0 (scale max/−16), Q5_1 (scale
/// (max − min)/31 and minimum) and Q4_K (make_qkx2 scale and min search). Returns 0, or -1 for
/// another type. Runs on the decode team.
int quant_quantize_rows(int type, const float *src, long rows, long cols, void *dst);

/// Instruction sets: 0 portable C, 1 AVX2 (+FMA, F16C), 2 AVX-512 VNNI (256-bit, with AVX-512VL).
/// The best the CPU has is chosen at first use.
int quant_best_isa(void);

/// Uses instruction set `isa` when the CPU has it (else the best it has below it); returns the
/// previous choice. Process-wide; for tests and benchmarks.
int quant_use_isa(int isa);

/// "portable", "avx2" or "avx512vnni": the kernels in use.
const char *quant_kernel_isa(void);

#ifdef __cplusplus
}
#endif
