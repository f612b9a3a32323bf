// safetensors: an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}, then the data.
//
// SafeTensorsFile maps a file (mmap) and checks the header length and every tensor's offsets against
// the file size before any tensor is read; F32, F16 and BF16 become Float32 when a tensor is read.
// WeightStore opens a model directory (model.safetensors, or the shards listed in
// model.safetensors.index.json) and hands out tensors by name with their shape checked.
// SafeTensorsWriter writes F32 and I32 tensors with string metadata, atomically (temp file + rename).
import Foundation

public enum WeightsError: Error, CustomStringConvertible, Equatable {
    case unreadable(file: String, cause: String)
    case unwritable(file: String, cause: String)
    case malformed(file: String, cause: String)
    case missingTensor(name: String, file: String)
    case wrongShape(name: String, expected: [Int], found: [Int])
    case unsupportedDType(name: String, dtype: String)
    /// A tensor of another format (a GGUF projector file) that cannot be used as it is.
    case badTensor(file: String, name: String, cause: String)

    public var description: String {
        switch self {
        case let .unreadable(file, cause): return "\(file): cannot read: \(cause)"
        case let .unwritable(file, cause): return "\(file): cannot write: \(cause)"
        case let .malformed(file, cause): return "\(file): not a valid safetensors file: \(cause)"
        case let .missingTensor(name, file): return "\(file): tensor '\(name)' is missing"
        case let .wrongShape(name, expected, found):
            return "tensor '\(name)' has shape \(found), expected \(expected)"
        case let .unsupportedDType(name, dtype): return "tensor '\(name)' has unsupported dtype \(dtype)"
        case let .badTensor(file, name, cause): return "\(file): tensor '\(name)': \(cause)"
        }
    }
}

/// One memory-mapped safetensors file.
public final class SafeTensorsFile: @unchecked Sendable {  // immutable after init; the mapping is read-only
    public struct Entry: Sendable {
        public let dtype: String
        public let shape: [Int]
        /// Byte range inside the data section.
        public let range: Range<Int>
    }

    public let path: String
    public let entries: [String: Entry]
    public let metadata: [String: String]
    private let base: UnsafeRawPointer
    private let mappedSize: Int
    private let dataStart: Int

    public init(path: String) throws(WeightsError) {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw .unreadable(file: path, cause: String(cString: strerror(errno))) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .unreadable(file: path, cause: String(cString: strerror(errno))) }
        let size = Int(info.st_size)
        guard size >= 8 else { throw .malformed(file: path, cause: "file of \(size) bytes has no header length") }
        guard let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), mapped != MAP_FAILED else {
            throw .unreadable(file: path, cause: "mmap failed: \(String(cString: strerror(errno)))")
        }
        let base = UnsafeRawPointer(mapped)
        var headerLength: UInt64 = 0
        for i in 0..<8 { headerLength |= UInt64(base.load(fromByteOffset: i, as: UInt8.self)) << (8 * UInt64(i)) }
        do {
            guard headerLength <= UInt64(size - 8) else {
                throw WeightsError.malformed(file: path, cause: "header length \(headerLength) beyond the file size \(size)")
            }
            guard headerLength <= UInt64(SafeTensorsHeader.maximumLength) else {
                throw WeightsError.malformed(file: path, cause: "header of \(headerLength) bytes is larger than \(SafeTensorsHeader.maximumLength)")
            }
            let dataStart = 8 + Int(headerLength)
            let parsed: SafeTensorsHeader
            do {
                parsed = try SafeTensorsHeader.parse(UnsafeRawBufferPointer(start: base + 8, count: Int(headerLength)),
                                                     dataSize: size - dataStart)
            } catch {
                throw WeightsError.malformed(file: path, cause: error.cause)
            }
            var entries: [String: Entry] = [:]
            for t in parsed.tensors { entries[t.name] = Entry(dtype: t.dtype, shape: t.shape, range: t.begin..<t.end) }
            let metadata = parsed.metadata
            self.entries = entries
            self.metadata = metadata
            self.base = base
            self.mappedSize = size
            self.dataStart = dataStart
        } catch let error as WeightsError {
            munmap(mapped, size)
            throw error
        } catch {
            munmap(mapped, size)
            throw .malformed(file: path, cause: "\(error)")
        }
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), mappedSize) }

    /// A tensor's values as Float32 (F32, F16, BF16). A NaN or an infinity is refused, naming the
    /// tensor: weights like that answer nothing (every logit NaN) without a word otherwise.
    public func floats(_ name: String) throws(WeightsError) -> [Float] {
        let values = try convertedFloats(name)
        if let i = Self.firstNonFinite(values) {
            throw .malformed(file: path, cause: "tensor '\(name)' holds \(values[i]) at element \(i)")
        }
        return values
    }

    static func firstNonFinite(_ values: [Float]) -> Int? {
        values.withUnsafeBytes { bytes in
            bytes.baseAddress.flatMap { WeightFormat.f32.firstNonFinite($0, rows: 1, cols: values.count) }
        }
    }

    private func convertedFloats(_ name: String) throws(WeightsError) -> [Float] {
        guard let entry = entries[name] else { throw .missingTensor(name: name, file: path) }
        let p = base + dataStart + entry.range.lowerBound
        switch entry.dtype {
        case "F32":
            let count = entry.range.count / 4
            return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                UnsafeMutableRawPointer(buffer.baseAddress!).copyMemory(from: p, byteCount: count * 4)
                initialized = count
            }
        case "F16":
            let count = entry.range.count / 2
            return (0..<count).map { Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))) }
        case "BF16":
            let count = entry.range.count / 2
            return (0..<count).map { Float(bitPattern: UInt32(p.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self)) << 16) }
        default:
            throw .unsupportedDType(name: name, dtype: entry.dtype)
        }
    }

    /// A tensor's values as Int32 (I32 only).
    public func int32s(_ name: String) throws(WeightsError) -> [Int32] {
        guard let entry = entries[name] else { throw .missingTensor(name: name, file: path) }
        guard entry.dtype == "I32" else { throw .unsupportedDType(name: name, dtype: entry.dtype) }
        let p = base + dataStart + entry.range.lowerBound
        return (0..<(entry.range.count / 4)).map { p.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self) }
    }

    /// A tensor as a matrix: [shape[0], product of the rest]; a 1-D tensor becomes one row.
    public func matrix(_ name: String) throws(WeightsError) -> Matrix {
        guard let entry = entries[name] else { throw .missingTensor(name: name, file: path) }
        let values = try floats(name)
        let rows = entry.shape.count >= 2 ? entry.shape[0] : 1
        let cols = entry.shape.count >= 2 ? entry.shape.dropFirst().reduce(1, *) : values.count
        return Matrix(unchecked: rows, cols, values)
    }
}

/// The weights of a model directory, by name.
public struct WeightStore: Sendable {
    public let directory: String
    private let files: [String: SafeTensorsFile]  // tensor name → file holding it
    public let allFiles: [SafeTensorsFile]

    public init(directory: String) throws(WeightsError) {
        self.directory = directory
        let indexPath = (directory as NSString).appendingPathComponent("model.safetensors.index.json")
        let singlePath = (directory as NSString).appendingPathComponent("model.safetensors")
        var files: [String: SafeTensorsFile] = [:]
        var all: [SafeTensorsFile] = []
        if FileManager.default.fileExists(atPath: indexPath) {
            guard let data = FileManager.default.contents(atPath: indexPath) else {
                throw .unreadable(file: indexPath, cause: "cannot open")
            }
            guard let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let map = json["weight_map"] as? [String: String] else {
                throw .malformed(file: indexPath, cause: "no weight_map object")
            }
            var shards: [String: SafeTensorsFile] = [:]
            for shard in Set(map.values).sorted() {
                guard !shard.contains("/") else { throw .malformed(file: indexPath, cause: "shard '\(shard)' outside the directory") }
                let file = try SafeTensorsFile(path: (directory as NSString).appendingPathComponent(shard))
                shards[shard] = file
                all.append(file)
            }
            for (name, shard) in map {
                guard let file = shards[shard], file.entries[name] != nil else {
                    throw .missingTensor(name: name, file: (directory as NSString).appendingPathComponent(shard))
                }
                files[name] = file
            }
        } else if FileManager.default.fileExists(atPath: singlePath) {
            let file = try SafeTensorsFile(path: singlePath)
            all.append(file)
            for name in file.entries.keys { files[name] = file }
        } else {
            throw .unreadable(file: singlePath, cause: "neither model.safetensors nor model.safetensors.index.json in \(directory)")
        }
        self.files = files
        self.allFiles = all
    }

    public var names: [String] { files.keys.sorted() }
    public func contains(_ name: String) -> Bool { files[name] != nil }
    public func entry(_ name: String) -> SafeTensorsFile.Entry? { files[name]?.entries[name] }

    private func file(_ name: String) throws(WeightsError) -> SafeTensorsFile {
        guard let file = files[name] else {
            throw .missingTensor(name: name, file: allFiles.count == 1 ? allFiles[0].path : directory)
        }
        return file
    }

    /// A tensor whose shape must be `shape`, as [shape[0], product of the rest] (a vector: one row).
    public func matrix(_ name: String, shape: [Int]) throws(WeightsError) -> Matrix {
        let file = try file(name)
        let found = file.entries[name]?.shape ?? []
        guard found == shape else { throw .wrongShape(name: name, expected: shape, found: found) }
        return try file.matrix(name)
    }

    /// A 1-D tensor of `count` values.
    public func vector(_ name: String, count: Int) throws(WeightsError) -> [Float] {
        let file = try file(name)
        let found = file.entries[name]?.shape ?? []
        guard found == [count] else { throw .wrongShape(name: name, expected: [count], found: found) }
        return try file.floats(name)
    }
}

/// Builds a safetensors file in memory and writes it atomically.
public struct SafeTensorsWriter: Sendable {
    private var tensors: [(name: String, dtype: String, shape: [Int], bytes: [UInt8])] = []
    public var metadata: [String: String] = [:]

    public init() {}

    public mutating func add(_ name: String, floats: [Float], shape: [Int]) throws(WeightsError) {
        guard shape.reduce(1, *) == floats.count else { throw .wrongShape(name: name, expected: shape, found: [floats.count]) }
        tensors.append((name, "F32", shape, floats.withUnsafeBytes { Array($0) }))
    }

    public mutating func add(_ name: String, matrix: Matrix) {
        tensors.append((name, "F32", [matrix.rows, matrix.cols], matrix.storage.withUnsafeBytes { Array($0) }))
    }

    public mutating func add(_ name: String, int32s: [Int32], shape: [Int]) throws(WeightsError) {
        guard shape.reduce(1, *) == int32s.count else { throw .wrongShape(name: name, expected: shape, found: [int32s.count]) }
        tensors.append((name, "I32", shape, int32s.withUnsafeBytes { Array($0) }))
    }

    /// The length prefix and JSON header of tensors laid out back to back in the given order.
    static func header(_ tensors: [(name: String, dtype: String, shape: [Int], byteCount: Int)],
                       metadata: [String: String]) throws(WeightsError) -> Data {
        var header: [String: Any] = [:]
        var offset = 0
        for t in tensors {
            header[t.name] = ["dtype": t.dtype, "shape": t.shape, "data_offsets": [offset, offset + t.byteCount]] as [String: Any]
            offset += t.byteCount
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        guard var json = try? JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]) else {
            throw .malformed(file: "(safetensors header)", cause: "cannot encode the header")
        }
        while json.count % 8 != 0 { json.append(0x20) }  // data aligned to 8 bytes, as the reference writer does
        var out = Data()
        var length = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &length) { out.append(contentsOf: $0) }
        out.append(json)
        return out
    }

    /// The file's bytes.
    public func serialized() throws(WeightsError) -> Data {
        var out = try Self.header(tensors.map { ($0.name, $0.dtype, $0.shape, $0.bytes.count) }, metadata: metadata)
        for t in tensors { out.append(contentsOf: t.bytes) }
        return out
    }

    /// Writes to a temporary file beside `path`, then renames it: a failure leaves nothing behind.
    public func write(to path: String) throws(WeightsError) {
        let data = try serialized()
        let url = URL(fileURLWithPath: path)
        let temp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).\(getpid()).tmp")
        do {
            try data.write(to: temp)
        } catch {
            try? FileManager.default.removeItem(at: temp)
            throw .unwritable(file: path, cause: error.localizedDescription)
        }
        guard rename(temp.path, path) == 0 else {
            let cause = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: temp)
            throw .unwritable(file: path, cause: cause)
        }
    }
}

/// A safetensors file built as its tensors arrive, for outputs of unbounded length (`encode -` on
/// a stream): the data goes to a spool file at once, memory holds only the header, and `finish`
/// writes header + data to a temporary file renamed to the destination. Tensors arrive in groups
/// (`append`) that are all in the file or none: `finish` may run from another thread (a signal
/// handler's queue) between two groups and writes a valid file of the groups so far.
public final class SafeTensorsSpool: @unchecked Sendable {  // every field is guarded by lock
    public struct Tensor: Sendable {
        public var name: String, dtype: String, shape: [Int], bytes: [UInt8]
        public init(name: String, floats: [Float], shape: [Int]) {
            (self.name, dtype, self.shape, bytes) = (name, "F32", shape, floats.withUnsafeBytes { Array($0) })
        }
        public init(name: String, int32s: [Int32], shape: [Int]) {
            (self.name, dtype, self.shape, bytes) = (name, "I32", shape, int32s.withUnsafeBytes { Array($0) })
        }
    }

    public let destination: String
    /// Where the data waits; the caller may register it for removal on failure.
    public let spoolPath: String
    private let lock = NSLock()
    private let fd: Int32
    private var entries: [(name: String, dtype: String, shape: [Int], byteCount: Int)] = []
    private var names: Set<String> = []
    private var metadata: [String: String] = [:]
    private var finished = false
    private var appended = 0
    /// Groups appended so far.
    public var groups: Int { lock.withLock { appended } }

    public init(destination: String, spoolPath: String) throws(WeightsError) {
        self.destination = destination
        self.spoolPath = spoolPath
        fd = open(spoolPath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .unwritable(file: destination, cause: "\(spoolPath): \(String(cString: strerror(errno)))") }
    }

    deinit {
        close(fd)
        if !finished { unlink(spoolPath) }
    }

    /// Adds the tensors and metadata of one group, all or nothing.
    public func append(_ tensors: [Tensor], metadata more: [String: String]) throws(WeightsError) {
        lock.lock()
        defer { lock.unlock() }
        do {
            guard !finished else { throw .unwritable(file: destination, cause: "the file is already finished") }
            for t in tensors {
                guard !names.contains(t.name), let count = SizeLimits.product(t.shape),
                      count * (t.dtype == "F32" || t.dtype == "I32" ? 4 : 1) == t.bytes.count else {
                    throw .malformed(file: destination, cause: "tensor '\(t.name)' is repeated or does not match its shape \(t.shape)")
                }
            }
            let start = lseek(fd, 0, SEEK_END)
            for t in tensors {
                let failure = t.bytes.withUnsafeBytes { raw -> Int32? in
                    var p = raw.baseAddress!, left = raw.count
                    while left > 0 {
                        let n = write(fd, p, left)
                        if n < 0 { if errno == EINTR { continue }; return errno }
                        p += n
                        left -= n
                    }
                    return nil
                }
                if let failure {
                    _ = ftruncate(fd, start)  // the group is all or nothing
                    throw .unwritable(file: destination, cause: String(cString: strerror(failure)))
                }
            }
            for t in tensors {
                entries.append((t.name, t.dtype, t.shape, t.bytes.count))
                names.insert(t.name)
            }
            for (k, v) in more { metadata[k] = v }
            appended += 1
        }
    }

    /// Writes the file of every group appended so far and removes the spool.
    public func finish() throws(WeightsError) {
        lock.lock()
        defer { lock.unlock() }
        do {
            guard !finished else { return }
            let header = try SafeTensorsWriter.header(entries, metadata: metadata)
            let temporary = spoolPath + ".tmp"
            let out = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard out >= 0 else { throw .unwritable(file: destination, cause: String(cString: strerror(errno))) }
            var failure: Int32?
            func put(_ p: UnsafeRawPointer, _ count: Int) {
                var p = p, left = count
                while left > 0, failure == nil {
                    let n = write(out, p, left)
                    if n < 0 { if errno != EINTR { failure = errno }; continue }
                    p += n
                    left -= n
                }
            }
            header.withUnsafeBytes { put($0.baseAddress!, $0.count) }
            var buffer = [UInt8](repeating: 0, count: 1 << 20)
            var offset: off_t = 0
            while failure == nil {
                let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, $0.count, offset) }
                if n < 0 { if errno != EINTR { failure = errno }; continue }
                if n == 0 { break }
                buffer.withUnsafeBytes { put($0.baseAddress!, n) }
                offset += off_t(n)
            }
            if failure == nil && fsync(out) != 0 { failure = errno }
            close(out)
            if failure == nil && rename(temporary, destination) != 0 { failure = errno }
            if let failure {
                unlink(temporary)
                throw .unwritable(file: destination, cause: String(cString: strerror(failure)))
            }
            finished = true
            unlink(spoolPath)
        }
    }
}
