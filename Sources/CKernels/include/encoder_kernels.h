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

#ifdef __cplusplus
}
#endif
