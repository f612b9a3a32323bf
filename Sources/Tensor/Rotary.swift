// Rotary position embeddings as transformers computes them for Llama-style decoders:
// inv_freq[i] = 1 / theta^(2i / dim), angle = position · inv_freq, tables cat(angle, angle),
// applied as x · cos + rotate_half(x) · sin with rotate_half(x) = cat(-x₂, x₁) per head.
import Foundation

/// cos/sin tables, [positions, dimension], in the repeated-half layout transformers uses.
public struct RotaryTables: Sendable {
    public let cos: Matrix
    public let sin: Matrix
    public var dimension: Int { cos.cols }

    /// The default (unscaled) inverse frequencies, computed in Float32 like transformers.
    public static func inverseFrequencies(dimension: Int, theta: Float) -> [Float] {
        stride(from: 0, to: dimension, by: 2).map { i in 1 / Foundation.pow(theta, Float(i) / Float(dimension)) }
    }

    /// Tables for `positions` from the default frequencies of `theta`.
    public init(positions: [Int], dimension: Int, theta: Float, attentionScaling: Float = 1) throws(TensorError) {
        guard dimension > 0, dimension % 2 == 0 else {
            throw .invalidArgument(operation: "RotaryTables", detail: "dimension \(dimension) is not a positive even number")
        }
        try self.init(positions: positions,
                      inverseFrequencies: Self.inverseFrequencies(dimension: dimension, theta: theta),
                      attentionScaling: attentionScaling)
    }

    /// Tables from explicit inverse frequencies (for scaled variants such as Llama 3's).
    public init(positions: [Int], inverseFrequencies: [Float], attentionScaling: Float = 1) throws(TensorError) {
        guard !inverseFrequencies.isEmpty else {
            throw .invalidArgument(operation: "RotaryTables", detail: "no inverse frequencies")
        }
        let dim = 2 * inverseFrequencies.count
        var c = Matrix(rows: positions.count, cols: dim)
        var s = Matrix(rows: positions.count, cols: dim)
        c.storage.withUnsafeMutableBufferPointer { pc in
            s.storage.withUnsafeMutableBufferPointer { ps in
                fillRotaryRows(rows: positions.count, inverseFrequencies: inverseFrequencies, attentionScaling: attentionScaling,
                               position: { r, _ in positions[r] }, cos: pc.baseAddress!, sin: ps.baseAddress!)
            }
        }
        cos = c
        sin = s
    }
}

/// Rotates every head of `x` ([positions, heads · dimension]) by the tables' row of its position.
public func applyRotary(_ x: inout Matrix, tables: RotaryTables, heads: Int) throws(TensorError) {
    try applyRotary(&x, cos: tables.cos, sin: tables.sin, heads: heads)
}

/// `x · cos + rotate_half(x) · sin` per head, with one cos/sin row ([rows, head dim]) per row of `x`
/// (any positions: 1-D RoPE tables, Qwen's 2-D vision tables).
public func applyRotary(_ x: inout Matrix, cos: Matrix, sin: Matrix, heads: Int) throws(TensorError) {
    let dim = cos.cols
    guard heads > 0, x.cols == heads * dim, x.rows == cos.rows, sin.rows == cos.rows, sin.cols == dim else {
        throw .shapeMismatch(operation: "applyRotary",
                             detail: "\(x.rows)x\(x.cols) with \(heads) heads, tables \(cos.rows)x\(dim)")
    }
    x.storage.withUnsafeMutableBufferPointer { px in
        cos.storage.withUnsafeBufferPointer { pc in
            sin.storage.withUnsafeBufferPointer { ps in
                applyRotary(px.baseAddress!, rows: x.rows, rowStride: x.cols, heads: heads, dimension: dim,
                            cos: pc.baseAddress!, sin: ps.baseAddress!)
            }
        }
    }
}

/// cos/sin of `rows` rows into [rows, 2 · half] buffers (repeated-half layout): frequency i of row r
/// turns by `position(r, i) · inverseFrequencies[i]`, in Float32 as transformers computes it. One
/// position per row is 1-D RoPE; a frequency-dependent axis is M-RoPE.
public func fillRotaryRows(rows: Int, inverseFrequencies: [Float], attentionScaling: Float = 1,
                           position: (_ row: Int, _ frequency: Int) -> Int,
                           cos: UnsafeMutablePointer<Float>, sin: UnsafeMutablePointer<Float>) {
    let half = inverseFrequencies.count, dim = 2 * half
    for r in 0..<rows {
        let c = cos + r * dim, s = sin + r * dim
        for i in 0..<half {
            let angle = Float(position(r, i)) * inverseFrequencies[i]
            let cv = Foundation.cos(angle) * attentionScaling, sv = Foundation.sin(angle) * attentionScaling
            c[i] = cv; c[i + half] = cv
            s[i] = sv; s[i + half] = sv
        }
    }
}

/// `x · cos + rotate_half(x) · sin` for `heads` heads of each of `rows` rows (row r at
/// `x + r · rowStride`, head h at column h · dimension), row r by table row r ([rows, dimension]).
public func applyRotary(_ x: UnsafeMutablePointer<Float>, rows: Int, rowStride: Int, heads: Int, dimension dim: Int,
                        cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
    let half = dim / 2
    for r in 0..<rows {
        let c = cos + r * dim, s = sin + r * dim
        for h in 0..<heads {
            let v = x + r * rowStride + h * dim
            for i in 0..<half {
                let a = v[i], b = v[i + half]
                v[i] = a * c[i] - b * s[i]
                v[i + half] = b * c[i + half] + a * s[i + half]
            }
        }
    }
}
