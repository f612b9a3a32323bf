// The decoder both language-model families run: token embeddings → N × (RMSNorm → grouped-query
// attention with rotary positions → residual → RMSNorm → SwiGLU MLP → residual) → RMSNorm → lm_head.
// Llama / SmolLM2 and Qwen2 differ only in where their weights come from (names, config, GGUF), in
// Qwen2's q/k/v biases and in how a row's rotary angle is chosen (one position, or M-RoPE's three
// axes); one DecoderSession runs both.
//
// Weights are in PyTorch's [out, in] layout. Q, K and V are stacked into one matrix per layer, and
// so are gate and up, so that a step makes two products fewer. Each matrix stays in the precision
// asked for (WeightPrecision): a BF16 checkpoint can stay BF16 (half the memory and half the bytes
// a decode step reads), a GGUF's quantized blocks stay quantized, and any checkpoint can be
// quantized to Q8_0 or Q4_K as it loads.
import Tensor

/// The sizes a decoder's buffers and KV cache follow.
public struct DecoderShape: Sendable, Equatable {
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layers: Int
    public var heads: Int
    public var kvHeads: Int
    public var headDimension: Int
    public var vocabularySize: Int
    public var maxPositions: Int
    public var rmsNormEps: Float

    public init(hiddenSize: Int, intermediateSize: Int, layers: Int, heads: Int, kvHeads: Int, headDimension: Int,
                vocabularySize: Int, maxPositions: Int, rmsNormEps: Float) {
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.layers = layers
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDimension = headDimension
        self.vocabularySize = vocabularySize
        self.maxPositions = maxPositions
        self.rmsNormEps = rmsNormEps
    }
}

extension DecoderShape {
    /// The sizes to check against SizeLimits, named as config.json (or a GGUF's llama.* keys) names them.
    func sizedFields(gguf: Bool = false) -> [(field: String, value: Int, kind: SizeKind)] {
        let names = gguf
            ? ["llama.block_count", "llama.embedding_length", "llama.feed_forward_length", "llama.attention.head_count",
               "llama.attention.head_count_kv", "llama.attention.key_length", "llama.vocab_size", "llama.context_length"]
            : ["num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads",
               "num_key_value_heads", "head_dim", "vocab_size", "max_position_embeddings"]
        return zip(names, [(layers, SizeKind.layers), (hiddenSize, .width), (intermediateSize, .width), (heads, .heads),
                           (kvHeads, .heads), (headDimension, .width), (vocabularySize, .vocabulary), (maxPositions, .context)])
            .map { ($0, $1.0, $1.1) }
    }
}

/// How a decoder's weight matrices are held in memory.
public enum WeightPrecision: String, Sendable, CaseIterable {
    /// As the file stores them: BF16 stays BF16, a GGUF's F16 and quantized blocks stay in their
    /// block format (read in place from the mapped file); F32 stays F32.
    case stored
    /// Everything F32 (BF16 widened and blocks dequantized at load).
    case float32 = "f32"
    /// Everything BF16: F32 and F16 tensors are rounded (half the bytes per decode step, not exact).
    case bfloat16 = "bf16"
    /// Everything quantized to Q8_0 as it loads (llama.cpp's block format, 8.5 bits per weight).
    case q8_0 = "q8_0"
    /// Everything quantized to Q4_K as it loads (4.5 bits per weight). A matrix whose rows are not
    /// whole 256-value blocks gets Q8_0: llama.cpp's fallback, Q5_0, measured 5.8 % more perplexity
    /// than F32 on SmolLM2 (whose 576-wide rows all fall back), and Q5_1 18 %.
    case q4_K = "q4_k"

    func holdsBF16(storedAsBF16: Bool) -> Bool {
        switch self {
        case .stored: return storedAsBF16
        case .bfloat16: return true
        case .float32, .q8_0, .q4_K: return false
        }
    }

    /// The block format a matrix of `cols` columns is quantized to; nil when this precision does not quantize.
    func quantizedFormat(cols: Int) -> WeightFormat? {
        switch self {
        case .q8_0: return cols % 32 == 0 ? .q8_0 : nil
        case .q4_K: return cols % 256 == 0 ? .q4_K : cols % 32 == 0 ? .q8_0 : nil
        default: return nil
        }
    }
}

/// Anything that carries a decoder (the families' model types).
public protocol DecoderModel: Sendable {
    var decoder: DecoderWeights { get }
}

/// One tensor as a loader hands it over: F32 values and whether the file stored them as BF16, or a
/// matrix already in the file's own block format (a GGUF's tensors, read in place).
enum LoadedTensor {
    case values(Matrix, storedAsBF16: Bool)
    case stored(WeightMatrix)

    init(matrix: Matrix, storedAsBF16: Bool) { self = .values(matrix, storedAsBF16: storedAsBF16) }

    /// The F32 values (dequantized when stored in blocks).
    var matrix: Matrix {
        switch self {
        case let .values(m, _): return m
        case let .stored(w): return w.matrix()
        }
    }

    var storedAsBF16: Bool {
        switch self {
        case let .values(_, bf16): return bf16
        case let .stored(w): return w.isBF16
        }
    }
}

public final class DecoderWeights: Sendable {
    struct Layer: Sendable {
        let attentionNorm: [Float]
        let qkv: WeightMatrix       // [(heads + 2·kvHeads)·d, hidden]
        let qkvBias: [Float]?       // Qwen2
        let output: WeightMatrix    // [hidden, heads·d]
        let mlpNorm: [Float]
        let gateUp: WeightMatrix    // [2·intermediate, hidden]
        let down: WeightMatrix      // [hidden, intermediate]
    }

    public let shape: DecoderShape
    let embedding: WeightMatrix     // [vocab, hidden]
    let layers: [Layer]
    let norm: [Float]
    let lmHead: WeightMatrix        // [vocab, hidden]; the embedding itself when tied
    let tiedHead: Bool
    /// Rotary inverse frequencies (head dimension / 2 of them, after any scaling).
    let inverseFrequencies: [Float]
    /// M-RoPE: the axis (0 t, 1 h, 2 w) each frequency reads; nil for one position per row.
    let axisOfFrequency: [Int]?

    /// `lmHead` nil: tied to the embeddings.
    init(shape: DecoderShape, embedding: WeightMatrix, layers: [Layer], norm: [Float], lmHead: WeightMatrix?,
         inverseFrequencies: [Float], axisOfFrequency: [Int]?) {
        self.shape = shape
        self.embedding = embedding
        self.layers = layers
        self.norm = norm
        self.lmHead = lmHead ?? embedding
        tiedHead = lmHead == nil
        self.inverseFrequencies = inverseFrequencies
        self.axisOfFrequency = axisOfFrequency
    }

    /// The tensors a decoder of `shape` reads, by Hugging Face name without prefix, with their
    /// shapes: `embed_tokens.weight`, `layers.N.…` (q/k/v biases with `qkvBias`), `norm.weight`, and
    /// `lm_head.weight` unless `tiedHead`. The loader reads exactly these; `inspect` checks them.
    public static func expectedTensors(shape s: DecoderShape, qkvBias: Bool, tiedHead: Bool) -> [(name: String, shape: [Int])] {
        let h = s.hiddenSize, q = s.heads * s.headDimension, kv = s.kvHeads * s.headDimension, i = s.intermediateSize
        var list: [(name: String, shape: [Int])] = [("embed_tokens.weight", [s.vocabularySize, h])]
        for l in 0..<s.layers {
            let p = "layers.\(l)."
            list += [(p + "self_attn.q_proj.weight", [q, h]), (p + "self_attn.k_proj.weight", [kv, h]),
                     (p + "self_attn.v_proj.weight", [kv, h])]
            if qkvBias {
                list += [(p + "self_attn.q_proj.bias", [q]), (p + "self_attn.k_proj.bias", [kv]), (p + "self_attn.v_proj.bias", [kv])]
            }
            list += [(p + "self_attn.o_proj.weight", [h, q]), (p + "mlp.gate_proj.weight", [i, h]), (p + "mlp.up_proj.weight", [i, h]),
                     (p + "mlp.down_proj.weight", [h, i]), (p + "input_layernorm.weight", [h]),
                     (p + "post_attention_layernorm.weight", [h])]
        }
        list.append(("norm.weight", [h]))
        if !tiedHead { list.append(("lm_head.weight", [s.vocabularySize, h])) }
        return list
    }

    /// Assembles a decoder from the tensors `expectedTensors` names, fetched by `tensor`.
    convenience init(shape s: DecoderShape, qkvBias: Bool, tiedHead: Bool, precision: WeightPrecision,
                     inverseFrequencies: [Float], axisOfFrequency: [Int]?, source: String,
                     tensor: (_ name: String, _ shape: [Int]) throws(VLMError) -> LoadedTensor) throws(VLMError) {
        let shapes = Dictionary(uniqueKeysWithValues: Self.expectedTensors(shape: s, qkvBias: qkvBias, tiedHead: tiedHead))
        func fetch(_ name: String) throws(VLMError) -> LoadedTensor { try tensor(name, shapes[name] ?? []) }
        func vector(_ name: String) throws(VLMError) -> [Float] { try fetch(name).matrix.storage }
        func weight(_ names: [String]) throws(VLMError) -> WeightMatrix {
            var loaded: [LoadedTensor] = []
            for name in names { loaded.append(try fetch(name)) }
            do {
                // Blocks kept as the file stores them: stacked in place, no conversion.
                if precision == .stored {
                    var held: [WeightMatrix] = []
                    for case let .stored(w) in loaded { held.append(w) }
                    if held.count == loaded.count { return try WeightMatrix(stacking: held) }
                }
                var storage: [Float] = []
                var rows = 0, cols = 0, allBF16 = true
                for t in loaded {
                    let m = t.matrix
                    storage += m.storage
                    rows += m.rows
                    cols = m.cols
                    allBF16 = allBF16 && t.storedAsBF16
                }
                let matrix = try Matrix(rows: rows, cols: cols, storage: storage)
                if let format = precision.quantizedFormat(cols: cols) { return try WeightMatrix(matrix, quantizingTo: format) }
                return WeightMatrix(matrix, bf16: precision.holdsBF16(storedAsBF16: allBF16))
            } catch {
                throw .malformed(file: source, cause: "holding \(names): \(error)")
            }
        }
        let embedding = try weight(["embed_tokens.weight"])
        var layers: [Layer] = []
        for i in 0..<s.layers {
            let p = "layers.\(i)."
            // The large projections first: a file whose tensors cannot be read fails on them.
            let qkv = try weight([p + "self_attn.q_proj.weight", p + "self_attn.k_proj.weight", p + "self_attn.v_proj.weight"])
            let gateUp = try weight([p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight"])
            let bias = qkvBias
                ? try vector(p + "self_attn.q_proj.bias") + vector(p + "self_attn.k_proj.bias") + vector(p + "self_attn.v_proj.bias")
                : nil
            layers.append(Layer(
                attentionNorm: try vector(p + "input_layernorm.weight"), qkv: qkv, qkvBias: bias,
                output: try weight([p + "self_attn.o_proj.weight"]), mlpNorm: try vector(p + "post_attention_layernorm.weight"),
                gateUp: gateUp, down: try weight([p + "mlp.down_proj.weight"])))
        }
        self.init(shape: s, embedding: embedding, layers: layers, norm: try vector("norm.weight"),
                  lmHead: tiedHead ? nil : try weight(["lm_head.weight"]),
                  inverseFrequencies: inverseFrequencies, axisOfFrequency: axisOfFrequency)
    }

    /// Bytes of weights held (as stored: BF16 2 per value, blocks their block bytes; a shared layer
    /// counts once per use).
    public var weightBytes: Int {
        var n = embedding.byteCount + (tiedHead ? 0 : lmHead.byteCount) + norm.count * 4
        for l in layers {
            n += l.qkv.byteCount + l.output.byteCount + l.gateUp.byteCount + l.down.byteCount
            n += ((l.qkvBias?.count ?? 0) + l.attentionNorm.count + l.mlpNorm.count) * 4
        }
        return n
    }

    /// The formats the matrices are held in, each once (embedding first).
    public var weightFormats: [WeightFormat] {
        var seen: [WeightFormat] = []
        let matrices = [embedding, lmHead] + layers.flatMap { [$0.qkv, $0.output, $0.gateUp, $0.down] }
        for m in matrices { for f in m.formats where !seen.contains(f) { seen.append(f) } }
        return seen
    }

    /// Whether the matrices are held as BF16 (all of them are, or none).
    public var holdsBF16: Bool { embedding.isBF16 }

    /// Token embeddings of `ids`, [ids.count, hidden] (the input a prefill takes; visual features
    /// may replace rows before the prefill).
    public func embed(_ ids: [Int]) throws(VLMError) -> Matrix {
        let h = shape.hiddenSize
        var out = Matrix(rows: ids.count, cols: h)
        for (r, id) in ids.enumerated() {
            guard id >= 0, id < embedding.rows else { throw .tokenOutOfRange(id: id, vocabulary: embedding.rows) }
            out.storage.withUnsafeMutableBufferPointer { embedding.copyRow(id, into: $0.baseAddress! + r * h) }
        }
        return out
    }

    /// Token embeddings with rows replaced: `features` row i goes to row `rows[i]` (e.g. the
    /// positions of `<image>` tokens receiving the connector's output).
    public func embed(_ ids: [Int], injecting features: Matrix, at rows: [Int]) throws(VLMError) -> Matrix {
        var out = try embed(ids)
        guard features.cols == out.cols, features.rows == rows.count else {
            throw .invalidArgument(name: "injected embeddings", cause: "\(features.rows)x\(features.cols) for \(rows.count) rows of width \(out.cols)")
        }
        let w = out.cols
        for r in rows where r < 0 || r >= out.rows {
            throw .invalidArgument(name: "injected embeddings", cause: "row \(r) outside the \(out.rows) prompt rows")
        }
        out.storage.withUnsafeMutableBufferPointer { dst in
            features.storage.withUnsafeBufferPointer { src in
                for (i, r) in rows.enumerated() { (dst.baseAddress! + r * w).update(from: src.baseAddress! + i * w, count: w) }
            }
        }
        return out
    }
}

extension DecoderModel {
    public func embed(_ ids: [Int]) throws(VLMError) -> Matrix { try decoder.embed(ids) }

    public func embed(_ ids: [Int], injecting features: Matrix, at rows: [Int]) throws(VLMError) -> Matrix {
        try decoder.embed(ids, injecting: features, at: rows)
    }

    /// HiPrune++'s prompt vector of a question, for every family: the mean of the input
    /// embeddings of the question's tokens (no special tokens, no chat template). Proved against
    /// transformers' embeddings by tools/make_hiprune_pp_fixtures.py.
    public func promptEmbedding(question: String, tokenizer: Tokenizer) throws(VLMError) -> [Float] {
        try meanEmbedding(of: tokenizer.encode(question))
    }

    /// The mean of the token embeddings of `ids` (the language model's input space, where the
    /// connector's features live).
    public func meanEmbedding(of ids: [Int]) throws(VLMError) -> [Float] {
        guard !ids.isEmpty else { throw .invalidArgument(name: "question", cause: "is empty") }
        let rows = try embed(ids)
        var mean = [Float](repeating: 0, count: rows.cols)
        for r in 0..<rows.rows {
            for c in 0..<rows.cols { mean[c] += rows[r, c] }
        }
        return mean.map { $0 / Float(rows.rows) }
    }
}

extension DecoderWeights: DecoderModel {
    public var decoder: DecoderWeights { self }
}

extension DecoderWeights {
    /// Where checkpoints keep their decoder, tried in this order: SmolVLM / Idefics3
    /// ("model.text_model."), transformers ≥ 5 vision-language exports ("model.language_model."),
    /// causal LMs and Qwen2.5-VL hub checkpoints ("model."), LLaVA hub checkpoints
    /// ("language_model.model."), bare exports ("").
    public static let textPrefixes = ["model.text_model.", "model.language_model.", "model.", "language_model.model.", ""]

    /// The prefix under which `store` holds the decoder's embeddings, if any.
    public static func textPrefix(in store: WeightStore) -> String? {
        textPrefixes.first { store.contains($0 + "embed_tokens.weight") }
    }
}
