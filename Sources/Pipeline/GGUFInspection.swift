// `inspect` on a GGUF file: each tensor's type, shape and stored bytes, totals per type, and the
// bytes the language model holds in memory once loaded with a given WeightPrecision (quantized
// blocks stay as stored by default; --weights f32/bf16/q8_0/q4_k convert as the loaders do).
import VLM

public struct GGUFInspection: Sendable {
    public struct Tensor: Sendable {
        public var name: String
        /// ggml's type name ("Q4_K", "F32", …).
        public var type: String
        /// Dimensions as GGUF lists them, innermost first.
        public var dimensions: [Int]
        public var bytes: Int
    }

    public var path: String
    public var architecture: String
    /// In file order.
    public var tensors: [Tensor]
    /// Bytes of the decoder's weights as held in memory with `precision`, nil when the file is not a
    /// llama-architecture model we load (then `loadProblem` says why).
    public var heldBytes: Int?
    public var loadProblem: String?
    public var precision: WeightPrecision

    public init(path: String, precision: WeightPrecision = .stored) throws {
        let file = try GGUFFile(path: path)
        self.path = path
        self.precision = precision
        architecture = file.string("general.architecture") ?? "(none)"
        tensors = file.tensorNames.compactMap { name in
            file.tensors[name].map { Tensor(name: name, type: $0.type?.name ?? "type \($0.typeCode)", dimensions: $0.dimensions, bytes: $0.range.count) }
        }
        do {
            heldBytes = try LlamaModel(gguf: file, precision: precision).decoder.weightBytes
        } catch {
            loadProblem = "\(error)"
        }
    }

    /// (type, tensors, bytes) per type, most bytes first.
    public var byType: [(type: String, count: Int, bytes: Int)] {
        var counts: [String: Int] = [:], bytes: [String: Int] = [:]
        for t in tensors {
            counts[t.type, default: 0] += 1
            bytes[t.type, default: 0] += t.bytes
        }
        return counts.map { ($0.key, $0.value, bytes[$0.key] ?? 0) }.sorted { $0.bytes > $1.bytes }
    }
}
