// Multi-head scaled dot-product attention with optional capture of HiPrune token scores.
//
// Layout: query [queries, heads · d], key and value [keys, kvHeads · d]; head h reads kv head
// h / (heads / kvHeads) (grouped-query attention). The output is [queries, heads · d], heads side
// by side, ready for the output projection.
//
// Attention with a head width that is a multiple of 8 on an AVX2 + FMA CPU (every ViT and decoder
// here), full or causal, runs the fused C kernel enc_attention_head: per head, blocks of 6 query rows
// go through S = Q K_hᵀ · scale, softmax and P V_h without S leaving L1 (no BLAS packing or zeroing
// of S per block). Otherwise (odd widths, other CPUs), per head, query rows are processed in blocks:
// S = Q_h K_hᵀ · scale (one sgemm), softmax of each row, O_h = P V_h (one sgemm written straight
// into the output's columns). Either way, when scores are asked for, each softmax row is added
// into a per-key sum while it is still hot: score[j] = mean over heads and queries of
// softmax(QKᵀ)[i, j] (docs/HIPRUNE.md).
import CKernels
import COpenBLAS
import Dispatch
import Foundation

public struct AttentionResult: Sendable {
    /// [queries, heads · headDimension].
    public var output: Matrix
    /// Per key: attention received, averaged over heads and queries; nil unless asked for.
    public var scores: [Float]?
}

/// Attention of `query` over `key`/`value`.
/// - causal: query i attends keys 0 ... keyOffset + i only. With a KV cache holding `past` tokens
///   before the current queries, pass `keyOffset: past`.
/// - scale: defaults to 1/√headDimension.
public func attention(query: Matrix, key: Matrix, value: Matrix, heads: Int, kvHeads: Int? = nil,
                      causal: Bool = false, keyOffset: Int = 0, scale: Float? = nil,
                      captureScores: Bool = false) throws(TensorError) -> AttentionResult {
    let kvHeads = kvHeads ?? heads
    guard heads > 0, kvHeads > 0, heads % kvHeads == 0, query.cols % heads == 0 else {
        throw .invalidArgument(operation: "attention", detail: "\(heads) heads, \(kvHeads) kv heads, query width \(query.cols)")
    }
    let d = query.cols / heads
    guard key.cols == kvHeads * d, value.cols == kvHeads * d, key.rows == value.rows else {
        throw .shapeMismatch(operation: "attention",
                             detail: "query \(query.rows)x\(query.cols), key \(key.rows)x\(key.cols), value \(value.rows)x\(value.cols)")
    }
    guard keyOffset >= 0, !causal || keyOffset < key.rows || query.rows == 0 else {
        throw .invalidArgument(operation: "attention", detail: "key offset \(keyOffset) for \(key.rows) keys")
    }
    let nq = query.rows, nk = key.rows
    var output = Matrix(rows: nq, cols: heads * d)
    var scores = [Float](repeating: 0, count: captureScores ? nk : 0)
    guard nq > 0, nk > 0, d > 0 else { return AttentionResult(output: output, scores: captureScores ? scores : nil) }
    query.storage.withUnsafeBufferPointer { pq in
        key.storage.withUnsafeBufferPointer { pk in
            value.storage.withUnsafeBufferPointer { pv in
                output.storage.withUnsafeMutableBufferPointer { po in
                    scores.withUnsafeMutableBufferPointer { ps in
                        // An empty array may still have a base address: only hand it out when capturing.
                        attention(query: pq.baseAddress!, queryStride: query.cols, key: pk.baseAddress!, value: pv.baseAddress!,
                                  keyValueStride: key.cols, queries: nq, keys: nk, heads: heads, kvHeads: kvHeads,
                                  headDimension: d, causal: causal, keyOffset: keyOffset, scale: scale,
                                  output: po.baseAddress!, scores: captureScores ? ps.baseAddress : nil)
                    }
                }
            }
        }
    }
    return AttentionResult(output: output, scores: captureScores ? scores : nil)
}

/// Attention on caller-owned memory, for models that keep q, k and v side by side in one buffer
/// (a fused projection): row i of query head h starts at `query + i · queryStride + h · d`, key and
/// value rows likewise with `keyValueStride`; `output` is [queries, heads · d], dense. `scores`, when
/// given, receives `keys` values (overwritten). Shapes are the caller's to validate.
public func attention(query: UnsafePointer<Float>, queryStride: Int, key: UnsafePointer<Float>, value: UnsafePointer<Float>,
                      keyValueStride: Int, queries nq: Int, keys nk: Int, heads: Int, kvHeads: Int, headDimension d: Int,
                      causal: Bool = false, keyOffset: Int = 0, scale: Float? = nil,
                      output: UnsafeMutablePointer<Float>, scores: UnsafeMutablePointer<Float>?) {
    guard nq > 0, nk > 0, d > 0, heads > 0, kvHeads > 0, heads % kvHeads == 0 else { return }
    let scale = scale ?? 1 / Float(d).squareRoot()
    if fusedAttentionEnabled, enc_attention_supported(d) != 0 {
        return fusedAttention(query: query, queryStride: queryStride, key: key, value: value, keyValueStride: keyValueStride,
                              queries: nq, keys: nk, visible: causal ? keyOffset + 1 : nk, heads: heads, kvHeads: kvHeads,
                              headDimension: d, scale: scale, output: output, scores: scores)
    }
    let group = heads / kvHeads
    // ~1 MB of S per block: fits L2 beside the rows of K and V being streamed.
    let block = max(8, min(nq, (1 << 18) / nk))
    // Large attention runs heads in parallel, each worker on its own heads with single-threaded
    // BLAS: no synchronisation between the GEMMs and the softmax, and no OpenBLAS threads spinning
    // beside Swift threads. Small attention (a decode step) stays on this thread with BLAS's threads.
    let parallel = heads >= 2 && nq * nk >= 64 * 64
    let workers = parallel ? min(heads, max(1, ProcessInfo.processInfo.activeProcessorCount)) : 1
    let capture = scores != nil
    // Per worker: a block of S, the block's 1/row-sum, and (capturing) a per-key sum.
    let perWorker = block * nk + block + (capture ? nk : 0)
    var scratch = [Float](repeating: 0, count: workers * perWorker)
    let qStride = queryStride, kvStride = keyValueStride, oStride = heads * d

    scratch.withUnsafeMutableBufferPointer { pscratch in
        let q = ReadPointer(query), k = ReadPointer(key), v = ReadPointer(value)
        let o = SendablePointer(output), s = SendablePointer(pscratch.baseAddress!)
        let work: @Sendable (Int) -> Void = { worker in
            let logits = s.pointer! + worker * perWorker
            let inverse = logits + block * nk
            let acc: UnsafeMutablePointer<Float>? = capture ? inverse + block : nil
            var h = worker
            while h < heads {
                let kvh = h / group
                var q0 = 0
                while q0 < nq {
                    let rows = min(block, nq - q0)
                    // Keys any row of this block may see.
                    let width = causal ? min(nk, keyOffset + q0 + rows) : nk
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(width), Int32(d),
                                scale, q.pointer + q0 * qStride + h * d, Int32(qStride),
                                k.pointer + kvh * d, Int32(kvStride), 0, logits, Int32(width))
                    // Rows stay unnormalised (e^(s - max)) through P·V; 1/sum is applied to the d
                    // outputs of the row instead of to its `width` probabilities. Score sums are
                    // taken row by row while each row is still in L1.
                    enc_softmax_block(logits, rows, width, causal ? keyOffset + q0 + 1 : width, inverse, acc)
                    let out = o.pointer! + q0 * oStride + h * d
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(d), Int32(width),
                                1, logits, Int32(width), v.pointer + kvh * d, Int32(kvStride),
                                0, out, Int32(oStride))
                    for i in 0..<rows { enc_scale(out + i * oStride, d, inverse[i]) }
                    q0 += rows
                }
                h += workers
            }
        }
        if workers > 1 {
            // Read before the first set: the lazily initialised global would otherwise record the 1.
            let restore = blasThreads
            openblas_set_num_threads(1)
            DispatchQueue.concurrentPerform(iterations: workers, execute: work)
            openblas_set_num_threads(restore)
        } else {
            work(0)
        }
        guard let scores else { return }
        let norm = 1 / Float(heads * nq)
        scores.update(repeating: 0, count: nk)
        for w in 0..<workers { enc_accumulate_scaled(pscratch.baseAddress! + w * perWorker + block * nk + block, norm, scores, nk) }
    }
}

/// Attention through the fused C kernel (enc_attention_head), heads split over the cores; query i
/// sees the first min(keys, visible + i) keys (visible = keys: full attention):
/// S = QKᵀ never exists beyond a block of 6 rows in L1, so nothing is packed, zeroed or streamed
/// through memory per block as with two BLAS GEMMs per block.
private func fusedAttention(query: UnsafePointer<Float>, queryStride: Int, key: UnsafePointer<Float>, value: UnsafePointer<Float>,
                            keyValueStride: Int, queries nq: Int, keys nk: Int, visible: Int, heads: Int, kvHeads: Int,
                            headDimension d: Int, scale: Float, output: UnsafeMutablePointer<Float>, scores: UnsafeMutablePointer<Float>?) {
    let group = heads / kvHeads
    let workers = nq * nk >= 64 * 64 ? min(heads, max(1, ProcessInfo.processInfo.activeProcessorCount)) : 1
    let capture = scores != nil
    let perWorker = enc_attention_scratch(nk, d) + (capture ? nk : 0)
    var scratch = [Float](repeating: 0, count: workers * perWorker)
    let oStride = heads * d
    scratch.withUnsafeMutableBufferPointer { pscratch in
        let q = ReadPointer(query), k = ReadPointer(key), v = ReadPointer(value)
        let o = SendablePointer(output), s = SendablePointer(pscratch.baseAddress!)
        let work: @Sendable (Int) -> Void = { worker in
            let buffer = s.pointer! + worker * perWorker
            let acc: UnsafeMutablePointer<Float>? = capture ? buffer + perWorker - nk : nil
            var h = worker
            while h < heads {
                let kvh = h / group
                enc_attention_head(q.pointer + h * d, queryStride, k.pointer + kvh * d, v.pointer + kvh * d, keyValueStride,
                                   nq, nk, visible, d, scale, o.pointer! + h * d, oStride, acc, buffer)
                h += workers
            }
        }
        if workers > 1 {
            DispatchQueue.concurrentPerform(iterations: workers, execute: work)
        } else {
            work(0)
        }
        guard let scores else { return }
        scores.update(repeating: 0, count: nk)
        for w in 0..<workers {
            enc_accumulate_scaled(pscratch.baseAddress! + (w + 1) * perWorker - nk, 1 / Float(heads * nq), scores, nk)
        }
    }
}

/// Whether full attention may take the fused kernel (HIPRUNE_FUSED_ATTENTION=0 forces the BLAS path,
/// for benchmarks that compare the two).
let fusedAttentionEnabled = ProcessInfo.processInfo.environment["HIPRUNE_FUSED_ATTENTION"] != "0"

/// OpenBLAS's thread count as the process started (read once, so that concurrent attention calls
/// always restore the same value). A Swift global is initialised on first use: callers read it
/// before they change the count, or it would hold their 1 and leave BLAS single-threaded for the
/// rest of the process (it did: every GEMM after the first encoder layer ran on one core).
let blasThreads: Int32 = openblas_get_num_threads()

/// A pointer handed to worker threads that write disjoint ranges behind it.
struct SendablePointer: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Float>?
    init(_ pointer: UnsafeMutablePointer<Float>?) { self.pointer = pointer }
}

/// A read-only pointer handed to worker threads.
struct ReadPointer: @unchecked Sendable {
    let pointer: UnsafePointer<Float>
    init(_ pointer: UnsafePointer<Float>) { self.pointer = pointer }
}
