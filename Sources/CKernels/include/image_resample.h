#pragma once
// One pass of a separable, antialiased resize of 8-bit pixels with fixed-point weights: the
// arithmetic of PyTorch's uint8 `interpolate(..., antialias=True)` on a CPU (what torchvision's
// resize runs for a uint8 tensor, and so what transformers' video processors compute). The caller
// (Vision/ImageResampling.swift) computes the weights; these only apply them.
//
// For output index o the taps are source indices first[o] ..< first[o] + count[o], with int16
// weights weights[o · max_taps + k] scaled by 2^precision:
//     out = clamp((2^(precision − 1) + Σ_k weights[o·max_taps + k] · src[first[o] + k]) >> precision, 0, 255)
// accumulated in int32 (the weights' precision is chosen so that the sum cannot overflow).
// The vertical pass has an AVX2 path; both give the same bytes as the portable C.
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Resizes each of `rows` rows of `src` (src_width pixels of `channels` interleaved bytes, row
/// stride src_width · channels) to dst_width pixels in `dst` (row stride dst_width · channels).
void hp_resample_horizontal_u8(const uint8_t *src, ptrdiff_t src_width, ptrdiff_t rows, ptrdiff_t channels,
                               uint8_t *dst, ptrdiff_t dst_width, const int32_t *first, const int32_t *count,
                               const int16_t *weights, ptrdiff_t max_taps, int precision);

/// Resizes columns: output row o of `dst` (dst_rows rows of row_bytes bytes) is the weighted sum of
/// source rows first[o] ..< first[o] + count[o] of `src` (rows of row_bytes bytes).
void hp_resample_vertical_u8(const uint8_t *src, ptrdiff_t row_bytes, uint8_t *dst, ptrdiff_t dst_rows,
                             const int32_t *first, const int32_t *count, const int16_t *weights, ptrdiff_t max_taps,
                             int precision);

#ifdef __cplusplus
}
#endif
