// The Tensor module: row-major Float32 matrices and the kernels every model is composed of.
//
// Core API (stable; Vision and VLM build on exactly these names):
//
//   Matrix(rows:cols:)                    zero-filled; Matrix(rows:cols:storage:) checks the count
//   m.rows, m.cols, m.storage, m[r, c], m.row(r)
//   linear(x, weight:, bias:)             y = x · Wᵀ + b, W as PyTorch stores it: [out, in]
//   matmul(a, b, transposeB:)             plain GEMM
//   layerNorm(x, weight:, bias:, eps:)    per row
//   rmsNorm(x, weight:, eps:)             per row, Llama style (x · rsqrt(mean(x²) + eps) · w)
//   geluTanh(&x), geluErf(&x), silu(&x), softmaxRows(&x)   in place
//   add(&x, y), multiply(&x, y), addRow(&x, bias)           elementwise, in place
//   RotaryTables(positions:dimension:theta:)  cos/sin [positions, dimension] (transformers' layout,
//                                             frequencies repeated: cat(freqs, freqs))
//   applyRotary(&q, tables:, heads:)     "rotate_half" layout, head dimension = tables.dimension
//   attention(query:key:value:heads:kvHeads:causal:keyOffset:scale:captureScores:)
//       -> AttentionResult { output [queries, heads·headDim], scores [keys]? }
//       scores[j] = mean over heads and queries of softmax(QKᵀ/√d)[i, j], summed while each softmax
//       row is hot; causal: query i sees keys 0...keyOffset + i (keyOffset = tokens already cached)
//   im2col(pixels:channels:height:width:patch:) and patchEmbedding(...): conv with kernel = stride = patch
//   softmax, GELU, SiLU, layer norm: C kernels (CKernels) with AVX2 and portable paths by CPU flags
//
// Weights (SafeTensors.swift): SafeTensorsFile(path:) (mmap, bounds-checked), WeightStore(directory:)
// (model.safetensors or the shards of model.safetensors.index.json; matrix(name, shape:), vector(name,
// count:)), SafeTensorsWriter (F32/I32 + string metadata, atomic write). Errors: WeightsError.
// BLASRuntime.configure(): first thing in main (OPENBLAS_CORETYPE=SkylakeX on AVX-512 CPUs only).
//
// Matrices are values ([Float] underneath, copy on write). Kernels reach the storage through
// unsafe buffers so that hot loops carry no bounds checks and vectorise.
import COpenBLAS

/// A row-major Float32 matrix: `storage[r * cols + c]`.
public struct Matrix: Sendable, Equatable {
    public let rows: Int
    public let cols: Int
    public var storage: [Float]

    /// A zero-filled matrix.
    public init(rows: Int, cols: Int) {
        self.rows = max(0, rows)
        self.cols = max(0, cols)
        self.storage = [Float](repeating: 0, count: self.rows * self.cols)
    }

    /// Wraps `storage`; throws when its count is not `rows · cols`.
    public init(rows: Int, cols: Int, storage: [Float]) throws(TensorError) {
        guard rows >= 0, cols >= 0, storage.count == rows * cols else {
            throw .shapeMismatch(operation: "Matrix", detail: "\(storage.count) values for \(rows)x\(cols)")
        }
        self.rows = rows
        self.cols = cols
        self.storage = storage
    }

    /// For kernels that have already validated the count.
    @usableFromInline init(unchecked rows: Int, _ cols: Int, _ storage: [Float]) {
        self.rows = rows
        self.cols = cols
        self.storage = storage
    }

    public var count: Int { rows * cols }
    public var shape: [Int] { [rows, cols] }

    @inlinable public subscript(row: Int, col: Int) -> Float {
        get { storage[row * cols + col] }
        set { storage[row * cols + col] = newValue }
    }

    /// A copy of one row.
    public func row(_ r: Int) -> [Float] { Array(storage[(r * cols)..<((r + 1) * cols)]) }

    /// Rows `range` as a new matrix.
    public func rows(_ range: Range<Int>) -> Matrix {
        Matrix(unchecked: range.count, cols, Array(storage[(range.lowerBound * cols)..<(range.upperBound * cols)]))
    }

    /// Same values, new shape with the same count.
    public func reshaped(rows: Int, cols: Int) throws(TensorError) -> Matrix {
        try Matrix(rows: rows, cols: cols, storage: storage)
    }

    /// The transpose (a copy).
    public func transposed() -> Matrix {
        var out = Matrix(rows: cols, cols: rows)
        let r = rows, c = cols
        storage.withUnsafeBufferPointer { src in
            out.storage.withUnsafeMutableBufferPointer { dst in
                // Blocked so both sides stay in cache.
                let block = 32
                var i0 = 0
                while i0 < r {
                    var j0 = 0
                    while j0 < c {
                        for i in i0..<min(i0 + block, r) {
                            for j in j0..<min(j0 + block, c) { dst[j * r + i] = src[i * c + j] }
                        }
                        j0 += block
                    }
                    i0 += block
                }
            }
        }
        return out
    }

    /// Largest |value|, 0 for an empty matrix.
    public var maxAbs: Float { storage.reduce(0) { max($0, abs($1)) } }
}

/// Errors of the Tensor module; each names the operation, tensor or file and the cause.
public enum TensorError: Error, CustomStringConvertible, Equatable {
    case shapeMismatch(operation: String, detail: String)
    case invalidArgument(operation: String, detail: String)

    public var description: String {
        switch self {
        case let .shapeMismatch(operation, detail): return "\(operation): shape mismatch: \(detail)"
        case let .invalidArgument(operation, detail): return "\(operation): \(detail)"
        }
    }
}
