// `inspect` on a GGUF file: each tensor's type, shape and stored bytes, totals per type, and the
// bytes the language model holds in memory once loaded with a given WeightPrecision (quantized
// blocks stay as stored by default; --weights f32/bf16/q8_0/q4_k convert as the loaders do), or,
// for a projector file (`--mmproj`), the bytes the vision encoder holds.
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
        self.init(file: file, precision: precision)
        do {
            // The two decoder architectures a GGUF is read as: Qwen2-VL's (a Qwen2.5-VL pair's text
            // model) and llama's (which names the architecture it refuses).
            let decoder = file.string("general.architecture") == "qwen2vl"
                ? try Qwen2Model(gguf: file, precision: precision).decoder : try LlamaModel(gguf: file, precision: precision).decoder
            heldBytes = decoder.weightBytes
        } catch {
            loadProblem = "\(error)"
        }
    }

    /// A projector file (`--mmproj`): the encoders widen every tensor to F32 as they load it
    /// (`MmprojFile.tensor`), so the bytes held are 4 per value whatever the stored type.
    public init(mmproj: MmprojFile) {
        self.init(file: mmproj.gguf, precision: .float32)
        heldBytes = mmproj.gguf.tensors.values.reduce(0) { $0 + 4 * $1.count }
    }

    private init(file: GGUFFile, precision: WeightPrecision) {
        path = file.path
        self.precision = precision
        architecture = file.string("general.architecture") ?? "(none)"
        tensors = file.tensorNames.compactMap { name in
            file.tensors[name].map { Tensor(name: name, type: $0.type?.name ?? "type \($0.typeCode)", dimensions: $0.dimensions, bytes: $0.range.count) }
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
