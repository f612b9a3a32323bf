// A weight matrix kept in the precision it was stored in. BF16 checkpoints (Qwen2.5-VL-3B: 7.5 GB in
// BF16, 15 GB in F32) stay BF16 in memory; a product expands the matrix into a caller-owned F32
// scratch just before the GEMM, so only one layer's matrix is ever F32 at a time. A single row (the
// decode step) reads BF16 directly, widening it in registers: half the bytes of an F32 product.
// The values live in CKernels' weight memory (2 MiB pages where the system grants them): a decode
// step streams every weight once, and 4 KiB pages measured several per cent slower.
import CKernels
import COpenBLAS

public struct WeightMatrix: Sendable {
    public let rows: Int
    public let cols: Int
    /// Held as BF16 bit patterns (the high halves of the F32 values) rather than F32.
    public let isBF16: Bool
    private let buffer: WeightBuffer

    /// Holds `matrix` as F32, or as BF16 with `bf16` (exact only for values that came from BF16).
    public init(_ matrix: Matrix, bf16: Bool = false) {
        rows = matrix.rows
        cols = matrix.cols
        isBF16 = bf16
        let count = matrix.count
        buffer = WeightBuffer(byteCount: count * (bf16 ? 2 : 4))
        let raw = buffer.raw
        matrix.storage.withUnsafeBufferPointer { src in
            if bf16 {
                let dst = raw.bindMemory(to: UInt16.self, capacity: count)
                for i in 0..<count { dst[i] = UInt16(truncatingIfNeeded: src[i].bitPattern >> 16) }
            } else {
                let dst = raw.bindMemory(to: Float.self, capacity: count)
                if count > 0 { dst.update(from: src.baseAddress!, count: count) }
            }
        }
    }

    public var count: Int { rows * cols }
    /// Bytes held.
    public var byteCount: Int { count * (isBF16 ? 2 : 4) }

    /// F32 values (only when !isBF16); valid while `self` is.
    private var floats: UnsafePointer<Float> { UnsafePointer(buffer.raw.assumingMemoryBound(to: Float.self)) }
    /// BF16 bit patterns (only when isBF16); valid while `self` is.
    private var halves: UnsafePointer<UInt16> { UnsafePointer(buffer.raw.assumingMemoryBound(to: UInt16.self)) }

    /// The F32 values behind `body`: the stored values, or `scratch` after expansion (grown when short).
    public func withFloats<R>(scratch: inout [Float], _ body: (UnsafePointer<Float>) -> R) -> R {
        if !isBF16 { return withExtendedLifetime(buffer) { body(floats) } }
        if scratch.count < count { scratch = [Float](repeating: 0, count: count) }
        let src = halves, n = count
        scratch.withUnsafeMutableBufferPointer { decode_widen_bf16(src, $0.baseAddress!, n) }
        return withExtendedLifetime(buffer) { scratch.withUnsafeBufferPointer { body($0.baseAddress!) } }
    }

    /// An F32 copy.
    public func matrix() -> Matrix {
        var scratch: [Float] = []
        let values = withFloats(scratch: &scratch) { Array(UnsafeBufferPointer(start: $0, count: count)) }
        return Matrix(unchecked: rows, cols, values)
    }
}

/// Memory from `decode_weights_allocate` (or the ordinary allocator when it fails), freed with the
/// last matrix that shares it. Written only while the owning WeightMatrix is built.
private final class WeightBuffer: @unchecked Sendable {
    let raw: UnsafeMutableRawPointer
    private let fromArena: Bool

    init(byteCount: Int) {
        if let p = decode_weights_allocate(byteCount) {
            raw = p
            fromArena = true
        } else {
            raw = .allocate(byteCount: max(byteCount, 1), alignment: 64)
            fromArena = false
        }
    }

    deinit {
        if fromArena { decode_weights_release(raw) } else { raw.deallocate() }
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
    if rows == 1 {
        // A decode step reads every weight once: no expansion into scratch, BF16 widened on the fly.
        weight.multiply(x, into: y, accumulate: beta != 0)
        return
    }
    weight.withFloats(scratch: &scratch) { w in
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(n), Int32(k), 1,
                    x, Int32(inputStride), w, Int32(k), beta, y, Int32(outputStride))
    }
}

extension WeightMatrix {
    /// Row `r` as F32 into `destination` (an embedding lookup).
    public func copyRow(_ r: Int, into destination: UnsafeMutablePointer<Float>) {
        guard r >= 0, r < rows else { return }
        withExtendedLifetime(buffer) {
            if isBF16 {
                let src = halves + r * cols
                for i in 0..<cols { destination[i] = Float(bitPattern: UInt32(src[i]) << 16) }
            } else {
                destination.update(from: floats + r * cols, count: cols)
            }
        }
    }
}

extension WeightMatrix {
    /// `y (+)= W · x` for one vector (`cols` floats in, `rows` out) in the stored precision, split
    /// over the decode team.
    public func multiply(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        guard rows > 0 else { return }
        guard cols > 0 else {
            if !accumulate { y.update(repeating: 0, count: rows) }
            return
        }
        withExtendedLifetime(buffer) {
            if isBF16 {
                decode_matvec_bf16(halves, rows, cols, cols, x, y, accumulate ? 1 : 0)
            } else {
                decode_matvec_f32(floats, rows, cols, cols, x, y, accumulate ? 1 : 0)
            }
        }
    }
}
