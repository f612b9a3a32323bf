// Kernels for autoregressive decoders that write into caller-owned buffers, so a decode step
// allocates nothing: linear layers into (or added onto) a row range, RMSNorm into a buffer,
// SwiGLU's silu(gate)·up, RoPE by position from precomputed tables, and attention over a KV cache
// laid out per KV head ([kvHeads][capacity][headDimension], each head's keys contiguous).
// One query row (the decode step) goes through CKernels' bandwidth-bound kernels on the decode
// team; several rows through sgemm.
import CKernels
import COpenBLAS

/// `y[r] (+)= x[r] · Wᵀ` for `rows` rows; `weight` is [out, in] as PyTorch stores it. Strides in floats.
/// With `accumulate`, the product is added onto what `y` holds (a residual connection for free).
public func linear(_ x: UnsafePointer<Float>, rows: Int, inputStride: Int, weight: Matrix,
                   into y: UnsafeMutablePointer<Float>, outputStride: Int, accumulate: Bool = false) {
    let n = weight.rows, k = weight.cols
    guard rows > 0, n > 0, k > 0 else { return }
    let beta: Float = accumulate ? 1 : 0
    weight.storage.withUnsafeBufferPointer { w in
        if rows == 1 {
            decode_matvec_f32(w.baseAddress!, n, k, k, x, y, accumulate ? 1 : 0)
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(n), Int32(k), 1,
                        x, Int32(inputStride), w.baseAddress, Int32(k), beta, y, Int32(outputStride))
        }
    }
}

/// RMSNorm of `rows` rows of `width` (Llama: x · rsqrt(mean(x²) + eps) · w) from `x` into `y`.
public func rmsNorm(_ x: UnsafePointer<Float>, rows: Int, width: Int, weight: [Float], eps: Float,
                    into y: UnsafeMutablePointer<Float>) {
    guard width > 0, weight.count == width else { return }
    weight.withUnsafeBufferPointer { pw in
        let w = pw.baseAddress!
        for r in 0..<rows {
            let src = x + r * width, dst = y + r * width
            var acc = Float8(repeating: 0)
            var i = 0
            while i + 8 <= width {
                let v = load8(src + i)
                acc += v * v
                i += 8
            }
            var squares = acc.sum()
            while i < width {
                squares += src[i] * src[i]
                i += 1
            }
            let inv = 1 / (squares / Float(width) + eps).squareRoot()
            let inv8 = Float8(repeating: inv)
            i = 0
            while i + 8 <= width {
                store8(load8(src + i) * inv8 * load8(w + i), dst + i)
                i += 8
            }
            while i < width {
                dst[i] = src[i] * inv * w[i]
                i += 1
            }
        }
    }
}

/// SwiGLU: `gate[i] = silu(gate[i]) · up[i]` for `rows` rows of `width`, gate and up at their strides.
public func siluMultiply(gate: UnsafeMutablePointer<Float>, up: UnsafePointer<Float>, rows: Int, width: Int, stride: Int) {
    for r in 0..<rows { decode_silu_multiply(gate + r * stride, up + r * stride, width) }
}

/// Causal attention of `rows` query rows over the first `length` slots of a KV cache.
/// - query: row r at `query + r · queryStride`, heads side by side (head h at column h · d).
/// - keys, values: `[kvHeads][capacity][d]`; head h reads kv head h / (heads / kvHeads).
/// - firstSlot: the cache slot of query row 0; row r sees slots 0 ... firstSlot + r.
/// - output: row r at `output + r · outputStride`, heads side by side.
/// - scratch: grown when too small, then reused (no allocation in steady state).
public func cachedAttention(query: UnsafePointer<Float>, queryStride: Int, rows: Int, heads: Int,
                            keys: UnsafePointer<Float>, values: UnsafePointer<Float>, kvHeads: Int,
                            headDimension d: Int, capacity: Int, length: Int, firstSlot: Int,
                            output: UnsafeMutablePointer<Float>, outputStride: Int, scratch: inout [Float]) {
    guard rows > 0, length > 0, heads > 0, kvHeads > 0 else { return }
    let group = heads / kvHeads
    let scale = 1 / Float(d).squareRoot()
    if rows == 1 {
        // One query: a direct kernel (scores, softmax and weighted values per kv head and block of
        // positions, split over the decode team); two sgemm calls per kv head cost more than the work.
        let visible = min(length, firstSlot + 1)
        let need = decode_attention_scratch(heads, d, visible)
        if scratch.count < need { scratch = [Float](repeating: 0, count: need) }
        scratch.withUnsafeMutableBufferPointer { ps in
            decode_attention(query, heads, kvHeads, d, keys, values, capacity * d, visible, scale, output, ps.baseAddress!)
        }
        return
    }
    let visible = min(length, firstSlot + rows)
    if fusedAttentionEnabled, decode_prefill_attention_supported(d) != 0 {
        // Several queries, fused (S never leaves L1) and split over the team by head and block of rows.
        let need = decode_prefill_attention_scratch(d, visible)
        if scratch.count < need { scratch = [Float](repeating: 0, count: need) }
        scratch.withUnsafeMutableBufferPointer { ps in
            decode_prefill_attention(query, queryStride, rows, heads, kvHeads, d, keys, values, capacity * d, firstSlot, visible,
                                     scale, output, outputStride, ps.baseAddress!)
        }
        return
    }
    // Otherwise, per head, blocks of at most 128 query rows (S stays within a few MB, and a block only
    // multiplies the keys its rows can see, which skips most of the causal upper triangle).
    let block = max(1, min(rows, 128, (1 << 20) / length))
    if scratch.count < block * length { scratch = [Float](repeating: 0, count: block * length) }
    scratch.withUnsafeMutableBufferPointer { ps in
        let s = ps.baseAddress!
        for h in 0..<heads {
            let kvh = h / group
            let k = keys + kvh * capacity * d, v = values + kvh * capacity * d
            var r0 = 0
            while r0 < rows {
                let n = min(block, rows - r0)
                let width = min(length, firstSlot + r0 + n)  // keys any row of the block may see
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(width), Int32(d), scale,
                            query + r0 * queryStride + h * d, Int32(queryStride), k, Int32(d), 0, s, Int32(width))
                for i in 0..<n {
                    let row = s + i * width
                    let visible = min(width, firstSlot + r0 + i + 1)
                    softmaxRow(row, visible)
                    if visible < width { (row + visible).update(repeating: 0, count: width - visible) }
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(d), Int32(width), 1,
                            s, Int32(width), v, Int32(d), 0, output + r0 * outputStride + h * d, Int32(outputStride))
                r0 += n
            }
        }
    }
}
