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
        let half = inverseFrequencies.count, dim = 2 * half
        var c = Matrix(rows: positions.count, cols: dim)
        var s = Matrix(rows: positions.count, cols: dim)
        for (r, position) in positions.enumerated() {
            for i in 0..<half {
                let angle = Float(position) * inverseFrequencies[i]
                let cv = Foundation.cos(angle) * attentionScaling, sv = Foundation.sin(angle) * attentionScaling
                c[r, i] = cv; c[r, i + half] = cv
                s[r, i] = sv; s[r, i + half] = sv
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
    let half = dim / 2, width = x.cols
    x.storage.withUnsafeMutableBufferPointer { px in
        cos.storage.withUnsafeBufferPointer { pc in
            sin.storage.withUnsafeBufferPointer { ps in
                for r in 0..<x.rows {
                    let c = pc.baseAddress! + r * dim, s = ps.baseAddress! + r * dim
                    for h in 0..<heads {
                        let v = px.baseAddress! + r * width + h * dim
                        for i in 0..<half {
                            let a = v[i], b = v[i + half]
                            v[i] = a * c[i] - b * s[i]
                            v[i + half] = b * c[i + half] + a * s[i + half]
                        }
                    }
                }
            }
        }
    }
}
