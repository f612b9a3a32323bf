#pragma once
// Decode-step kernels (single-token matrix-vector products and attention of one query row).
//
// A decode step reads every weight once, so these kernels are bound by memory bandwidth: they
// stream rows with AVX-512 or AVX2 + FMA (chosen at run time by cpu_features.h; portable C
// otherwise) and split the work over a
// persistent team of threads (one per online core, or HIPRUNE_THREADS) that the calling thread joins.
// Work is handed out in shrinking claims from an atomic cursor, so a worker that wakes late (or is
// descheduled) never stalls the caller: the caller just claims more. Every output element is
// computed by the same instruction sequence whichever thread computes it, so results do not depend
// on the split or on the number of threads.
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// y[r] = Σ_c w[r·stride + c] · x[c] for r in 0 ..< rows (plus y[r] first when `accumulate`).
/// `w` holds `rows` rows of `cols` floats, `stride` floats apart (stride ≥ cols).
void decode_matvec_f32(const float *w, long rows, long cols, long stride, const float *x, float *y,
                       int accumulate);

/// The same with `w` in BF16: each uint16 is the high half of an IEEE float.
void decode_matvec_bf16(const uint16_t *w, long rows, long cols, long stride, const float *x, float *y,
                        int accumulate);

/// Attention of one query row over `length` cached positions.
/// - query: `heads` heads of `head_dim` floats side by side; head h reads kv head h / (heads / kv_heads).
/// - keys, values: kv head k's position j at `k · kv_head_stride + j · head_dim`.
/// - output: `heads · head_dim` floats, heads side by side.
/// - partials: `decode_attention_scratch(heads, head_dim, length)` floats of scratch.
/// Long contexts are split into blocks of positions whose partial softmax sums are merged at the end,
/// so one kv head's cache is read by every core at once.
void decode_attention(const float *query, long heads, long kv_heads, long head_dim,
                      const float *keys, const float *values, long kv_head_stride, long length,
                      float scale, float *output, float *partials);

/// Non-zero when decode_prefill_attention runs for this head dimension (AVX2 + FMA and a multiple of
/// 8: the fused kernel of encoder_kernels.h); otherwise callers take their BLAS path.
int decode_prefill_attention_supported(long head_dim);

/// Floats of scratch `decode_prefill_attention` needs for `length` cache slots (one slice per team thread).
long decode_prefill_attention_scratch(long head_dim, long length);

/// Causal attention of `rows` query rows over a KV cache, on the team: query row r (at
/// query + r · query_stride, heads side by side) sees cache slots 0 ... first_slot + r of its kv head
/// (head h reads kv head h / (heads / kv_heads); kv head g's keys start at keys + g · kv_head_stride,
/// one row of head_dim floats per slot); row r of the output at output + r · output_stride. The length
/// is the slots written (≥ first_slot + rows). Requires decode_prefill_attention_supported(head_dim).
void decode_prefill_attention(const float *query, long query_stride, long rows, long heads, long kv_heads, long head_dim,
                              const float *keys, const float *values, long kv_head_stride, long first_slot, long length,
                              float scale, float *output, long output_stride, float *scratch);

/// SwiGLU's gate: gate[i] = silu(gate[i]) · up[i] = gate[i] / (1 + e^-gate[i]) · up[i] for i < count.
void decode_silu_multiply(float *gate, const float *up, long count);

/// destination[i] = the F32 value of BF16 source[i] for i < count (widening a matrix before a
/// many-row product), on the team.
void decode_widen_bf16(const uint16_t *source, float *destination, long count);

/// Floats of scratch `decode_attention` needs.
long decode_attention_scratch(long heads, long head_dim, long length);

/// Σ data[0 ..< count], read by the whole team (a memory-bandwidth probe).
double decode_stream_sum(const float *data, long count);

/// `bytes` of zeroed memory for weights, 64-byte aligned, from regions the kernel is asked to back
/// with 2 MiB pages (a decode step streams every weight once; small pages would cost a TLB miss
/// every 4 KiB). Small allocations share 32 MiB regions. NULL when memory is exhausted.
void *decode_weights_allocate(long bytes);

/// Returns memory from `decode_weights_allocate` (NULL is ignored).
void decode_weights_release(void *pointer);

/// Maps `bytes` of the open file `fd` read-only (private) at a 2 MiB-aligned address and asks for
/// 2 MiB pages (a decode step streams every weight once: 4 KiB pages cost a TLB miss and a restart
/// of the hardware prefetchers every 4 KiB). Linux maps a file with 2 MiB pages only where its page
/// cache holds 2 MiB folios: when a probe of the file's second 2 MiB finds 4 KiB pages cached, those
/// 2 MiB are dropped from the page cache (only pages no process maps) and read again; if they then
/// come back as one page (the file system has large folios), the rest of the file is dropped too,
/// to be read again as 2 MiB folios as it is touched (once: later mappings find them cached).
/// NULL when the file cannot be mapped (errno set).
void *decode_map_weights_file(int fd, long bytes);

/// Hands the allocator's freed but still resident heap back to the system (glibc's malloc_trim;
/// nothing elsewhere). For measurements of resident memory.
void decode_heap_trim(void);

/// Threads that take part in a product: the caller plus the workers.
int decode_team_size(void);

/// Turns the team on (1) or off (0: every kernel runs on the calling thread); returns the previous state.
int decode_team_enable(int enabled);

/// Units (rows of a product, blocks of attention) of the last team task that the workers, not the
/// caller, computed; for tests and benchmarks.
long decode_team_worker_chunks(void);

#ifdef __cplusplus
}
#endif
