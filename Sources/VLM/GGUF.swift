// GGUF (v2/v3) as llama.cpp writes it, read from a memory-mapped file:
//   "GGUF", version u32, tensor count u64, metadata count u64,
//   metadata: key (u64 length + UTF-8), value type u32, value (arrays: element type u32, count u64, values),
//   tensor infos: name, dimension count u32, dimensions u64 (innermost first), ggml type u32, offset u64,
//   padding to `general.alignment` (default 32), then the tensor data (offsets relative to its start).
// Every length, count and offset is checked against the file size before it is used. Tensors of
// type F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K are read as Float32
// (dequantized as ggml does) or handed over in their block format, in place in the mapping
// (`weightMatrix`); any other type is a typed error that names the tensor and the type.
import Foundation
import Tensor

/// A metadata value.
public enum GGUFValue: Sendable, Equatable {
    case uint(UInt64)
    case int(Int64)
    case float(Double)
    case bool(Bool)
    case string(String)
    case array([GGUFValue])

    public var intValue: Int? {
        switch self {
        case let .uint(v): return v <= UInt64(Int.max) ? Int(v) : nil
        case let .int(v): return Int(v)
        default: return nil
        }
    }
    public var doubleValue: Double? {
        switch self {
        case let .float(v): return v
        case let .uint(v): return Double(v)
        case let .int(v): return Double(v)
        default: return nil
        }
    }
    public var stringValue: String? { if case let .string(s) = self { return s } else { return nil } }
    public var boolValue: Bool? { if case let .bool(b) = self { return b } else { return nil } }
    public var arrayValue: [GGUFValue]? { if case let .array(a) = self { return a } else { return nil } }
}

/// ggml tensor types by their numbers in the file.
public enum GGMLType: UInt32, Sendable {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9
    case q2_k = 10, q3_k = 11, q4_k = 12, q5_k = 13, q6_k = 14, q8_k = 15
    case iq2_xxs = 16, iq2_xs = 17, iq3_xxs = 18, iq1_s = 19, iq4_nl = 20, iq3_s = 21, iq2_s = 22, iq4_xs = 23
    case i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28, iq1_m = 29, bf16 = 30
    case tq1_0 = 34, tq2_0 = 35, mxfp4 = 39

    /// (values per block, bytes per block) for the types whose size is known here.
    var blockLayout: (values: Int, bytes: Int)? {
        switch self {
        case .f32, .i32: return (1, 4)
        case .f16, .bf16, .i16: return (1, 2)
        case .i8: return (1, 1)
        case .f64, .i64: return (1, 8)
        case .q4_0: return (32, 18)
        case .q4_1: return (32, 20)
        case .q5_0: return (32, 22)
        case .q5_1: return (32, 24)
        case .q8_0: return (32, 34)
        case .q8_1: return (32, 36)
        case .q2_k: return (256, 84)
        case .q3_k: return (256, 110)
        case .q4_k: return (256, 144)
        case .q5_k: return (256, 176)
        case .q6_k: return (256, 210)
        case .q8_k: return (256, 292)
        default: return nil
        }
    }

    public var name: String { weightFormat?.name ?? String(describing: self).uppercased() }

    /// The format a weight matrix holds this type in; nil for the types we do not read.
    public var weightFormat: WeightFormat? { WeightFormat(rawValue: rawValue) }
}

public final class GGUFFile: @unchecked Sendable {  // immutable after init; the mapping is read-only
    public struct TensorInfo: Sendable {
        public let name: String
        /// Dimensions as GGUF lists them, innermost (contiguous) first.
        public let dimensions: [Int]
        public let typeCode: UInt32
        /// Absolute byte range in the file.
        public let range: Range<Int>
        public var type: GGMLType? { GGMLType(rawValue: typeCode) }
        public var count: Int { dimensions.reduce(1, *) }
    }

    public let path: String
    public let version: UInt32
    public let metadata: [String: GGUFValue]
    public let tensors: [String: TensorInfo]
    /// Tensor names in file order.
    public let tensorNames: [String]
    public let alignment: Int
    private let mapping: FileMapping
    private let data: Data

    public init(path: String) throws(VLMError) {
        self.path = path
        mapping = try FileMapping(path: path)
        let data = mapping.count > 0
            ? Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: mapping.base), count: mapping.count, deallocator: .none)
            : Data()
        self.data = data
        var reader = ByteReader(data: data, file: path)
        let magic = try reader.u32()
        guard magic == 0x4655_4747 else { throw .malformed(file: path, cause: "not a GGUF file (magic \(String(magic, radix: 16)))") }
        version = try reader.u32()
        guard version == 2 || version == 3 else { throw .unsupported(file: path, feature: "GGUF version \(version)") }
        let tensorCount = try reader.count(try reader.u64(), minimumBytesEach: 24, what: "tensor count")
        let kvCount = try reader.count(try reader.u64(), minimumBytesEach: 12, what: "metadata count")
        var metadata: [String: GGUFValue] = [:]
        for _ in 0..<kvCount {
            let key = try reader.string()
            metadata[key] = try reader.value(type: try reader.u32(), depth: 0)
        }
        self.metadata = metadata
        var alignment = 32
        if let a = metadata["general.alignment"] {
            guard let v = a.intValue, v > 0, v & (v - 1) == 0 else {
                throw .malformed(file: path, cause: "general.alignment \(a) is not a power of two")
            }
            alignment = v
        }
        self.alignment = alignment
        var infos: [(String, [Int], UInt32, UInt64)] = []
        for _ in 0..<tensorCount {
            let name = try reader.string()
            let dimensionCount = try reader.u32()
            guard dimensionCount >= 1, dimensionCount <= 4 else {
                throw .badTensor(file: path, tensor: name, cause: "\(dimensionCount) dimensions")
            }
            var dims: [Int] = []
            for _ in 0..<dimensionCount {
                let d = try reader.u64()
                guard d > 0, d < 1 << 40 else { throw .badTensor(file: path, tensor: name, cause: "dimension \(d)") }
                dims.append(Int(d))
            }
            infos.append((name, dims, try reader.u32(), try reader.u64()))
        }
        let dataStart = (reader.offset + alignment - 1) / alignment * alignment
        var tensors: [String: TensorInfo] = [:]
        var names: [String] = []
        for (name, dims, type, offset) in infos {
            guard tensors[name] == nil else { throw .badTensor(file: path, tensor: name, cause: "appears twice") }
            // Each dimension is below 2^40, but four of them can overflow: checked, not trapped. No
            // ggml type packs more than 8 values in a byte (IQ1_S: 1.56 bits), so a count beyond
            // that is more than the file holds.
            guard let count = SizeLimits.product(dims), count <= data.count * 8 else {
                throw .badTensor(file: path, tensor: name, cause: "shape \(dims) holds more values than the file of \(data.count) bytes")
            }
            var byteCount = 0
            if let layout = GGMLType(rawValue: type)?.blockLayout {
                guard dims[0] % layout.values == 0 else {
                    throw .badTensor(file: path, tensor: name, cause: "row of \(dims[0]) is not a whole number of \(layout.values)-value blocks")
                }
                byteCount = count / layout.values * layout.bytes
            }
            guard offset % UInt64(alignment) == 0, offset < UInt64(data.count),
                  dataStart + Int(offset) + byteCount <= data.count else {
                throw .badTensor(file: path, tensor: name, cause: "data at offset \(offset) (+\(byteCount) bytes) lies outside the file of \(data.count) bytes")
            }
            let begin = dataStart + Int(offset)
            tensors[name] = TensorInfo(name: name, dimensions: dims, typeCode: type, range: begin..<(begin + byteCount))
            names.append(name)
        }
        self.tensors = tensors
        self.tensorNames = names
    }

    public func string(_ key: String) -> String? { metadata[key]?.stringValue }
    public func int(_ key: String) -> Int? { metadata[key]?.intValue }
    public func double(_ key: String) -> Double? { metadata[key]?.doubleValue }

    /// An integer field a reader cannot do without: its absence names the file and the key.
    public func requiredInt(_ key: String) throws(VLMError) -> Int {
        guard let v = int(key) else { throw .missingField(file: path, field: key) }
        return v
    }

    /// The decoder's sizes as llama.cpp writes them for every architecture, under its name.
    public struct DecoderSizes: Sendable {
        public var hidden, intermediate, layers, heads, kvHeads: Int
        public var context: Int?
        public var rmsNormEps: Double?
        public var ropeTheta: Double?
        public var vocabulary: Int?
    }

    /// `<architecture>.embedding_length`, `.feed_forward_length`, `.block_count`,
    /// `.attention.head_count` (required), `.attention.head_count_kv` (the heads when absent),
    /// `.context_length`, `.attention.layer_norm_rms_epsilon`, `.rope.freq_base` and `.vocab_size`
    /// (else the tokenizer's token count).
    /// `general.architecture` must be `a` (else the error names the file and what it is).
    public func decoderSizes(architecture a: String) throws(VLMError) -> DecoderSizes {
        let found = string("general.architecture") ?? "(none)"
        guard found == a else { throw .unsupported(file: path, feature: "general.architecture '\(found)' (expected \(a))") }
        let heads = try requiredInt("\(a).attention.head_count")
        return DecoderSizes(hidden: try requiredInt("\(a).embedding_length"), intermediate: try requiredInt("\(a).feed_forward_length"),
                            layers: try requiredInt("\(a).block_count"), heads: heads,
                            kvHeads: int("\(a).attention.head_count_kv") ?? heads, context: int("\(a).context_length"),
                            rmsNormEps: double("\(a).attention.layer_norm_rms_epsilon"), ropeTheta: double("\(a).rope.freq_base"),
                            vocabulary: int("\(a).vocab_size") ?? metadata["tokenizer.ggml.tokens"]?.arrayValue?.count)
    }

    /// The tensor's block format, or the one-line error naming tensor and type.
    public func format(of name: String) throws(VLMError) -> WeightFormat {
        guard let info = tensors[name] else { throw .badTensor(file: path, tensor: name, cause: "missing") }
        guard let format = info.type?.weightFormat else {
            let typeName = info.type?.name ?? "type \(info.typeCode)"
            let supported = WeightFormat.allCases.map(\.name).joined(separator: ", ")
            throw .unsupported(file: path, feature: "tensor type \(typeName) of '\(name)' (supported: \(supported))")
        }
        return format
    }

    /// The tensor's format, refusing a NaN or an infinity in its values (or its blocks' scales),
    /// naming the tensor: weights like that load silently and answer "".
    private func finiteFormat(of name: String) throws(VLMError) -> WeightFormat {
        let format = try format(of: name)
        let info = tensors[name]!
        let cols = info.dimensions[0], rows = info.count / cols
        if let i = format.firstNonFinite(mapping.base + info.range.lowerBound, rows: rows, cols: cols) {
            throw .badTensor(file: path, tensor: name, cause: "holds a NaN or an infinity at element \(i) (\(format.name))")
        }
        return format
    }

    /// The tensor's values as Float32, dequantized.
    public func floats(_ name: String) throws(VLMError) -> [Float] {
        let format = try finiteFormat(of: name)
        let info = tensors[name]!
        let cols = info.dimensions[0], rows = info.count / cols
        var out = [Float](repeating: 0, count: info.count)
        out.withUnsafeMutableBufferPointer { dst in
            format.dequantize(mapping.base + info.range.lowerBound, rows: rows, cols: cols, into: dst.baseAddress!)
        }
        mapping.release(info.range)  // copied: its pages need not stay mapped
        return out
    }

    /// A 2-D tensor as a weight matrix in its stored format, read in place from the mapping (which
    /// stays open while the matrix lives): rows = dimensions[1], cols = dimensions[0]. With
    /// `rowOrder`, destination row r is the file's row rowOrder[r] (copied out of the mapping).
    /// `rowsOnly`: the matrix is only ever read a row at a time (an untied embedding), so block formats stay
    /// in place rather than repacked into tiles: only the rows of tokens seen are paged in (a 7B
    /// Q4_K_M file's token_embd is 74 MB, a prompt touches a few hundred KB of it).
    public func weightMatrix(_ name: String, rowOrder: [Int]? = nil, rowsOnly: Bool = false) throws(VLMError) -> WeightMatrix {
        let format = try finiteFormat(of: name)
        let info = tensors[name]!
        let cols = info.dimensions[0], rows = info.count / cols, rowBytes = format.rowBytes(cols)
        let base = mapping.base + info.range.lowerBound
        do {
            if let rowOrder {
                guard rowOrder.count == rows, rowOrder.allSatisfy({ $0 >= 0 && $0 < rows }) else {
                    throw VLMError.badTensor(file: path, tensor: name, cause: "row order of \(rowOrder.count) for \(rows) rows")
                }
                let copy = try WeightMatrix(rows: rows, cols: cols, format: format) { base + rowOrder[$0] * rowBytes }
                mapping.release(info.range)  // read once: its pages need not stay resident beside the copy
                return copy
            }
            if WeightMatrix.tiles(format) && !rowsOnly {
                // Block formats are repacked into 8-row tiles (WeightMatrix.tilesBlockFormats): the file's
                // pages are read once and need not stay resident beside the tiles.
                let tiled = try WeightMatrix(rows: rows, cols: cols, format: format) { base + $0 * rowBytes }
                mapping.release(info.range)
                return tiled
            }
            return try WeightMatrix(rows: rows, cols: cols, format: format, borrowing: base, owner: mapping)
        } catch let error as VLMError {
            throw error
        } catch {
            throw .badTensor(file: path, tensor: name, cause: "\(error)")
        }
    }

    /// A 2-D tensor as a row-major matrix: rows = dimensions[1], cols = dimensions[0] ([out, in] for weights).
    /// `shape` is checked when given, in the same [rows, cols] order.
    public func matrix(_ name: String, shape: [Int]? = nil) throws(VLMError) -> Matrix {
        guard let info = tensors[name] else { throw .badTensor(file: path, tensor: name, cause: "missing") }
        let cols = info.dimensions[0], rows = info.count / cols
        if let shape, shape != [rows, cols] {
            throw .badTensor(file: path, tensor: name, cause: "shape [\(rows), \(cols)], expected \(shape)")
        }
        do {
            return try Matrix(rows: rows, cols: cols, storage: try floats(name))
        } catch let error as VLMError {
            throw error
        } catch {
            throw .badTensor(file: path, tensor: name, cause: "\(error)")
        }
    }
}

/// Bounds-checked little-endian reads over the mapped file.
private struct ByteReader {
    let data: Data
    let file: String
    var offset = 0

    init(data: Data, file: String) {
        self.data = data
        self.file = file
    }

    mutating func bytes(_ n: Int) throws(VLMError) -> Range<Int> {
        guard n >= 0, offset + n <= data.count else {
            throw .malformed(file: file, cause: "truncated at byte \(offset) (needs \(n) more of \(data.count))")
        }
        defer { offset += n }
        return (data.startIndex + offset)..<(data.startIndex + offset + n)
    }

    mutating func load<T: FixedWidthInteger>(_: T.Type) throws(VLMError) -> T {
        let r = try bytes(MemoryLayout<T>.size)
        return data.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: r.lowerBound - data.startIndex, as: T.self)) }
    }

    mutating func u32() throws(VLMError) -> UInt32 { try load(UInt32.self) }
    mutating func u64() throws(VLMError) -> UInt64 { try load(UInt64.self) }

    /// A count that the remaining bytes could possibly hold.
    func count(_ value: UInt64, minimumBytesEach: Int, what: String) throws(VLMError) -> Int {
        guard value <= UInt64((data.count - offset) / max(1, minimumBytesEach)) else {
            throw .malformed(file: file, cause: "\(what) \(value) exceeds what the file can hold")
        }
        return Int(value)
    }

    mutating func string() throws(VLMError) -> String {
        let n = try count(try u64(), minimumBytesEach: 1, what: "string length")
        let r = try bytes(n)
        return String(decoding: data[r], as: UTF8.self)
    }

    mutating func value(type: UInt32, depth: Int) throws(VLMError) -> GGUFValue {
        switch type {
        case 0: return .uint(UInt64(try load(UInt8.self)))
        case 1: return .int(Int64(try load(Int8.self)))
        case 2: return .uint(UInt64(try load(UInt16.self)))
        case 3: return .int(Int64(try load(Int16.self)))
        case 4: return .uint(UInt64(try load(UInt32.self)))
        case 5: return .int(Int64(try load(Int32.self)))
        case 6: return .float(Double(Float(bitPattern: try load(UInt32.self))))
        case 7: return .bool(try load(UInt8.self) != 0)
        case 8: return .string(try string())
        case 9:
            guard depth < 4 else { throw .malformed(file: file, cause: "arrays nested deeper than 4 at byte \(offset)") }
            let elementType = try u32()
            // Reserved below, so the count is bounded by what its elements need in the file.
            let each = [0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 8: 8, 9: 12, 10: 8, 11: 8, 12: 8][Int(elementType)] ?? 1
            let n = try count(try u64(), minimumBytesEach: each, what: "array length")
            var items: [GGUFValue] = []
            items.reserveCapacity(n)
            for _ in 0..<n { items.append(try value(type: elementType, depth: depth + 1)) }
            return .array(items)
        case 10: return .uint(try u64())
        case 11: return .int(Int64(bitPattern: try u64()))
        case 12: return .float(Double(bitPattern: try u64()))
        default: throw .malformed(file: file, cause: "metadata value type \(type) at byte \(offset)")
        }
    }
}

// MARK: - Mapping

/// A file mapped read-only for the life of the object (tensors read in place keep it alive).
final class FileMapping: @unchecked Sendable {  // immutable; the pages are never written
    let base: UnsafeRawPointer
    let count: Int

    init(path: String) throws(VLMError) {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw .unreadable(file: path, cause: String(cString: strerror(errno))) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .unreadable(file: path, cause: String(cString: strerror(errno))) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw .unreadable(file: path, cause: "not a regular file") }
        count = Int(info.st_size)
        guard count > 0 else {
            base = UnsafeRawPointer(bitPattern: 1)!  // never read: every read is checked against count 0
            return
        }
        // 2 MiB pages where the system gives them: a decode step streams every weight once.
        guard let p = WeightFileMapping.map(descriptor: fd, bytes: count) else {
            throw .unreadable(file: path, cause: "mmap: \(String(cString: strerror(errno)))")
        }
        base = p
    }

    /// Unmaps the pages that hold any of `range` from this process (a later read maps them again
    /// from the page cache or the file, so a neighbour read in place loses nothing but a fault).
    /// Outward, not only the pages wholly inside: a 2 MiB page touched for a small tensor (a norm)
    /// after the matrices around it were copied and released stayed mapped whole — 28 MB of a
    /// SmolLM2-shaped Q8_0 file's mapping once its matrices were all repacked into tiles.
    func release(_ range: Range<Int>) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard page > 0, count > 0 else { return }
        let start = range.lowerBound / page * page, end = min((range.upperBound + page - 1) / page * page, count)
        guard end > start else { return }
        madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, MADV_DONTNEED)
    }

    deinit {
        if count > 0 { munmap(UnsafeMutableRawPointer(mutating: base), count) }
    }
}
