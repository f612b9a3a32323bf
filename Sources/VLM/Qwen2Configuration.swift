// The Qwen2 decoder of Qwen2.5-VL: config.json's text_config (transformers 5) or its top level (hub
// checkpoints), with Qwen2_5_VLTextConfig's defaults, plus the few top-level fields the video
// prompt needs (special token ids, tokens_per_second, the merge size).
import Foundation
import Tensor

public struct Qwen2Configuration: Sendable, Equatable {
    public var vocabularySize = 152064
    public var hiddenSize = 8192
    public var intermediateSize = 29568
    public var layers = 80
    public var heads = 64
    public var kvHeads = 8
    public var maxPositions = 128000
    public var rmsNormEps: Float = 1e-5
    public var ropeTheta: Float = 1000000
    /// Rotary frequencies per position axis (t, h, w); sums to head dimension / 2.
    public var mropeSection = [16, 24, 24]
    public var tieWordEmbeddings = false
    public var eosTokenIDs: [Int] = []
    public var videoTokenID = 151656
    public var visionStartTokenID = 151652
    public var visionEndTokenID = 151653
    /// vision_config.tokens_per_second: temporal positions per second of video.
    public var tokensPerSecond = 4
    public var spatialMergeSize = 2

    public var headDimension: Int { hiddenSize / max(1, heads) }

    public init() {}

    /// Reads config.json of a Qwen2.5-VL directory.
    public init(configFile path: String) throws(VLMError) {
        let root = try readJSONObject(path)
        let modelType = root["model_type"] as? String ?? "(none)"
        guard modelType == "qwen2_5_vl" else {
            throw .unsupported(file: path, feature: "model_type '\(modelType)' (expected qwen2_5_vl)")
        }
        // transformers 5 nests the decoder in text_config; hub files keep it at the top level.
        var t = root
        if let nested = root["text_config"] as? [String: Any] {
            for (k, v) in nested { t[k] = v }
        }
        func int(_ key: String) -> Int? { (t[key] as? NSNumber)?.intValue }
        func float(_ key: String) -> Float? { (t[key] as? NSNumber)?.floatValue }
        vocabularySize = int("vocab_size") ?? vocabularySize
        hiddenSize = int("hidden_size") ?? hiddenSize
        intermediateSize = int("intermediate_size") ?? intermediateSize
        layers = int("num_hidden_layers") ?? layers
        heads = int("num_attention_heads") ?? heads
        kvHeads = int("num_key_value_heads") ?? heads
        maxPositions = int("max_position_embeddings") ?? maxPositions
        rmsNormEps = float("rms_norm_eps") ?? rmsNormEps
        let rope = (t["rope_parameters"] as? [String: Any]) ?? (t["rope_scaling"] as? [String: Any]) ?? [:]
        ropeTheta = (rope["rope_theta"] as? NSNumber)?.floatValue ?? float("rope_theta") ?? ropeTheta
        if let section = rope["mrope_section"] as? [NSNumber] { mropeSection = section.map(\.intValue) }
        tieWordEmbeddings = (t["tie_word_embeddings"] as? Bool) ?? (root["tie_word_embeddings"] as? Bool) ?? false
        if let ids = t["eos_token_id"] as? [NSNumber] { eosTokenIDs = ids.map(\.intValue) } else if let id = int("eos_token_id") { eosTokenIDs = [id] }
        videoTokenID = (root["video_token_id"] as? NSNumber)?.intValue ?? videoTokenID
        visionStartTokenID = (root["vision_start_token_id"] as? NSNumber)?.intValue ?? visionStartTokenID
        visionEndTokenID = (root["vision_end_token_id"] as? NSNumber)?.intValue ?? visionEndTokenID
        let vision = root["vision_config"] as? [String: Any] ?? [:]
        tokensPerSecond = (vision["tokens_per_second"] as? NSNumber)?.intValue ?? tokensPerSecond
        spatialMergeSize = (vision["spatial_merge_size"] as? NSNumber)?.intValue ?? spatialMergeSize
        try validate(file: path)
    }

    /// Reads a GGUF's qwen2vl.* metadata (convert_hf_to_gguf.py's Qwen2VLModel): the M-RoPE sections
    /// are `rope.dimension_sections` (four, the last 0). The special tokens' ids come from the
    /// tokenizer (`Qwen2VideoAnswering(text:)`). tokens_per_second, a vision_config field no GGUF
    /// records, is 2, as every released Qwen2.5-VL checkpoint sets it.
    public init(gguf: GGUFFile) throws(VLMError) {
        let sizes = try gguf.decoderSizes(architecture: "qwen2vl")
        (hiddenSize, intermediateSize, layers, heads, kvHeads) = (sizes.hidden, sizes.intermediate, sizes.layers, sizes.heads, sizes.kvHeads)
        maxPositions = sizes.context ?? maxPositions
        rmsNormEps = sizes.rmsNormEps.map { Float($0) } ?? rmsNormEps
        ropeTheta = sizes.ropeTheta.map { Float($0) } ?? ropeTheta
        guard let sections = gguf.metadata["qwen2vl.rope.dimension_sections"]?.arrayValue?.compactMap(\.intValue) else {
            throw .missingField(file: gguf.path, field: "qwen2vl.rope.dimension_sections")
        }
        mropeSection = Array(sections.prefix(3))
        guard sections.dropFirst(3).allSatisfy({ $0 == 0 }) else {
            throw .unsupported(file: gguf.path, feature: "qwen2vl.rope.dimension_sections \(sections) (a fourth section is Qwen3-VL's)")
        }
        vocabularySize = sizes.vocabulary ?? 0
        tieWordEmbeddings = gguf.tensors["output.weight"] == nil
        eosTokenIDs = gguf.int("tokenizer.ggml.eos_token_id").map { [$0] } ?? []
        tokensPerSecond = 2
        try validate(file: gguf.path)
    }

    func validate(file: String) throws(VLMError) {
        func check(_ ok: Bool, _ field: String, _ cause: String) throws(VLMError) {
            if !ok { throw .malformed(file: file, cause: "\(field): \(cause)") }
        }
        if let (field, cause) = SizeLimits.violation(decoderShape.sizedFields()) { throw .malformed(file: file, cause: "\(field): \(cause)") }
        if let (field, cause) = SizeLimits.nonPositive([("rms_norm_eps", Double(rmsNormEps)), ("rope_theta", Double(ropeTheta))]) {
            throw .malformed(file: file, cause: "\(field): \(cause)")
        }
        try check(vocabularySize > 0, "vocab_size", "must be positive")
        try check(layers > 0, "num_hidden_layers", "must be positive")
        try check(heads > 0 && kvHeads > 0 && heads % kvHeads == 0, "num_key_value_heads",
                  "\(kvHeads) does not divide num_attention_heads \(heads)")
        try check(hiddenSize > 0 && hiddenSize % heads == 0 && headDimension % 2 == 0, "hidden_size",
                  "\(hiddenSize) does not split into \(heads) heads of an even size")
        try check(mropeSection.count == 3 && mropeSection.allSatisfy { $0 >= 0 } && mropeSection.reduce(0, +) == headDimension / 2,
                  "mrope_section", "\(mropeSection) must be 3 parts summing to head_dim / 2 = \(headDimension / 2)")
        try check(maxPositions > 0, "max_position_embeddings", "must be positive")
        try check(spatialMergeSize > 0, "vision_config.spatial_merge_size", "must be positive")
    }

    public var decoderShape: DecoderShape {
        DecoderShape(hiddenSize: hiddenSize, intermediateSize: intermediateSize, layers: layers, heads: heads, kvHeads: kvHeads,
                     headDimension: headDimension, vocabularySize: vocabularySize, maxPositions: maxPositions, rmsNormEps: rmsNormEps)
    }
}
