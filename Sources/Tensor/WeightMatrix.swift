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
    /// Many-row products may round the activations to BF16 too and use the CPU's BF16 dot products
    /// (AVX512-BF16, F32 accumulation) where it has them: the encoder's `--encoder-precision bf16`.
    public let bf16Products: Bool
    private let buffer: WeightBuffer
    /// The matrix packed for bf16_gemm (panels of 32 rows), when `bf16Products` and the CPU has
    /// AVX512-BF16 (or tests emulate it: BF16Kernel.emulating); nil otherwise.
    private let panels: WeightBuffer?

    /// Holds `matrix` as F32, or as BF16 with `bf16` (truncated: exact for values that came from BF16).
    /// With `bf16Products` the matrix is held BF16 rounded to nearest (it may hold F32 values) and
    /// many-row products may run in BF16 (see `bf16Products`).
    public init(_ matrix: Matrix, bf16: Bool = false, bf16Products: Bool = false) {
        rows = matrix.rows
        cols = matrix.cols
        isBF16 = bf16 || bf16Products
        self.bf16Products = bf16Products
        let count = matrix.count, halves = isBF16
        buffer = WeightBuffer(byteCount: count * (halves ? 2 : 4))
        let raw = buffer.raw
        matrix.storage.withUnsafeBufferPointer { src in
            if bf16Products {
                let dst = raw.bindMemory(to: UInt16.self, capacity: count)
                for i in 0..<count { dst[i] = src[i].bf16Rounded }
            } else if halves {
                let dst = raw.bindMemory(to: UInt16.self, capacity: count)
                for i in 0..<count { dst[i] = UInt16(truncatingIfNeeded: src[i].bitPattern >> 16) }
            } else {
                let dst = raw.bindMemory(to: Float.self, capacity: count)
                if count > 0 { dst.update(from: src.baseAddress!, count: count) }
            }
        }
        let native = hp_cpu_has(HP_CPU_AVX512_BF16) != 0 && hp_isa_supported().rawValue >= HP_ISA_AVX512.rawValue
        if bf16Products, count > 0, native || bf16_gemm_mode() == 2 {
            let words = bf16_packed_words(rows, cols)
            let packed = WeightBuffer(byteCount: words * 4)
            bf16_pack_panels(raw.assumingMemoryBound(to: UInt16.self), rows, cols,
                             packed.raw.bindMemory(to: UInt32.self, capacity: words))
            panels = packed
        } else {
            panels = nil
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
    if weight.isBF16 {
        weight.multiplyBF16(x, rows: rows, inputStride: inputStride, into: y, outputStride: outputStride, beta: beta,
                            scratch: &scratch)
        return
    }
    weight.withFloats(scratch: &scratch) { w in
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(n), Int32(k), 1,
                    x, Int32(inputStride), w, Int32(k), beta, y, Int32(outputStride))
    }
}

/// The BF16 dot-product kernel's switches, for tests and benchmarks.
public enum BF16Kernel {
    /// "avx512_bf16", "emulated" (portable, tests) or "none" (BF16 weights widen for an F32 GEMM).
    public static var mode: String { ["none", "avx512_bf16", "emulated"][Int(bf16_gemm_mode()).clamped(to: 0...2)] }

    /// Runs `body` with the portable emulation of the AVX512-BF16 kernel on where the CPU lacks it:
    /// matrices built inside `body` with `bf16Products` are packed for it and multiply through it.
    public static func emulating<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        let previous = bf16_gemm_emulate(1)
        defer { bf16_gemm_emulate(previous) }
        return try body()
    }
}

extension Comparable {
    fileprivate func clamped(to range: ClosedRange<Self>) -> Self { min(max(self, range.lowerBound), range.upperBound) }
}

extension Float {
    /// The nearest BF16 (ties to even), as a bit pattern; NaN stays NaN.
    public var bf16Rounded: UInt16 {
        let bits = bitPattern
        if isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x40 }
        return UInt16(truncatingIfNeeded: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
    }
}

extension WeightMatrix {
    /// Weight rows widened per panel: about 4 MB of F32 (L3-resident when the GEMM reads it) and at
    /// least 128 rows — a thinner panel leaves the GEMM too narrow to run at full rate.
    public static func widenedPanelRows(cols: Int) -> Int { max(128, (1 << 20) / max(1, cols) / 16 * 16) }

    /// Whether `multiplyBF16` runs the CPU's BF16 dot products now (the matrix was packed for them and
    /// the kernel path allows them).
    public var usesNativeBF16: Bool { panels != nil && bf16_gemm_mode() != 0 }

    /// y = x · Wᵀ + beta · y for a BF16 matrix: the native BF16 kernel (activations rounded to BF16) where
    /// `usesNativeBF16`, else F32 products of the BF16 values, widening one panel of rows at a time into
    /// `scratch` (cache-sized: the whole matrix is never F32 at once).
    func multiplyBF16(_ x: UnsafePointer<Float>, rows m: Int, inputStride: Int, into y: UnsafeMutablePointer<Float>,
                      outputStride: Int, beta: Float, scratch: inout [Float]) {
        let n = rows, k = cols
        withExtendedLifetime(buffer) {
            let mode = bf16_gemm_mode()
            if let panels, mode != 0 {
                withExtendedLifetime(panels) {
                    bf16_gemm(x, m, inputStride, panels.raw.assumingMemoryBound(to: UInt32.self), n, k, y, outputStride,
                              beta, mode == 2 ? 1 : 0)
                }
                return
            }
            let panelRows = min(n, Self.widenedPanelRows(cols: k))
            if scratch.count < panelRows * k { scratch = [Float](repeating: 0, count: panelRows * k) }
            scratch.withUnsafeMutableBufferPointer { wide in
                for first in stride(from: 0, to: n, by: panelRows) {
                    let count = min(panelRows, n - first)
                    decode_widen_bf16(halves + first * k, wide.baseAddress!, count * k)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(count), Int32(k), 1,
                                x, Int32(inputStride), wide.baseAddress!, Int32(k), beta, y + first, Int32(outputStride))
                }
            }
        }
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
