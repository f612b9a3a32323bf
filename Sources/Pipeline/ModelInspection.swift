// What a model directory holds, without loading its weights: the family and its shapes, parameters
// by part, dtypes, and what is missing or misshapen against the very tensor lists the loaders read
// (each encoder's `expectedTensors`, DecoderWeights' for the language model).
import Foundation
import Tensor
import Vision
import VLM

public struct ModelInspection: Sendable {
    public var directory: String
    public var family: ModelFamily
    /// The family's shapes, one labelled line each ("vision", "frames", "text").
    public var facts: [(label: String, text: String)]
    /// Parameters per part: "vision", "connector", "text", "lm_head", "other".
    public var parameters: [String: Int]
    /// Tensor count per stored dtype.
    public var dtypes: [String: Int]
    /// Expected tensors absent from the checkpoint.
    public var missingTensors: [String]
    /// Tensors present with another shape.
    public var misshapenTensors: [(name: String, expected: [Int], found: [Int])]
    /// Files of a complete model directory that are absent.
    public var missingFiles: [String]

    public var totalParameters: Int { parameters.values.reduce(0, +) }
}

extension ModelFamily {
    /// Inspects a model directory; throws only when its configuration or a weights file cannot be read.
    public func inspect(directory: String) throws -> ModelInspection {
        let config = (directory as NSString).appendingPathComponent("config.json")
        let weights = try WeightStore(directory: directory)
        var facts: [(label: String, text: String)] = []
        var expected: [(name: String, shape: [Int])] = []
        let part: (String) -> String
        switch self {
        case .smolVLM:
            let c = try SmolVLMConfiguration.load(directory: directory)
            let text = try LlamaConfiguration(configFile: config)
            let side = try SmolVLMPreprocessorConfiguration.load(directory: directory)?.frameSide ?? c.visionConfig.imageSize
            let v = c.visionConfig, patches = side / max(1, v.patchSize), tokens = patches / max(1, c.scaleFactor)
            facts.append(("vision", "SigLIP: \(v.numHiddenLayers) layers, hidden \(v.hiddenSize), \(v.numAttentionHeads) heads, "
                          + "intermediate \(v.intermediateSize), image \(v.imageSize), patch \(v.patchSize), \(v.hiddenAct)"))
            facts.append(("frames", "\(side)x\(side) → \(patches * patches) patches → pixel shuffle ×\(c.scaleFactor) → "
                          + "\(tokens)x\(tokens) tokens of \(text.hiddenSize)"))
            facts.append(("text", Self.describe(text.decoderShape, kind: "llama", theta: text.ropeTheta)))
            let prefix = SmolVLMVisionModel.prefix(of: weights)
            expected = SmolVLMVisionModel.expectedTensors(c, prefix: prefix)
                + DecoderWeights.expectedTensors(shape: text.decoderShape, qkvBias: false, tiedHead: text.tieWordEmbeddings).map {
                    ($0.name == "lm_head.weight" ? $0.name : prefix + "text_model." + $0.name, $0.shape)
                }
            part = { name in
                if name.contains("vision_model.") { return "vision" }
                if name.contains("connector.") { return "connector" }
                if name.contains("text_model.") { return "text" }
                return name.hasPrefix("lm_head.") ? "lm_head" : "other"
            }
        case .qwen25VL:
            let v = try Qwen25VLConfiguration.load(directory: directory).visionConfig
            let text = try Qwen2Configuration(configFile: config)
            let pre = try Qwen25VLPreprocessorConfiguration.load(directory: directory)
            facts.append(("vision", "Qwen2.5-VL ViT: \(v.depth) blocks (full attention at \(v.fullattBlockIndexes.map { $0 + 1 }), "
                          + "windows of \(v.windowSize) px elsewhere), hidden \(v.hiddenSize), \(v.numHeads) heads, "
                          + "intermediate \(v.intermediateSize), patch \(v.patchSize), \(v.temporalPatchSize) frames per temporal patch"))
            let example = try Qwen25VLPreprocessor.smartResize(height: 252, width: 448, factor: pre.factor,
                                                               minPixels: pre.minPixels, maxPixels: pre.maxPixels)
            let merged = pre.factor
            facts.append(("frames", "each keeps its aspect ratio: sides multiples of \(merged) px, \(pre.minPixels)…\(pre.maxPixels) pixels; "
                          + "448x252 → \(example.width)x\(example.height) → \(example.height / merged)x\(example.width / merged) tokens "
                          + "of \(v.outHiddenSize) after the 2x2 merger"))
            facts.append(("text", Self.describe(text.decoderShape, kind: "qwen2", theta: text.ropeTheta)
                          + ", M-RoPE sections \(text.mropeSection)"))
            let visual = Qwen25VLVisionModel.prefix(of: weights)
            let prefixes = ["model.language_model.", "model.", "language_model.model.", ""]
            let textPrefix = prefixes.first { weights.contains($0 + "embed_tokens.weight") } ?? "model."
            expected = Qwen25VLVisionModel.expectedTensors(v, prefix: visual)
                + DecoderWeights.expectedTensors(shape: text.decoderShape, qkvBias: true, tiedHead: text.tieWordEmbeddings).map {
                    ($0.name == "lm_head.weight" ? $0.name : textPrefix + $0.name, $0.shape)
                }
            part = { name in
                if name.contains("merger.") { return "connector" }
                if name.hasPrefix(visual) { return "vision" }
                if name.hasPrefix("lm_head.") { return "lm_head" }
                return name.hasPrefix(textPrefix) ? "text" : "other"
            }
        }
        var parameters: [String: Int] = [:]
        var dtypes: [String: Int] = [:]
        for name in weights.names {
            guard let entry = weights.entry(name) else { continue }
            parameters[part(name), default: 0] += entry.shape.reduce(1, *)
            dtypes[entry.dtype, default: 0] += 1
        }
        var missing: [String] = []
        var misshapen: [(name: String, expected: [Int], found: [Int])] = []
        for (name, shape) in expected {
            guard let entry = weights.entry(name) else { missing.append(name); continue }
            if entry.shape != shape { misshapen.append((name, shape, entry.shape)) }
        }
        let files = ["preprocessor_config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"]
        let missingFiles = files.filter { !FileManager.default.fileExists(atPath: (directory as NSString).appendingPathComponent($0)) }
        return ModelInspection(directory: directory, family: self, facts: facts, parameters: parameters, dtypes: dtypes,
                               missingTensors: missing, misshapenTensors: misshapen, missingFiles: missingFiles)
    }

    private static func describe(_ s: DecoderShape, kind: String, theta: Float) -> String {
        "\(kind): \(s.layers) layers, hidden \(s.hiddenSize), \(s.heads) heads (\(s.kvHeads) kv, head dim \(s.headDimension)), "
            + "intermediate \(s.intermediateSize), vocab \(s.vocabularySize), rope theta \(theta)"
    }
}
