#pragma once
// Many-row products with BF16 weights and BF16 dot products (F32 accumulation), for the encoder's
// `--encoder-precision bf16` on CPUs with AVX512-BF16 (vdpbf16ps: two BF16 products per F32 lane).
//
// The activations are rounded to BF16 (nearest even) as they enter the kernel; the weights are
// packed once into panels of 32 output rows so the kernel reads them in order. A portable path
// computes exactly the same sums in the same order (the pair's odd product first, then the even
// one, each rounded into the F32 accumulator, as the instruction does), so the contract can be
// tested on any CPU; it is slow and is used only for that.
//
// bf16w_gemm is the other product on BF16 weights: F32 activations kept exact, the weights (a BF16
// checkpoint's, as stored) widened inside the product (AVX2: sixteen rows at a time into a packed
// F32 panel in cache; AVX-512: in registers) — prefill of BF16 language models without converting
// the matrix to F32 in memory.
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// uint32 words of the packed form of a BF16 matrix of n rows and k columns.
size_t bf16_packed_words(long n, long k);

/// Packs w (n rows of k BF16 values, row stride k) into panels of 32 rows: word (P·⌈k/2⌉ + p)·32 + jj
/// holds row P·32 + jj's columns 2p (low half) and 2p + 1 (high half); zero past n or k.
void bf16_pack_panels(const uint16_t *w, long n, long k, uint32_t *packed);

/// Non-zero when bf16_gemm runs the AVX512-BF16 kernel: the kernel path is avx512 and the CPU has
/// avx512_bf16.
int bf16_gemm_native(void);

/// How BF16-product matrices multiply many rows now: 0 = not at all (callers widen the weights for
/// an F32 GEMM), 1 = the AVX512-BF16 kernel, 2 = the portable emulation of it (only when turned on
/// by bf16_gemm_emulate, and only where the native kernel does not run).
int bf16_gemm_mode(void);

/// Turns the portable emulation on (1) or off (0) process-wide; returns the previous setting. For
/// tests: the native kernel's arithmetic, bounds included, checked on CPUs without AVX512-BF16.
int bf16_gemm_emulate(int on);

/// y[r·y_stride + j] = beta · y[…] + Σ_t bf16(x[r·x_stride + t]) · w[j, t] for r < rows, j < n, with
/// `packed` from bf16_pack_panels(w, n, k). Rows are split over the decode team. `force_portable`
/// takes the portable path even where the native one runs (tests).
void bf16_gemm(const float *x, long rows, long x_stride, const uint32_t *packed, long n, long k, float *y,
               long y_stride, float beta, int force_portable);

/// Non-zero when bf16w_gemm runs here (the avx2 or avx512 kernel path); callers widen otherwise.
int bf16w_gemm_supported(void);

/// Floats of scratch bf16w_gemm needs for `rows` rows of k values (0 when it does not run here).
size_t bf16w_gemm_scratch_floats(long rows, long k);

/// y[r·y_stride + j] = beta · y[…] + Σ_t x[r·x_stride + t] · w[j·w_stride + t] for r < rows, j < n:
/// F32 activations times BF16 weights as stored (row-major), widened in cache, F32 sums (not the
/// BF16 dot products above: the activations keep every bit). x is packed into `scratch`
/// (bf16w_gemm_scratch_floats(rows, k) floats) by tiles of rows; y's columns are split over the
/// decode team; each output's sum runs in the same order whatever the split. Returns -1 (nothing
/// written) where bf16w_gemm_supported() is 0.
int bf16w_gemm(const float *x, long rows, long x_stride, const uint16_t *w, long n, long k, long w_stride, float *y,
               long y_stride, float beta, float *scratch);

#ifdef __cplusplus
}
#endif
