#pragma once
// Encoder element-wise kernels: softmax rows (with HiPrune score accumulation), GELU (tanh form)
// with its bias, layer norm with the residual's bias folded in. Single-threaded; callers split rows
// over threads. Every kernel runs the path cpu_features.h's hp_isa_active() names (AVX-512,
// AVX2 + FMA, or portable C); both use the same exp polynomial (Cephes, ≈ 1 ulp).
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// row[j] = e^(row[j] - max(row)) for j < count (count ≥ 1); returns the sum of the new values.
float enc_exp_row(float *row, ptrdiff_t count);

/// Softmax of count ≥ 1 floats in place.
void enc_softmax_row(float *row, ptrdiff_t count);

/// acc[j] += row[j] · factor.
void enc_accumulate_scaled(const float *row, float factor, float *acc, ptrdiff_t count);

/// One block of attention logits [rows, width], in place: row i keeps its first
/// v_i = min(width, visible + i) columns (v_i ≥ 1), which become e^(s - max) (unnormalised), and
/// zeros after them; inverse[i] = 1 / Σ of row i. With `scores`, scores[j] += softmax(row i)[j]
/// for every row (the attention key j receives). Non-causal callers pass visible = width.
void enc_softmax_block(float *logits, ptrdiff_t rows, ptrdiff_t width, ptrdiff_t visible,
                       float *inverse, float *scores);

/// Non-zero when enc_attention_head runs for head dimension d (AVX2 + FMA and d a multiple of 8);
/// otherwise callers take their BLAS path.
int enc_attention_supported(ptrdiff_t d);

/// Floats of scratch enc_attention_head needs for `keys` keys of head dimension d.
ptrdiff_t enc_attention_scratch(ptrdiff_t keys, ptrdiff_t d);

/// One head of attention, fused: for blocks of 6 queries, S = q·kᵀ·scale (keys packed once per
/// call), softmax rows, out = P·v — the block of S never leaves L1, and nothing is packed or zeroed
/// per block as a BLAS GEMM would. Query i sees the first min(keys, visible + i) keys (causal
/// callers pass the cache position of query 0 plus one; full attention passes keys), and a block
/// computes only the keys its rows see. Row i of q/k/v starts at base + i · stride; out rows are
/// out_stride apart. With `scores`, scores[j] += softmax(row i)[j] for every query i.
/// Requires enc_attention_supported(d) and visible ≥ 1; `scratch` holds enc_attention_scratch(keys, d) floats.
void enc_attention_head(const float *q, ptrdiff_t q_stride, const float *k, const float *v, ptrdiff_t kv_stride,
                        ptrdiff_t queries, ptrdiff_t keys, ptrdiff_t visible, ptrdiff_t d, float scale,
                        float *out, ptrdiff_t out_stride, float *scores, float *scratch);

/// x[r, c] = gelu_tanh(x[r, c] + bias[c]) over rows of `cols` floats `stride` apart; bias may be NULL.
/// gelu_tanh(v) = 0.5·v·(1 + tanh(u)) = v · sigmoid(2u), u = √(2/π)·(v + 0.044715·v³).
void enc_bias_gelu_tanh(float *x, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t stride, const float *bias);

/// SiLU in place: x · sigmoid(x).
void enc_silu(float *x, ptrdiff_t count);

/// x · sigmoid(β·x) in place: SiLU at β = 1, CLIP's QuickGELU at β = 1.702.
void enc_sigmoid_gate(float *x, ptrdiff_t count, float beta);

/// Layer norm of each row (biased variance, as torch.nn.LayerNorm):
/// out[r] = (x[r] - mean) / √(var + eps) · weight + bias. With `residual_bias` (may be NULL),
/// x[r] += residual_bias first and is written back: the bias of the projection that produced
/// the residual costs no pass of its own. x and out rows are `cols` floats apart.
void enc_layer_norm(float *x, ptrdiff_t rows, ptrdiff_t cols, const float *residual_bias,
                    const float *weight, const float *bias, float eps, float *out);

/// x[r, c] += row[c] over rows of `cols` floats `stride` apart.
void enc_add_row(float *x, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t stride, const float *row);

/// x[j] *= factor.
void enc_scale(float *x, ptrdiff_t count, float factor);

/// Floats of the packed form of an F32 weight matrix of n rows (outputs) and k columns (inputs), as
/// enc_gemm_pack writes it (0 for an empty matrix).
size_t enc_gemm_packed_floats(ptrdiff_t n, ptrdiff_t k);

/// Packs w (n rows of k floats, `w_stride` apart) into panels of 16 rows: packed[(p·k + t)·16 + jj]
/// = w[p·16 + jj][t], zero past row n. `packed` is 64-byte aligned and holds
/// enc_gemm_packed_floats(n, k) floats.
void enc_gemm_pack(const float *w, ptrdiff_t n, ptrdiff_t k, ptrdiff_t w_stride, float *packed);

/// What enc_gemm_packed does with a finished sum s = Σ_t x[r, t] · w[j, t].
enum {
    ENC_GEMM_STORE = 0,       ///< y = s (+ bias)
    ENC_GEMM_ACCUMULATE = 1,  ///< y = y + s (+ bias): a residual added in place
    ENC_GEMM_GELU_TANH = 2,   ///< y = gelu_tanh(s + bias), as enc_bias_gelu_tanh
};

/// Rows of x packed at once (a chunk) for a product of `rows` rows and k inputs: whole tiles of 6,
/// so that the packed chunk stays within L3 (at most 8 MB); `rows` when it is smaller.
ptrdiff_t enc_gemm_chunk_rows(ptrdiff_t rows, ptrdiff_t k);

/// Floats of a packed chunk of `rows` rows of k inputs (enc_gemm_xpack).
size_t enc_gemm_xpack_floats(ptrdiff_t rows, ptrdiff_t k);

/// Packs tiles tile_begin ..< tile_end (6 rows each, the last may hold fewer: its missing rows repeat
/// its first and are never stored) of x's `rows` rows into xp, tile i at xp + 6·i·k as [k][6].
/// Tiles are independent: threads may pack disjoint ranges of one chunk at once.
void enc_gemm_xpack(const float *x, ptrdiff_t rows, ptrdiff_t x_stride, ptrdiff_t k, ptrdiff_t tile_begin, ptrdiff_t tile_end,
                    float *xp);

/// y[r, j] for r < rows and col_begin ≤ j < col_end from a packed chunk (enc_gemm_xpack, all its
/// tiles) and the packed weights (n × k, enc_gemm_pack), with `epilogue` and the optional bias[j]
/// applied while the tile is in registers: no pass of its own over y. col_begin is a multiple of 16
/// (callers split columns over threads on panel boundaries, in pairs for the AVX-512 tiles); each
/// output's sum runs t ascending whatever the split. Single-threaded.
void enc_gemm_panels(const float *xp, ptrdiff_t rows, const float *packed, ptrdiff_t n, ptrdiff_t k, ptrdiff_t col_begin,
                     ptrdiff_t col_end, const float *bias, int epilogue, float *y, ptrdiff_t y_stride);

/// enc_gemm_xpack and enc_gemm_panels chunk after chunk on this thread, the chunk's buffer allocated
/// here: returns 0, or -1 when it could not be had (y untouched).
int enc_gemm_packed(const float *x, ptrdiff_t rows, ptrdiff_t x_stride, const float *packed, ptrdiff_t n, ptrdiff_t k,
                    ptrdiff_t col_begin, ptrdiff_t col_end, const float *bias, int epilogue, float *y,
                    ptrdiff_t y_stride);

#ifdef __cplusplus
}
#endif
