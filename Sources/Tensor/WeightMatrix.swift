// A weight matrix kept in the precision it was stored in. BF16 checkpoints (Qwen2.5-VL-3B: 7.5 GB in
// BF16, 15 GB in F32) stay BF16 in memory; a product expands the matrix into a caller-owned F32
// scratch just before the GEMM, so only one layer's matrix is ever F32 at a time.
import COpenBLAS
import Dispatch

public struct WeightMatrix: Sendable {
    public let rows: Int
    public let cols: Int
    /// F32 values, or empty when the matrix is held as BF16.
    let floats: [Float]
    /// BF16 bit patterns (the high halves of the F32 values), or empty when held as F32.
    let halves: [UInt16]

    /// Holds `matrix` as F32, or as BF16 with `bf16` (exact only for values that came from BF16).
    public init(_ matrix: Matrix, bf16: Bool = false) {
        rows = matrix.rows
        cols = matrix.cols
        if bf16 {
            halves = matrix.storage.map { UInt16(truncatingIfNeeded: $0.bitPattern >> 16) }
            floats = []
        } else {
            floats = matrix.storage
            halves = []
        }
    }

    public var isBF16: Bool { !halves.isEmpty }
    public var count: Int { rows * cols }
    /// Bytes held.
    public var byteCount: Int { floats.count * 4 + halves.count * 2 }

    /// The F32 values behind `body`: the stored array, or `scratch` after expansion (grown when short).
    public func withFloats<R>(scratch: inout [Float], _ body: (UnsafePointer<Float>) -> R) -> R {
        if !isBF16 { return floats.withUnsafeBufferPointer { body($0.baseAddress!) } }
        if scratch.count < count { scratch = [Float](repeating: 0, count: count) }
        scratch.withUnsafeMutableBufferPointer { dst in
            halves.withUnsafeBufferPointer { src in
                for i in 0..<src.count { dst[i] = Float(bitPattern: UInt32(src[i]) << 16) }
            }
        }
        return scratch.withUnsafeBufferPointer { body($0.baseAddress!) }
    }

    /// An F32 copy.
    public func matrix() -> Matrix {
        var scratch: [Float] = []
        let values = withFloats(scratch: &scratch) { Array(UnsafeBufferPointer(start: $0, count: count)) }
        return Matrix(unchecked: rows, cols, values)
    }
}

/// `x · Wᵀ + b` with `weight` [out, in] in its stored precision; `scratch` receives a BF16 matrix's expansion.
public func linear(_ x: Matrix, weight: WeightMatrix, bias: [Float]? = nil, scratch: inout [Float]) throws(TensorError) -> Matrix {
    guard x.cols == weight.cols else {
        throw .shapeMismatch(operation: "linear", detail: "input \(x.rows)x\(x.cols), weight \(weight.rows)x\(weight.cols)")
    }
    if let bias, bias.count != weight.rows {
        throw .shapeMismatch(operation: "linear", detail: "bias of \(bias.count) for \(weight.rows) outputs")
    }
    let m = x.rows, n = weight.rows, k = x.cols
    var out = Matrix(rows: m, cols: n)
    guard m > 0, n > 0 else { return out }
    guard k > 0 else {
        if let bias { for r in 0..<m { for j in 0..<n { out[r, j] = bias[j] } } }
        return out
    }
    x.storage.withUnsafeBufferPointer { px in
        out.storage.withUnsafeMutableBufferPointer { py in
            linear(px.baseAddress!, rows: m, inputStride: k, weight: weight, bias: bias, into: py.baseAddress!,
                   outputStride: n, scratch: &scratch)
        }
    }
    return out
}

/// `y[r] (+)= x[r] · Wᵀ (+ b)` for `rows` rows into caller-owned memory (strides in floats), with
/// `weight` in its stored precision. With `accumulate` the product (and bias) is added onto `y`.
public func linear(_ x: UnsafePointer<Float>, rows: Int, inputStride: Int, weight: WeightMatrix, bias: [Float]? = nil,
                   into y: UnsafeMutablePointer<Float>, outputStride: Int, accumulate: Bool = false, scratch: inout [Float]) {
    let n = weight.rows, k = weight.cols
    guard rows > 0, n > 0, k > 0 else { return }
    var beta: Float = accumulate ? 1 : 0
    if let bias, bias.count == n {
        bias.withUnsafeBufferPointer { pb in
            for r in 0..<rows {
                let row = y + r * outputStride
                if accumulate {
                    for j in 0..<n { row[j] += pb[j] }
                } else {
                    row.update(from: pb.baseAddress!, count: n)
                }
            }
        }
        beta = 1
    }
    if rows == 1 && weight.isBF16 {
        // A decode step reads every weight once: widen BF16 on the fly instead of expanding the
        // whole matrix first (half the bytes of an F32 sgemv, no scratch traffic).
        weight.bf16Multiply(x, into: y, accumulate: beta != 0)
        return
    }
    weight.withFloats(scratch: &scratch) { w in
        if rows == 1 {
            cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(k), 1, w, Int32(k), x, 1, beta, y, 1)
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(n), Int32(k), 1,
                        x, Int32(inputStride), w, Int32(k), beta, y, Int32(outputStride))
        }
    }
}

extension WeightMatrix {
    /// Row `r` as F32 into `destination` (an embedding lookup).
    public func copyRow(_ r: Int, into destination: UnsafeMutablePointer<Float>) {
        guard r >= 0, r < rows else { return }
        if isBF16 {
            halves.withUnsafeBufferPointer { src in
                for i in 0..<cols { destination[i] = Float(bitPattern: UInt32(src[r * cols + i]) << 16) }
            }
        } else {
            floats.withUnsafeBufferPointer { destination.update(from: $0.baseAddress! + r * cols, count: cols) }
        }
    }
}

extension WeightMatrix {
    /// `y (+)= W · x` for one vector, W held as BF16; rows split over two workers.
    func bf16Multiply(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let n = rows, k = cols
        let input = SendableFloats(x), output = SendableFloats(UnsafePointer(y))
        halves.withUnsafeBufferPointer { pw in
            let w = SendableHalves(pw.baseAddress!)
            let work: @Sendable (Int) -> Void = { part in
                let lo = n * part / 2, hi = n * (part + 1) / 2
                let x = input.pointer, y = UnsafeMutablePointer(mutating: output.pointer)
                for r in lo..<hi {
                    let row = w.pointer + r * k
                    var acc = SIMD8<Float>(repeating: 0)
                    var j = 0
                    while j + 8 <= k {
                        let bits = UnsafeRawPointer(row + j).loadUnaligned(as: SIMD8<UInt16>.self)
                        let v = unsafeBitCast(SIMD8<UInt32>(truncatingIfNeeded: bits) &<< 16, to: SIMD8<Float>.self)
                        acc += v * UnsafeRawPointer(x + j).loadUnaligned(as: SIMD8<Float>.self)
                        j += 8
                    }
                    var total = acc.sum()
                    while j < k {
                        total += Float(bitPattern: UInt32(row[j]) << 16) * x[j]
                        j += 1
                    }
                    y[r] = accumulate ? y[r] + total : total
                }
            }
            if n * k >= 1 << 16 {
                DispatchQueue.concurrentPerform(iterations: 2, execute: work)
            } else {
                work(0)
                work(1)
            }
        }
    }
}

/// Pointers handed to the two workers, which touch disjoint rows.
struct SendableFloats: @unchecked Sendable {
    let pointer: UnsafePointer<Float>
    init(_ pointer: UnsafePointer<Float>) { self.pointer = pointer }
}

struct SendableHalves: @unchecked Sendable {
    let pointer: UnsafePointer<UInt16>
    init(_ pointer: UnsafePointer<UInt16>) { self.pointer = pointer }
}
