// The encoder's F32 projections on weights packed once at load (enc_gemm_pack: panels of 16 outputs),
// multiplied by enc_gemm_panels (x packed once per chunk of rows, shared by the threads) with the
// bias, the residual add or GELU done in the tile's epilogue. Against cblas_sgemm on the weights as
// stored this drops, per product, OpenBLAS's copy of the weights (and each core's copy of x), the
// bias copied into y beforehand or the zeroing of y (beta = 0), and for fc1 the separate bias + GELU
// pass over the [tokens, intermediate] matrix.
import CKernels
import Dispatch

/// An F32 weight matrix [out, in] (PyTorch's layout) in enc_gemm_packed's panels. Immutable once made.
public final class PackedWeights: @unchecked Sendable {
    /// Outputs (the matrix's rows) and inputs (its columns).
    public let rows: Int, cols: Int
    let panels: UnsafeMutablePointer<Float>
    private let arena: Bool

    public init(_ matrix: Matrix) {
        rows = matrix.rows
        cols = matrix.cols
        let count = max(1, enc_gemm_packed_floats(rows, cols)), bytes = count * MemoryLayout<Float>.stride
        // On 2 MiB pages as WeightMatrix holds its weights (decode_weights_allocate): on 4 KB pages the
        // panels a product streams overran the TLB, and the encoder measured ~3 % slower per CPU second
        // than cblas_sgemm, which packs into buffers of its own. 64-byte aligned either way: a panel row
        // is one cache line and the kernels load it aligned.
        if let p = decode_weights_allocate(bytes) {
            panels = p.bindMemory(to: Float.self, capacity: count)
            arena = true
        } else {
            panels = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64).bindMemory(to: Float.self, capacity: count)
            arena = false
        }
        panels.initialize(repeating: 0, count: count)
        matrix.storage.withUnsafeBufferPointer { pw in
            guard let base = pw.baseAddress, rows > 0, cols > 0 else { return }
            enc_gemm_pack(base, rows, cols, cols, panels)
        }
    }

    deinit {
        if arena { decode_weights_release(panels) } else { panels.deallocate() }
    }

    /// Elements of the matrix (padding not counted).
    public var count: Int { rows * cols }
}

/// What a packed product does with each finished sum s (bias included when given).
public enum PackedEpilogue: Sendable {
    /// y = s
    case store
    /// y += s (a residual stream updated in place)
    case accumulate
    /// y = gelu_tanh(s), as geluTanh(_:bias:)
    case geluTanh

    var code: Int32 {
        switch self {
        case .store: Int32(ENC_GEMM_STORE)
        case .accumulate: Int32(ENC_GEMM_ACCUMULATE)
        case .geluTanh: Int32(ENC_GEMM_GELU_TANH)
        }
    }
}

/// `y[r] = epilogue(x[r] · Wᵀ + bias)` for `rows` rows (strides in floats); `bias`, when given, has
/// weight.rows values (the caller checks). Large products run on as many threads as
/// `encoderGEMMSlices` says: per chunk of rows, the threads pack x's tiles side by side
/// (enc_gemm_xpack), then each multiplies its slice of the output columns (enc_gemm_panels); results
/// do not depend on the split. `scratch` receives the packed rows (grown when short, then reused:
/// an encoder passes the same buffer to all its products).
public func packedLinear(_ x: UnsafePointer<Float>, rows m: Int, inputStride: Int, weight: PackedWeights, bias: [Float]?,
                         epilogue: PackedEpilogue, into y: UnsafeMutablePointer<Float>, outputStride: Int, scratch: inout [Float]) {
    let n = weight.rows, k = weight.cols
    guard m > 0, n > 0 else { return }
    let slices = encoderGEMMSlices(m: m, n: n, k: k, granule: 32)
    let chunk = enc_gemm_chunk_rows(m, k)
    let need = max(1, enc_gemm_xpack_floats(chunk, k))
    if scratch.count < need { scratch = [Float](repeating: 0, count: need) }
    let c = SendablePointer(y), code = epilogue.code
    let panels = (n + 15) / 16
    // Thread i's share of `count` units, bounds on multiples of `multiple`.
    let split: @Sendable (Int, Int, Int) -> Range<Int> = { count, i, multiple in
        let start = count * i / slices / multiple * multiple, end = i == slices - 1 ? count : count * (i + 1) / slices / multiple * multiple
        return start..<max(start, end)
    }
    withExtendedLifetime(weight) {
        let w = ReadPointer(weight.panels)
        scratch.withUnsafeMutableBufferPointer { pxp in
            let xp = SendablePointer(pxp.baseAddress!)
            func run(_ b: UnsafePointer<Float>?) {
                let bias = b.map { ReadPointer($0) }
                var r0 = 0
                while r0 < m {
                    let rows = min(chunk, m - r0), tiles = (rows + 5) / 6
                    let a = ReadPointer(x + r0 * inputStride), out = SendablePointer(c.pointer! + r0 * outputStride)
                    let pack: @Sendable (Int) -> Void = { i in
                        let range = split(tiles, i, 1)
                        enc_gemm_xpack(a.pointer, rows, inputStride, k, range.lowerBound, range.upperBound, xp.pointer!)
                    }
                    // Panels in pairs (whole AVX-512 tiles): 32 columns.
                    let multiply: @Sendable (Int) -> Void = { i in
                        let range = split(panels, i, 2)
                        guard !range.isEmpty else { return }
                        enc_gemm_panels(xp.pointer!, rows, w.pointer, n, k, range.lowerBound * 16, min(n, range.upperBound * 16),
                                        bias?.pointer, code, out.pointer!, outputStride)
                    }
                    if slices > 1 {
                        DispatchQueue.concurrentPerform(iterations: slices, execute: pack)
                        DispatchQueue.concurrentPerform(iterations: slices, execute: multiply)
                    } else {
                        pack(0)
                        multiply(0)
                    }
                    r0 += rows
                }
            }
            if let bias { bias.withUnsafeBufferPointer { run($0.baseAddress) } } else { run(nil) }
        }
    }
}

/// A dense layer's F32 weights [out, in] for many-row products outside the encoder's layers (patch
/// embedding, connector): packed once for enc_gemm_packed when EncoderPaths' kernel is `.packed` at
/// load (a frame then never wakes OpenBLAS's threads, which would spin beside the packed products'
/// own), else as stored for cblas_sgemm.
public enum DenseWeights: Sendable {
    case packed(PackedWeights)
    case stored(Matrix)

    public init(_ matrix: Matrix) {
        self = EncoderPaths.current.gemmKernel == .packed ? .packed(PackedWeights(matrix)) : .stored(matrix)
    }

    public var rows: Int {
        switch self {
        case .packed(let w): w.rows
        case .stored(let w): w.rows
        }
    }

    public var cols: Int {
        switch self {
        case .packed(let w): w.cols
        case .stored(let w): w.cols
        }
    }

    public var count: Int { rows * cols }
}

/// `x · Wᵀ + b` with `weight` as held; a bias, when given, has weight.rows values.
public func linear(_ x: Matrix, weight: DenseWeights, bias: [Float]? = nil) throws(TensorError) -> Matrix {
    let w: PackedWeights
    switch weight {
    case .stored(let m): return try linear(x, weight: m, bias: bias)
    case .packed(let p): w = p
    }
    guard x.cols == w.cols else {
        throw .shapeMismatch(operation: "linear", detail: "input \(x.rows)x\(x.cols), weight \(w.rows)x\(w.cols)")
    }
    if let bias, bias.count != w.rows {
        throw .shapeMismatch(operation: "linear", detail: "bias of \(bias.count) for \(w.rows) outputs")
    }
    var out = Matrix(rows: x.rows, cols: w.rows)
    x.storage.withUnsafeBufferPointer { px in
        out.storage.withUnsafeMutableBufferPointer { po in
            guard let input = px.baseAddress, let output = po.baseAddress else { return }
            var scratch: [Float] = []
            packedLinear(input, rows: x.rows, inputStride: x.cols, weight: w, bias: bias, epilogue: .store, into: output,
                         outputStride: w.rows, scratch: &scratch)
        }
    }
    return out
}
