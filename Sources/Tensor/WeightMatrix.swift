// A weight matrix kept in the format it was stored in: F32, BF16 (checkpoints as Hugging Face ships
// them; Qwen2.5-VL-3B is 7.5 GB in BF16, 15 GB in F32) or one of llama.cpp's block formats (F16,
// Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, as GGUF files hold them). A single row (the decode
// step) reads the stored bytes directly: BF16 widened in registers, block formats through integer
// dot products against the activation quantized per block (CKernels' quant_kernels); block-format
// rows are repacked once at load into 8-row tiles with the rows in the lanes (`tilesBlockFormats`),
// which decode and the many-row product read directly. Several rows
// (a prefill) run integer dot products too for the block formats (tiles of 8 weight rows, unpacked
// once per panel), BF16 through bf16w_gemm (widened panel by panel inside the product), and otherwise
// convert the matrix a panel of rows at a time into a cache-sized F32 tile that sgemm consumes, so no
// product ever holds the whole matrix in F32 (PrefillConversion says why).
// A matrix may be stacked from parts of different formats (Q4_K_M files keep V in Q6_K beside Q4_K
// for Q and K). Values live in CKernels' weight memory (2 MiB pages where the system grants them: a
// decode step streams every weight once, and 4 KiB pages measured several per cent slower), or stay
// in a memory-mapped file that a part keeps open.
import CKernels
import COpenBLAS
import Dispatch
import Foundation

/// How a weight matrix's values are stored; raw values are ggml's type numbers.
public enum WeightFormat: UInt32, Sendable, CaseIterable {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q4_K = 12, q5_K = 13, q6_K = 14, bf16 = 30

    /// Values per block (1 for the float formats).
    public var blockValues: Int { quant_block_values(Int32(rawValue)) }
    /// Bytes per block.
    public var blockBytes: Int { quant_block_bytes(Int32(rawValue)) }
    /// Bytes of a row of `cols` values (a whole number of blocks).
    public func rowBytes(_ cols: Int) -> Int { cols / blockValues * blockBytes }

    /// `rows` rows of `cols` values (rows contiguous) as F32 into `dst`, as ggml dequantizes them.
    public func dequantize(_ src: UnsafeRawPointer, rows: Int, cols: Int, into dst: UnsafeMutablePointer<Float>) {
        quant_dequantize_rows(Int32(rawValue), src, rowBytes(cols), rows, cols, dst, cols)
    }

    /// The index (row · cols + column) of the first value that is not finite, or nil: weights
    /// like that answer nothing (every logit NaN), so loaders refuse them, naming the tensor. Block
    /// formats are checked by their F16 scales (the index is then the block's first value).
    public func firstNonFinite(_ src: UnsafeRawPointer, rows: Int, cols: Int) -> Int? {
        let index = weight_first_nonfinite(Int32(rawValue), src, rowBytes(cols), rows, cols)
        return index >= 0 ? index : nil
    }

    /// ggml's name: "F32", "Q4_K", …
    public var name: String {
        switch self {
        case .q4_K: return "Q4_K"
        case .q5_K: return "Q5_K"
        case .q6_K: return "Q6_K"
        default: return String(describing: self).uppercased()
        }
    }
}

public struct WeightMatrix: Sendable {
    public let rows: Int
    public let cols: Int
    private let parts: [Part]
    /// Many-row products may round the activations to BF16 too and use the CPU's BF16 dot products
    /// (AVX512-BF16, F32 accumulation) where it has them: the encoder's `--encoder-precision bf16`.
    public let bf16Products: Bool
    /// The matrix packed for bf16_gemm (panels of 32 rows), when `bf16Products` and the CPU has
    /// AVX512-BF16 (or tests emulate it: BF16Kernel.emulating); nil otherwise.
    private let panels: WeightBuffer?

    /// A run of rows in one format; `tiled`: block-format rows held in quant_kernels' 8-row tile
    /// form (quant_tile_rows), `rowBytes` still the stored row's bytes.
    private struct Part: Sendable {
        let firstRow: Int
        let rows: Int
        let format: WeightFormat
        let rowBytes: Int
        let buffer: WeightBuffer
        var tiled = false
        var bytes: UnsafeRawPointer { UnsafeRawPointer(buffer.raw) }
        /// Bytes held: the tile form's (the stored bytes for the 32-value types, about 1.03× for the
        /// K-quants) or the stored rows'.
        var heldBytes: Int { tiled ? quant_tiled_bytes(Int32(format.rawValue), rows, rowBytes / format.blockBytes * format.blockValues) : rows * rowBytes }
        /// As quant_kernels' part table entry.
        var table: quant_part { quant_part(type: Int32(format.rawValue), w: bytes, row_bytes: rowBytes, rows: rows, tiled: tiled ? 1 : 0) }
    }

    /// Whether matrices of block-format rows (Q4_K, Q5_K, Q6_K, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) built
    /// by copying (`copyingRows`, GGUF tensors, quantizing on load) are repacked into quant_kernels'
    /// 8-row tiles: decode reads 8 rows per pass with the rows in the lanes (K-quants: the scales
    /// unpacked once at load, not per block and row: one thread, 4096 × 4096 Q4_K, 348 against 696 µs
    /// a product; 32-value types: a dword of 8 rows unpacked per register, no reduction across lanes
    /// and no scale gathering: one thread, 576 × 576 Q5_0, 8.1 against 17.8 µs in L2, 15.4 against
    /// 19.9 from memory; Q8_0 1.05–1.16× from memory) and the many-row
    /// product skips its per-product transposes. The same bits as the stored rows on every path. On
    /// by default where the SIMD kernels run (x86 with AVX2); the portable path reads tiles a restored
    /// row at a time. A matrix's last rows % 8 stay stored. Process-wide; tests turn it off to compare.
    nonisolated(unsafe) public static var tilesBlockFormats = quant_best_isa() >= 1

    /// Whether rows in `format` would be held in tile form now.
    public static func tiles(_ format: WeightFormat) -> Bool {
        tilesBlockFormats && quant_tiled_bytes(Int32(format.rawValue), 8, format.blockValues) > 0
    }

    private init(rows: Int, cols: Int, parts: [Part], bf16Products: Bool = false, panels: WeightBuffer? = nil) {
        self.rows = rows
        self.cols = cols
        self.parts = parts
        self.bf16Products = bf16Products
        self.panels = panels
    }

    /// Holds `matrix` as F32, or as BF16 with `bf16` (truncated: exact for values that came from BF16).
    /// With `bf16Products` the matrix is held BF16 rounded to nearest (it may hold F32 values) and
    /// many-row products may run in BF16 (see `bf16Products`).
    public init(_ matrix: Matrix, bf16: Bool = false, bf16Products: Bool = false) {
        let count = matrix.count, halves = bf16 || bf16Products
        let buffer = WeightBuffer(byteCount: count * (halves ? 2 : 4))
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
        var panels: WeightBuffer? = nil
        let native = hp_cpu_has(HP_CPU_AVX512_BF16) != 0 && hp_isa_supported().rawValue >= HP_ISA_AVX512.rawValue
        if bf16Products, count > 0, native || bf16_gemm_mode() == 2 {
            let words = bf16_packed_words(matrix.rows, matrix.cols)
            let packed = WeightBuffer(byteCount: words * 4)
            bf16_pack_panels(raw.assumingMemoryBound(to: UInt16.self), matrix.rows, matrix.cols,
                             packed.raw.bindMemory(to: UInt32.self, capacity: words))
            panels = packed
        }
        let format: WeightFormat = halves ? .bf16 : .f32
        self.init(rows: matrix.rows, cols: matrix.cols,
                  parts: [Part(firstRow: 0, rows: matrix.rows, format: format, rowBytes: format.rowBytes(matrix.cols), buffer: buffer)],
                  bf16Products: bf16Products, panels: panels)
    }

    /// Holds `matrix` quantized to `format` with ggml's reference quantizers (Q8_0: round to nearest
    /// with scale amax/127; Q5_0: scale max/−16; Q5_1: scale (max − min)/31 and the minimum; Q4_K:
    /// make_qkx2's scale and minimum search), or as F32 / BF16.
    public init(_ matrix: Matrix, quantizingTo format: WeightFormat) throws(TensorError) {
        switch format {
        case .f32, .bf16:
            self.init(matrix, bf16: format == .bf16)
            return
        case .q8_0, .q5_0, .q5_1, .q4_K:
            break
        default:
            throw .invalidArgument(operation: "weight format", detail: "quantizing to \(format.name) is not supported (Q8_0, Q5_0, Q5_1, Q4_K)")
        }
        guard matrix.cols % format.blockValues == 0 else {
            throw .invalidArgument(operation: "weight format", detail: "\(format.name) needs rows of whole \(format.blockValues)-value blocks, not \(matrix.cols)")
        }
        let rowBytes = format.rowBytes(matrix.cols)
        let buffer = WeightBuffer(byteCount: matrix.rows * rowBytes)
        matrix.storage.withUnsafeBufferPointer { src in
            _ = quant_quantize_rows(Int32(format.rawValue), src.baseAddress, matrix.rows, matrix.cols, buffer.raw)
        }
        if Self.tiles(format) {
            // Repacked from the quantized rows, which are then freed.
            try self.init(rows: matrix.rows, cols: matrix.cols, format: format) { UnsafeRawPointer(buffer.raw) + $0 * rowBytes }
            return
        }
        self.init(rows: matrix.rows, cols: matrix.cols,
                  parts: [Part(firstRow: 0, rows: matrix.rows, format: format, rowBytes: rowBytes, buffer: buffer)])
    }

    /// `rows` rows of `cols` values in `format` at `bytes` (rows contiguous), read in place: `owner`
    /// (e.g. a memory-mapped file) is kept alive as long as the matrix.
    public init(rows: Int, cols: Int, format: WeightFormat, borrowing bytes: UnsafeRawPointer,
                owner: some AnyObject & Sendable) throws(TensorError) {
        try Self.checkShape(rows: rows, cols: cols, format: format)
        self.init(rows: rows, cols: cols, parts: [Part(firstRow: 0, rows: rows, format: format, rowBytes: format.rowBytes(cols),
                                                      buffer: WeightBuffer(borrowing: bytes, owner: owner))])
    }

    /// `rows` rows of `cols` values in `format`, copied into weight memory; `row(r)` gives the bytes
    /// of destination row r (so a copy can reorder rows). Block-format rows go into tile form when
    /// `tiles(format)` (all but the last rows % 8, which stay stored: a padded tail tile would hold
    /// up to 7 empty rows).
    public init(rows: Int, cols: Int, format: WeightFormat, copyingRows row: (Int) -> UnsafeRawPointer) throws(TensorError) {
        try Self.checkShape(rows: rows, cols: cols, format: format)
        let rowBytes = format.rowBytes(cols)
        let tiledRows = Self.tiles(format) && cols > 0 ? rows / 8 * 8 : 0
        var parts: [Part] = []
        if tiledRows > 0 {
            let buffer = WeightBuffer(byteCount: quant_tiled_bytes(Int32(format.rawValue), tiledRows, cols))
            let sources = (0..<tiledRows).map { Optional(row($0)) }
            sources.withUnsafeBufferPointer {
                _ = quant_tile_rows(Int32(format.rawValue), $0.baseAddress, tiledRows, cols, buffer.raw)
            }
            parts.append(Part(firstRow: 0, rows: tiledRows, format: format, rowBytes: rowBytes, buffer: buffer, tiled: true))
        }
        if rows > tiledRows || rows == 0 {
            let buffer = WeightBuffer(byteCount: (rows - tiledRows) * rowBytes)
            for r in tiledRows..<rows { (buffer.raw + (r - tiledRows) * rowBytes).copyMemory(from: row(r), byteCount: rowBytes) }
            parts.append(Part(firstRow: tiledRows, rows: rows - tiledRows, format: format, rowBytes: rowBytes, buffer: buffer))
        }
        self.init(rows: rows, cols: cols, parts: parts)
    }

    /// The rows of `matrices` one after another (each keeps its format and memory).
    public init(stacking matrices: [WeightMatrix]) throws(TensorError) {
        guard let first = matrices.first else { throw .invalidArgument(operation: "stacked weights", detail: "nothing to stack") }
        var parts: [Part] = []
        var rows = 0
        for m in matrices {
            guard m.cols == first.cols else {
                throw .shapeMismatch(operation: "stacking weights", detail: "\(m.cols) columns beside \(first.cols)")
            }
            for p in m.parts {
                parts.append(Part(firstRow: rows + p.firstRow, rows: p.rows, format: p.format, rowBytes: p.rowBytes, buffer: p.buffer, tiled: p.tiled))
            }
            rows += m.rows
        }
        self.init(rows: rows, cols: first.cols, parts: parts)
    }

    private static func checkShape(rows: Int, cols: Int, format: WeightFormat) throws(TensorError) {
        guard rows >= 0, cols >= 0, cols % format.blockValues == 0 else {
            throw .invalidArgument(operation: "weight shape", detail: "\(rows)x\(cols) in \(format.name) (rows of whole \(format.blockValues)-value blocks)")
        }
    }

    public var count: Int { rows * cols }
    /// Bytes held.
    public var byteCount: Int { parts.reduce(0) { $0 + $1.heldBytes } }
    /// The formats of the matrix's parts, in row order, without repeats.
    public var formats: [WeightFormat] {
        var seen: [WeightFormat] = []
        for p in parts where !seen.contains(p.format) { seen.append(p.format) }
        return seen
    }
    /// Rows held in quant_kernels' 8-row tile form (see `tilesBlockFormats`).
    var tiledRows: Int { parts.reduce(0) { $0 + ($1.tiled ? $1.rows : 0) } }
    /// Held as BF16 bit patterns (the high halves of the F32 values) throughout.
    public var isBF16: Bool { !parts.isEmpty && parts.allSatisfy { $0.format == .bf16 } }

    /// The F32 values behind `body`: the stored values when the matrix is one F32 part, else
    /// `scratch` after conversion (grown when short).
    public func withFloats<R>(scratch: inout [Float], _ body: (UnsafePointer<Float>) -> R) -> R {
        if parts.count == 1, parts[0].format == .f32 {
            return withExtendedLifetime(parts[0].buffer) { body(parts[0].bytes.assumingMemoryBound(to: Float.self)) }
        }
        if scratch.count < max(count, 1) { scratch = [Float](repeating: 0, count: max(count, 1)) }
        scratch.withUnsafeMutableBufferPointer { dst in
            for p in parts { Self.convert(p, from: 0, rows: p.rows, cols: cols, into: dst.baseAddress! + p.firstRow * cols) }
        }
        return withExtendedLifetime(parts) { scratch.withUnsafeBufferPointer { body($0.baseAddress!) } }
    }

    /// Rows `from ..< from + rows` of part `p` as F32 into `dst` (rows `cols` apart), on the decode team.
    private static func convert(_ p: Part, from: Int, rows: Int, cols: Int, into dst: UnsafeMutablePointer<Float>) {
        withExtendedLifetime(p.buffer) {
            let src = p.bytes + from * p.rowBytes
            switch p.format {
            case .f32: dst.update(from: src.assumingMemoryBound(to: Float.self), count: rows * cols)
            case .bf16: decode_widen_bf16(src.assumingMemoryBound(to: UInt16.self), dst, rows * cols)
            default:
                var table = p.table
                quant_dequantize_part(&table, from, rows, cols, dst, cols)
            }
        }
    }

    /// An F32 copy.
    public func matrix() -> Matrix {
        var scratch: [Float] = []
        let values = withFloats(scratch: &scratch) { Array(UnsafeBufferPointer(start: $0, count: count)) }
        return Matrix(unchecked: rows, cols, values)
    }
}

/// A weights file (a GGUF) mapped read-only for matrices that read it in place.
public enum WeightFileMapping {
    /// Maps `bytes` of the open file `descriptor` at a 2 MiB-aligned address with 2 MiB pages where the
    /// system gives them (decode_map_weights_file says when); nil with errno set when it cannot be
    /// mapped. Unmapped with munmap(base, bytes).
    public static func map(descriptor: Int32, bytes: Int) -> UnsafeRawPointer? {
        decode_map_weights_file(descriptor, bytes).map { UnsafeRawPointer($0) }
    }
}

/// Memory from `decode_weights_allocate` (or the ordinary allocator when it fails), freed with the
/// last matrix that shares it; or borrowed bytes whose owner it keeps alive. Written only while the
/// owning WeightMatrix is built.
private final class WeightBuffer: @unchecked Sendable {
    let raw: UnsafeMutableRawPointer
    private enum Source { case arena, heap, borrowed(AnyObject) }
    private let source: Source

    init(byteCount: Int) {
        if let p = decode_weights_allocate(byteCount) {
            raw = p
            source = .arena
        } else {
            raw = .allocate(byteCount: max(byteCount, 1), alignment: 64)
            source = .heap
        }
    }

    init(borrowing bytes: UnsafeRawPointer, owner: AnyObject) {
        raw = UnsafeMutableRawPointer(mutating: bytes)  // never written
        source = .borrowed(owner)
    }

    deinit {
        switch source {
        case .arena: decode_weights_release(raw)
        case .heap: raw.deallocate()
        case .borrowed: break
        }
    }
}

/// `x · Wᵀ + b` with `weight` [out, in] in its stored format; `scratch` receives converted tiles.
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
/// `weight` in its stored format. With `accumulate` the product (and bias) is added onto `y`.
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
        // A decode step reads every weight once: no conversion, the stored bytes read directly.
        weight.multiply(x, into: y, accumulate: beta != 0)
        return
    }
    weight.multiply(rows: rows, x, inputStride: inputStride, into: y, outputStride: outputStride, beta: beta, scratch: &scratch)
}

extension WeightMatrix {
    /// How a product of many rows meets weights not held as F32. `automatic` (the default): integer
    /// dot products (quant_gemm) for every block format (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K,
    /// Q6_K) at every row count. The K-quant kernel (tiles of 8 weight rows packed once per product
    /// with the rows in the lanes, four activation rows per pass, up to 8 byte products summed in 16
    /// bits per scale multiply) runs 88–92 GMAC/s for Q4_K and 70–77 for Q6_K on one core of this
    /// project's AVX2 machine against 61–64 for the kernel before it (142 × 2048 × 4096, one thread,
    /// CPU time, alternating, load 6–9); matrices held in tile form (`tilesBlockFormats`) are unpacked a
    /// panel at a time from the tiles instead, at the same rate (Q4_K 98 against 100, Q6_K 76 against
    /// 76 GMAC/s, 142 × 4096 × 4096, one thread, load 3). The 32-value kernel (eight weight rows in the lanes × five
    /// activation rows, see quant_kernels.c) runs Q8_0 at 53–55 GMAC/s per core at 7B shapes (CPU time,
    /// one thread, loaded machine), 1.5× the 2 × 3 tile kernel before it, which had lost to F32 tiles +
    /// sgemm above ~450 rows; integer at every row count also keeps OpenBLAS's threads from running
    /// beside the worker team (under load the two collapsed: 39 s for a 3.4 s prefill).
    /// BF16 runs bf16w_gemm under `automatic` only (the weights widened inside the product; tiles and
    /// sgemm under the others). `integer` and `tiles` force one path for every block format,
    /// `wholeMatrix` converts the whole matrix first (the earliest path); those three are kept for the
    /// benchmark's comparison. Process-wide.
    public enum PrefillConversion: Sendable { case automatic, integer, tiles, wholeMatrix }
    nonisolated(unsafe) public static var prefillConversion = PrefillConversion.automatic

    /// Whether a product of `rows` input rows on weights in `format` runs integer dot products now.
    public static func integerProducts(_ format: WeightFormat, rows: Int) -> Bool {
        guard quant_gemm_supported(Int32(format.rawValue)) != 0 else { return false }
        switch prefillConversion {
        case .automatic, .integer: return true
        case .tiles, .wholeMatrix: return false
        }
    }

    /// Weight rows converted per tile: about 4 MB of F32 (L3-resident when the GEMM reads it) and at
    /// least 128 rows — a thinner panel leaves the GEMM too narrow to run at full rate (measured with
    /// BF16 encoder weights: 32-row panels were slower than the whole-matrix conversion).
    public static func widenedPanelRows(cols: Int) -> Int { max(128, (1 << 20) / max(1, cols) / 16 * 16) }

    /// Whether many-row products run the CPU's BF16 dot products now (the matrix was packed for them
    /// and the kernel path allows them).
    public var usesNativeBF16: Bool { panels != nil && bf16_gemm_mode() != 0 }

    /// `y (+)= x · Wᵀ` for `rows` input rows (beta 0 or 1) through sgemm.
    fileprivate func multiply(rows m: Int, _ x: UnsafePointer<Float>, inputStride: Int, into y: UnsafeMutablePointer<Float>,
                              outputStride: Int, beta: Float, scratch: inout [Float]) {
        let k = cols
        func gemm(_ w: UnsafePointer<Float>, rows n: Int, firstRow: Int) {
            sgemmXWt(m: m, n: n, k: k, x, inputStride: inputStride, w, beta: beta, into: y + firstRow, outputStride: outputStride)
        }
        if let panels, let part = parts.first, bf16_gemm_mode() != 0 {
            // The native BF16 kernel (activations rounded to BF16, F32 accumulation).
            let mode = bf16_gemm_mode()
            withExtendedLifetime((panels, part.buffer)) {
                bf16_gemm(x, m, inputStride, panels.raw.assumingMemoryBound(to: UInt32.self), rows, k, y, outputStride,
                          beta, mode == 2 ? 1 : 0)
            }
            return
        }
        if Self.prefillConversion == .wholeMatrix || (parts.count == 1 && parts[0].format == .f32) {
            withFloats(scratch: &scratch) { gemm($0, rows: rows, firstRow: 0) }
            return
        }
        let tileRows = min(rows, Self.widenedPanelRows(cols: k))
        // Consecutive parts on the integer path go as one product (the activation quantized once).
        var integerRun: [Part] = []
        func flushIntegerRun() {
            guard let first = integerRun.first else { return }
            Self.withQuantParts(integerRun) { table in
                // Fails only when the quantized activations (about m · k bytes) cannot be had.
                let status = quant_gemm_parts(table.baseAddress, table.count, k, x, m, inputStride, y + first.firstRow, outputStride,
                                              beta != 0 ? 1 : 0)
                precondition(status == 0, "out of memory for \(m) quantized activation rows of \(k) values")
            }
            integerRun.removeAll()
        }
        defer { flushIntegerRun() }
        for p in parts {
            if Self.integerProducts(p.format, rows: m) {
                integerRun.append(p)
                continue
            }
            flushIntegerRun()
            if p.format == .bf16, Self.prefillConversion == .automatic, bf16w_gemm_supported() != 0 {
                // BF16 widened inside the product, a panel at a time: the matrix is never held in F32.
                let need = bf16w_gemm_scratch_floats(m, k)
                if scratch.count < need { scratch = [Float](repeating: 0, count: need) }
                scratch.withUnsafeMutableBufferPointer { packed in
                    withExtendedLifetime(p.buffer) {
                        _ = bf16w_gemm(x, m, inputStride, p.bytes.assumingMemoryBound(to: UInt16.self), p.rows, k, k,
                                       y + p.firstRow, outputStride, beta, packed.baseAddress!)
                    }
                }
                continue
            }
            if p.format == .f32 {
                withExtendedLifetime(p.buffer) { gemm(p.bytes.assumingMemoryBound(to: Float.self), rows: p.rows, firstRow: p.firstRow) }
                continue
            }
            // The scratch tile is grown only when a part converts (K-quant models never hold it).
            if scratch.count < tileRows * k { scratch = [Float](repeating: 0, count: tileRows * k) }
            scratch.withUnsafeMutableBufferPointer { tile in
                var r = 0
                while r < p.rows {
                    let n = min(tileRows, p.rows - r)
                    Self.convert(p, from: r, rows: n, cols: k, into: tile.baseAddress!)
                    gemm(tile.baseAddress!, rows: n, firstRow: p.firstRow + r)
                    r += n
                }
            }
        }
    }

    /// `parts` (consecutive rows) as quant_kernels' part table, on the stack, for `body`.
    private static func withQuantParts(_ parts: [Part], _ body: (UnsafeMutableBufferPointer<quant_part>) -> Void) {
        withUnsafeTemporaryAllocation(of: quant_part.self, capacity: parts.count) { table in
            for (i, p) in parts.enumerated() {
                table.initializeElement(at: i, to: p.table)
            }
            withExtendedLifetime(parts) { body(table) }
        }
    }

    /// Row `r` as F32 into `destination` (an embedding lookup).
    public func copyRow(_ r: Int, into destination: UnsafeMutablePointer<Float>) {
        guard r >= 0, r < rows, let p = parts.last(where: { $0.firstRow <= r }) else { return }
        withExtendedLifetime(p.buffer) {
            switch p.format {
            case .f32: destination.update(from: (p.bytes + (r - p.firstRow) * p.rowBytes).assumingMemoryBound(to: Float.self), count: cols)
            default:
                var table = p.table
                quant_dequantize_part(&table, r - p.firstRow, 1, cols, destination, cols)
            }
        }
    }

    /// `y (+)= W · x` for one vector (`cols` floats in, `rows` out) in the stored format, split over
    /// the decode team.
    public func multiply(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        guard rows > 0 else { return }
        guard cols > 0 else {
            if !accumulate { y.update(repeating: 0, count: rows) }
            return
        }
        if parts.allSatisfy({ $0.format != .f32 && $0.format != .bf16 }) {
            // Block formats and F16: one product over every part (stacked Q, K, V: one team run).
            Self.withQuantParts(parts) { table in
                // Fails only when the activation's few KB of scratch cannot be had.
                let status = quant_matvec_parts(table.baseAddress, table.count, cols, x, y, accumulate ? 1 : 0)
                precondition(status == 0, "out of memory for a \(cols)-value activation")
            }
            return
        }
        for p in parts {
            withExtendedLifetime(p.buffer) {
                let out = y + p.firstRow
                switch p.format {
                case .f32:
                    decode_matvec_f32(p.bytes.assumingMemoryBound(to: Float.self), p.rows, cols, cols, x, out, accumulate ? 1 : 0)
                case .bf16:
                    decode_matvec_bf16(p.bytes.assumingMemoryBound(to: UInt16.self), p.rows, cols, cols, x, out, accumulate ? 1 : 0)
                default:
                    // Fails only when the activation's few KB of scratch cannot be had.
                    var table = p.table
                    let status = quant_matvec_parts(&table, 1, cols, x, out, accumulate ? 1 : 0)
                    precondition(status == 0, "out of memory for a \(cols)-value activation")
                }
            }
        }
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

/// y[m, n] = x[m, k] · w[n, k]ᵀ + beta · y, as EncoderPaths.current.gemmThreading says: big products split
/// W's rows (y's columns) over the cores, each slice a single-threaded sgemm.
func sgemmXWt(m: Int, n: Int, k: Int, _ x: UnsafePointer<Float>, inputStride: Int, _ w: UnsafePointer<Float>, beta: Float,
              into y: UnsafeMutablePointer<Float>, outputStride: Int) {
    let slices = EncoderPaths.current.gemmThreading == .slices ? encoderGEMMSlices(m: m, n: n, k: k, granule: 16) : 1
    guard slices > 1 else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), 1,
                    x, Int32(inputStride), w, Int32(k), beta, y, Int32(outputStride))
        return
    }
    let a = ReadPointer(x), b = ReadPointer(w), c = SendablePointer(y)
    let restore = blasThreads
    openblas_set_num_threads(1)
    DispatchQueue.concurrentPerform(iterations: slices) { i in
        // Slice bounds on multiples of 16 columns (whole vector registers of the kernel's tiles).
        let start = n * i / slices / 16 * 16, end = i == slices - 1 ? n : n * (i + 1) / slices / 16 * 16
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(end - start), Int32(k), 1,
                    a.pointer, Int32(inputStride), b.pointer + start * k, Int32(k), beta, c.pointer! + start, Int32(outputStride))
    }
    openblas_set_num_threads(restore)
}

/// Column slices (one per thread) for a large product of m rows, n outputs and k inputs whose slices
/// start on multiples of `granule` columns: as many as OpenBLAS would use threads
/// (OPENBLAS_NUM_THREADS, or a benchmark's setting); 1 for a slice narrower than 256 columns or a
/// product under ~16 M multiply-adds, which would run below the GEMM's rate.
func encoderGEMMSlices(m: Int, n: Int, k: Int, granule: Int) -> Int {
    guard m >= 64, m * n * k >= 1 << 24 else { return 1 }
    return max(1, min(Int(openblas_get_num_threads()), n / 256, n / granule))
}
