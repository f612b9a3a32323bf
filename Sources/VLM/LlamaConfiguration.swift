// The Llama / SmolLM2 decoder's configuration: config.json of a LlamaForCausalLM directory, the
// text_config of a SmolVLM / Idefics3 directory, or a GGUF's llama.* metadata. Missing fields take
// transformers' LlamaConfig defaults. RoPE comes from `rope_parameters` (transformers 5) or from
// `rope_theta` + `rope_scaling` (older files): default, "linear" and "llama3" are supported.
import Foundation
import Tensor

public struct LlamaConfiguration: Sendable, Equatable {
    public enum RopeScaling: Sendable, Equatable {
        case none
        case linear(factor: Float)
        case llama3(factor: Float, lowFrequencyFactor: Float, highFrequencyFactor: Float, originalContext: Int)
        /// Per-frequency divisors (GGUF rope_freqs.weight, how llama.cpp stores Llama 3 scaling).
        case frequencyFactors([Float])
    }

    public var vocabularySize = 32000
    public var hiddenSize = 4096
    public var intermediateSize = 11008
    public var layers = 32
    public var heads = 32
    public var kvHeads = 32
    public var headDimension = 128
    public var maxPositions = 2048
    public var rmsNormEps: Float = 1e-6
    public var ropeTheta: Float = 10000
    public var ropeScaling = RopeScaling.none
    public var tieWordEmbeddings = false
    public var bosTokenID: Int?
    public var eosTokenIDs: [Int] = []

    public init() {}

    /// Reads config.json of a model directory: a Llama or Mistral file itself, or the `text_config` of
    /// a vision-language file (SmolVLM / Idefics3, the LLaVA families) whose decoder is one of those.
    public init(configFile path: String) throws(VLMError) {
        let root = try readJSONObject(path)
        let modelType = root["model_type"] as? String ?? "(none)"
        var text: [String: Any]
        if Self.decoderTypes.contains(modelType) {
            text = root
        } else if let t = root["text_config"] as? [String: Any] {
            text = t
            // Older SmolVLM files keep tie_word_embeddings at the top level only.
            if text["tie_word_embeddings"] == nil, let tie = root["tie_word_embeddings"] { text["tie_word_embeddings"] = tie }
            let inner = text["model_type"] as? String ?? "llama"
            guard Self.decoderTypes.contains(inner) else {
                throw .unsupported(file: path, feature: "text_config.model_type '\(inner)' (supported: llama, mistral)")
            }
            text["model_type"] = inner
        } else {
            throw .unsupported(file: path, feature: "model_type '\(modelType)' without a text_config (supported decoders: llama, mistral)")
        }
        try self.init(json: text, file: path)
    }

    /// Decoders this configuration describes: Mistral is Llama's architecture (with its own
    /// defaults and a sliding window).
    static let decoderTypes: Set<String> = ["llama", "mistral"]

    init(json t: [String: Any], file: String) throws(VLMError) {
        func int(_ key: String) -> Int? { (t[key] as? NSNumber)?.intValue }
        func float(_ key: String) -> Float? { (t[key] as? NSNumber)?.floatValue }
        let mistral = t["model_type"] as? String == "mistral"
        if mistral {
            // MistralConfig's defaults where they differ from LlamaConfig's.
            intermediateSize = 14336
            maxPositions = 4096 * 32
            kvHeads = 8
        }
        vocabularySize = int("vocab_size") ?? vocabularySize
        hiddenSize = int("hidden_size") ?? hiddenSize
        intermediateSize = int("intermediate_size") ?? intermediateSize
        layers = int("num_hidden_layers") ?? layers
        heads = int("num_attention_heads") ?? heads
        kvHeads = int("num_key_value_heads") ?? (mistral ? kvHeads : heads)
        headDimension = int("head_dim") ?? hiddenSize / max(1, heads)
        maxPositions = int("max_position_embeddings") ?? maxPositions
        // Mistral's sliding window (4096 by default, null in later releases): attention over a
        // sequence no longer than the window is full attention, so the context stops there.
        if mistral {
            let window = t.keys.contains("sliding_window") ? int("sliding_window") : 4096
            if let window, window > 0 { maxPositions = min(maxPositions, window) }
        }
        rmsNormEps = float("rms_norm_eps") ?? rmsNormEps
        tieWordEmbeddings = t["tie_word_embeddings"] as? Bool ?? false
        bosTokenID = int("bos_token_id")
        if let e = t["eos_token_id"] as? [NSNumber] { eosTokenIDs = e.map(\.intValue) } else if let e = int("eos_token_id") { eosTokenIDs = [e] }
        if let act = t["hidden_act"] as? String, act != "silu" {
            throw .unsupported(file: file, feature: "hidden_act '\(act)' (only silu)")
        }
        if t["attention_bias"] as? Bool == true || t["mlp_bias"] as? Bool == true {
            throw .unsupported(file: file, feature: "attention_bias / mlp_bias")
        }
        var rope = t["rope_parameters"] as? [String: Any] ?? t["rope_scaling"] as? [String: Any] ?? [:]
        if rope["rope_theta"] == nil, let theta = t["rope_theta"] { rope["rope_theta"] = theta }
        ropeTheta = (rope["rope_theta"] as? NSNumber)?.floatValue ?? ropeTheta
        let type = rope["rope_type"] as? String ?? rope["type"] as? String ?? "default"
        let factor = (rope["factor"] as? NSNumber)?.floatValue ?? 1
        switch type {
        case "default": ropeScaling = .none
        case "linear": ropeScaling = .linear(factor: factor)
        case "llama3":
            ropeScaling = .llama3(factor: factor,
                                  lowFrequencyFactor: (rope["low_freq_factor"] as? NSNumber)?.floatValue ?? 1,
                                  highFrequencyFactor: (rope["high_freq_factor"] as? NSNumber)?.floatValue ?? 4,
                                  originalContext: (rope["original_max_position_embeddings"] as? NSNumber)?.intValue ?? 8192)
        default:
            throw .unsupported(file: file, feature: "rope type '\(type)' (supported: default, linear, llama3)")
        }
        try validate(file: file)
    }

    /// Reads llama.* metadata of a GGUF.
    public init(gguf: GGUFFile) throws(VLMError) {
        let sizes = try gguf.decoderSizes(architecture: "llama")
        (hiddenSize, intermediateSize, layers, heads, kvHeads) = (sizes.hidden, sizes.intermediate, sizes.layers, sizes.heads, sizes.kvHeads)
        headDimension = gguf.int("llama.attention.key_length") ?? hiddenSize / max(1, heads)
        maxPositions = sizes.context ?? maxPositions
        rmsNormEps = Float(sizes.rmsNormEps ?? 1e-5)
        ropeTheta = Float(sizes.ropeTheta ?? 10000)
        vocabularySize = sizes.vocabulary ?? 0
        tieWordEmbeddings = gguf.tensors["output.weight"] == nil
        bosTokenID = gguf.int("tokenizer.ggml.bos_token_id")
        eosTokenIDs = gguf.int("tokenizer.ggml.eos_token_id").map { [$0] } ?? []
        switch gguf.string("llama.rope.scaling.type") ?? "none" {
        case "none": break
        case "linear": ropeScaling = .linear(factor: Float(gguf.double("llama.rope.scaling.factor") ?? 1))
        case let other: throw .unsupported(file: gguf.path, feature: "llama.rope.scaling.type '\(other)'")
        }
        if gguf.tensors["rope_freqs.weight"] != nil { ropeScaling = .frequencyFactors(try gguf.floats("rope_freqs.weight")) }
        try validate(file: gguf.path, gguf: true)
    }

    private func validate(file: String, gguf: Bool = false) throws(VLMError) {
        if let (field, cause) = SizeLimits.violation(decoderShape.sizedFields(gguf: gguf)) { throw .malformed(file: file, cause: "\(field): \(cause)") }
        if let (field, cause) = SizeLimits.nonPositive([
            (gguf ? "llama.attention.layer_norm_rms_epsilon" : "rms_norm_eps", Double(rmsNormEps)),
            (gguf ? "llama.rope.freq_base" : "rope_theta", Double(ropeTheta)),
        ]) { throw .malformed(file: file, cause: "\(field): \(cause)") }
        guard hiddenSize > 0, layers > 0, heads > 0, kvHeads > 0, heads % kvHeads == 0, headDimension > 0,
              headDimension % 2 == 0, intermediateSize > 0, vocabularySize > 0, maxPositions > 0 else {
            throw .malformed(file: file, cause: "inconsistent decoder shape: hidden \(hiddenSize), layers \(layers), heads \(heads)/\(kvHeads), head dim \(headDimension), vocab \(vocabularySize)")
        }
    }

    public var decoderShape: DecoderShape {
        DecoderShape(hiddenSize: hiddenSize, intermediateSize: intermediateSize, layers: layers, heads: heads, kvHeads: kvHeads,
                     headDimension: headDimension, vocabularySize: vocabularySize, maxPositions: maxPositions, rmsNormEps: rmsNormEps)
    }

    /// RoPE inverse frequencies after scaling, in Float32 as transformers computes them.
    public func inverseFrequencies() -> [Float] {
        let base = RotaryTables.inverseFrequencies(dimension: headDimension, theta: ropeTheta)
        switch ropeScaling {
        case .none: return base
        case let .linear(factor): return base.map { $0 / factor }
        case let .frequencyFactors(f): return base.enumerated().map { $1 / (f[safe: $0] ?? 1) }
        case let .llama3(factor, low, high, original):
            let lowWavelength = Float(original) / low, highWavelength = Float(original) / high
            return base.map { f in
                let wavelength = 2 * Float.pi / f
                if wavelength < highWavelength { return f }
                if wavelength > lowWavelength { return f / factor }
                let smooth = (Float(original) / wavelength - low) / (high - low)
                return (1 - smooth) * f / factor + smooth * f
            }
        }
    }
}
