// The JSON header of a safetensors file, read as the format's specification and its reference
// library (huggingface/safetensors) read it:
// - one object; a name appears once (a duplicate is refused, not overwritten);
// - each tensor: "dtype" (a known type), "shape" (integers ≥ 0), "data_offsets" (two integers);
//   a number with a fraction or an exponent, a boolean or a value beyond 2^63 is not an integer;
// - "__metadata__": strings to strings;
// - the data ranges, in offset order, tile the data section exactly: each starts where the one
//   before it ended, its length is the shape's size, and the last ends at the end of the file
//   (no overlap, no gap, no uncovered bytes);
// - errors name the first offending tensor in offset order (then by name): the same every run.
// A small parser of its own rather than JSONSerialization, which keeps the last of duplicate keys
// and turns 1.5, true and 2^70 into numbers that look like integers.

struct SafeTensorsHeader {
    struct Tensor {
        var name: String
        var dtype: String
        var shape: [Int]
        var begin: Int
        var end: Int
    }

    var tensors: [Tensor] = []
    var metadata: [String: String] = [:]

    /// The reference refuses larger headers (100 MB) before parsing them.
    static let maximumLength = 100_000_000

    /// Bits per element of each dtype the reference knows.
    static let bits: [String: Int] = [
        "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
        "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32,
        "F64": 64, "I64": 64, "U64": 64, "C64": 64, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
    ]

    /// Parses and checks `bytes` (the header) against a data section of `dataSize` bytes; the
    /// error is the cause, without the file name.
    static func parse(_ bytes: UnsafeRawBufferPointer, dataSize: Int) throws(HeaderError) -> SafeTensorsHeader {
        var parser = JSONReader(bytes: bytes)
        var header = SafeTensorsHeader()
        try parser.skipSpace()
        guard parser.peek() == UInt8(ascii: "{") else { throw HeaderError("header is not a JSON object") }
        var seen = Set<String>()
        try parser.object { (key: String, parser: inout JSONReader) throws(HeaderError) in
            guard seen.insert(key).inserted else { throw HeaderError("'\(key)' appears twice in the header") }
            if key == "__metadata__" {
                var keys = Set<String>()
                guard parser.peek() == UInt8(ascii: "{") else { throw HeaderError("__metadata__ is not an object") }
                try parser.object { (k: String, parser: inout JSONReader) throws(HeaderError) in
                    guard keys.insert(k).inserted else { throw HeaderError("metadata '\(k)' appears twice") }
                    guard case .string(let v) = try parser.value() else { throw HeaderError("metadata '\(k)' is not a string") }
                    header.metadata[k] = v
                }
                return
            }
            guard parser.peek() == UInt8(ascii: "{") else { throw HeaderError("entry '\(key)' is not an object") }
            var dtype: String?, shape: [Int]?, offsets: [Int]?
            var fields = Set<String>()
            try parser.object { (field: String, parser: inout JSONReader) throws(HeaderError) in
                guard fields.insert(field).inserted else { throw HeaderError("tensor '\(key)': '\(field)' appears twice") }
                let value = try parser.value()
                switch field {
                case "dtype":
                    guard case .string(let s) = value else { throw HeaderError("tensor '\(key)': dtype is not a string") }
                    dtype = s
                case "shape", "data_offsets":
                    guard case .array(let items) = value else { throw HeaderError("tensor '\(key)': \(field) is not an array") }
                    var ints: [Int] = []
                    for item in items {
                        guard case .integer(let n) = item else {
                            throw HeaderError("tensor '\(key)': \(field) holds \(item), not an integer ≥ 0 below 2^63")
                        }
                        ints.append(n)
                    }
                    if field == "shape" { shape = ints } else { offsets = ints }
                default:
                    break  // the reference ignores fields it does not know
                }
            }
            guard let dtype, let shape, let offsets else { throw HeaderError("tensor '\(key)' lacks dtype, shape or data_offsets") }
            guard offsets.count == 2 else { throw HeaderError("tensor '\(key)': data_offsets has \(offsets.count) values, not 2") }
            header.tensors.append(Tensor(name: key, dtype: dtype, shape: shape, begin: offsets[0], end: offsets[1]))
        }
        try parser.skipSpace()
        guard parser.atEnd else { throw HeaderError("bytes after the header's JSON object") }
        try header.validate(dataSize: dataSize)
        return header
    }

    /// The data ranges tile the data section; each is its shape's size.
    mutating func validate(dataSize: Int) throws(HeaderError) {
        tensors.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        var next = 0
        for t in tensors {
            guard let width = Self.bits[t.dtype] else { throw HeaderError("tensor '\(t.name)' has unknown dtype \(t.dtype)") }
            guard t.begin == next, t.end >= t.begin else {
                let what = t.begin < next ? "overlaps the tensor before it" : (t.end < t.begin ? "ends before it begins" : "leaves bytes \(next)..<\(t.begin) uncovered")
                throw HeaderError("tensor '\(t.name)' data [\(t.begin), \(t.end)] \(what)")
            }
            guard let count = SizeLimits.product(t.shape), let bits = SizeLimits.product([count, width]) else {
                throw HeaderError("tensor '\(t.name)' shape \(t.shape) is too large")
            }
            guard bits % 8 == 0 else { throw HeaderError("tensor '\(t.name)' of \(bits) bits is not a whole number of bytes") }
            guard t.end - t.begin == bits / 8 else {
                throw HeaderError("tensor '\(t.name)' has \(t.end - t.begin) bytes for shape \(t.shape) \(t.dtype) (\(bits / 8) expected)")
            }
            guard t.end <= dataSize else {
                throw HeaderError("tensor '\(t.name)' data [\(t.begin), \(t.end)] beyond the file (\(dataSize) data bytes): truncated?")
            }
            next = t.end
        }
        guard next == dataSize else { throw HeaderError("\(dataSize - next) data bytes after the last tensor belong to none") }
    }
}

struct HeaderError: Error {
    var cause: String
    init(_ cause: String) { self.cause = cause }
}

/// A JSON reader over bytes: enough of RFC 8259 for a header, bounded in depth, with integers kept
/// apart from other numbers.
struct JSONReader {
    enum Value: CustomStringConvertible {
        case string(String), integer(Int), number(String), bool(Bool), null, array([Value]), object

        var description: String {
            switch self {
            case .string(let s): return "\"\(s)\""
            case .integer(let n): return "\(n)"
            case .number(let s): return s
            case .bool(let b): return "\(b)"
            case .null: return "null"
            case .array: return "an array"
            case .object: return "an object"
            }
        }
    }

    let bytes: UnsafeRawBufferPointer
    var index = 0
    var depth = 0
    static let maximumDepth = 64

    init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var atEnd: Bool { index >= bytes.count }
    func peek() -> UInt8? { index < bytes.count ? bytes[index] : nil }

    mutating func skipSpace() throws(HeaderError) {
        while let c = peek(), c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { index += 1 }
    }

    mutating func expect(_ c: UInt8) throws(HeaderError) {
        try skipSpace()
        guard peek() == c else { throw HeaderError("malformed JSON at byte \(index) of the header (expected '\(Character(Unicode.Scalar(c)))')") }
        index += 1
    }

    /// Reads an object, handing each key to `member`, which must read the value.
    mutating func object(_ member: (String, inout JSONReader) throws(HeaderError) -> Void) throws(HeaderError) {
        try expect(UInt8(ascii: "{"))
        depth += 1
        guard depth <= Self.maximumDepth else { throw HeaderError("JSON nested deeper than \(Self.maximumDepth)") }
        defer { depth -= 1 }
        try skipSpace()
        if peek() == UInt8(ascii: "}") { index += 1; return }
        while true {
            try skipSpace()
            let key = try string()
            try expect(UInt8(ascii: ":"))
            try skipSpace()
            try member(key, &self)
            try skipSpace()
            if peek() == UInt8(ascii: ",") { index += 1; continue }
            try expect(UInt8(ascii: "}"))
            return
        }
    }

    mutating func value() throws(HeaderError) -> Value {
        try skipSpace()
        guard let c = peek() else { throw HeaderError("the header's JSON ends early") }
        switch c {
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "{"):
            try object { (_: String, reader: inout JSONReader) throws(HeaderError) in _ = try reader.value() }
            return .object
        case UInt8(ascii: "["):
            index += 1
            depth += 1
            guard depth <= Self.maximumDepth else { throw HeaderError("JSON nested deeper than \(Self.maximumDepth)") }
            defer { depth -= 1 }
            var items: [Value] = []
            try skipSpace()
            if peek() == UInt8(ascii: "]") { index += 1; return .array(items) }
            while true {
                items.append(try value())
                try skipSpace()
                if peek() == UInt8(ascii: ",") { index += 1; continue }
                try expect(UInt8(ascii: "]"))
                return .array(items)
            }
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        default: return try number()
        }
    }

    mutating func literal(_ word: String) throws(HeaderError) {
        for b in word.utf8 {
            guard peek() == b else { throw HeaderError("malformed JSON at byte \(index) of the header") }
            index += 1
        }
    }

    mutating func number() throws(HeaderError) -> Value {
        let start = index
        if peek() == UInt8(ascii: "-") { index += 1 }
        var digits = 0, integral = true
        while let c = peek() {
            if c >= 0x30 && c <= 0x39 { digits += 1 } else if c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E")
                || c == UInt8(ascii: "+") || c == UInt8(ascii: "-") { integral = false } else { break }
            index += 1
        }
        guard digits > 0 else { throw HeaderError("malformed JSON at byte \(start) of the header") }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        if integral, !text.hasPrefix("-"), let n = Int(text) { return .integer(n) }
        return .number(text)
    }

    mutating func string() throws(HeaderError) -> String {
        guard peek() == UInt8(ascii: "\"") else { throw HeaderError("malformed JSON at byte \(index) of the header (expected a string)") }
        index += 1
        var out: [UInt8] = []
        while true {
            guard let c = peek() else { throw HeaderError("a string in the header does not end") }
            index += 1
            if c == UInt8(ascii: "\"") { break }
            if c < 0x20 { throw HeaderError("control character in a string at byte \(index - 1) of the header") }
            guard c == UInt8(ascii: "\\") else { out.append(c); continue }
            guard let e = peek() else { throw HeaderError("a string in the header does not end") }
            index += 1
            switch e {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if (0xD800..<0xDC00).contains(scalar), peek() == UInt8(ascii: "\\"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "u") {
                    index += 2
                    let low = try hex4()
                    guard (0xDC00..<0xE000).contains(low) else { throw HeaderError("invalid surrogate pair in the header") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                }
                guard let u = Unicode.Scalar(scalar) else { throw HeaderError("invalid \\u escape in the header") }
                out.append(contentsOf: Array(String(Character(u)).utf8))
            default:
                throw HeaderError("invalid escape at byte \(index - 1) of the header")
            }
        }
        let s = String(decoding: out, as: UTF8.self)
        guard s.utf8.elementsEqual(out) else { throw HeaderError("a string in the header is not UTF-8") }
        return s
    }

    mutating func hex4() throws(HeaderError) -> UInt32 {
        var v: UInt32 = 0
        for _ in 0..<4 {
            guard let c = peek(), let d = Character(Unicode.Scalar(c)).hexDigitValue else {
                throw HeaderError("invalid \\u escape in the header")
            }
            v = v * 16 + UInt32(d)
            index += 1
        }
        return v
    }
}
