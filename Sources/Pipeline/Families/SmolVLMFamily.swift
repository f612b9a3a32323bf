import Foundation
import Tensor
import Vision
import VLM

extension ModelFamily {
    /// SmolVLM2 / SmolVLM (`smolvlm`, `idefics3`): SigLIP without CLS, a 4×4 pixel shuffle, and a
    /// SmolLM2 (Llama) decoder. Every frame becomes one square; on a CPU `ask` takes 8 frames over
    /// the clip.
    public static let smolVLM = ModelFamily(
        name: "SmolVLM2", modelTypes: ["smolvlm", "idefics3"], defaultSampling: .uniform(count: 8),
        encoder: { directory, precision in try SmolVLMVisionModel.load(directory: directory, precision: precision) },
        answerer: { directory, precision in try VideoQuestionAnswering.load(directory: directory, precision: precision) },
        decoderShape: { directory in
            try LlamaConfiguration(configFile: (directory as NSString).appendingPathComponent("config.json")).decoderShape
        },
        inspection: { directory, weights in
            let c = try SmolVLMConfiguration.load(directory: directory)
            let text = try LlamaConfiguration(configFile: (directory as NSString).appendingPathComponent("config.json"))
            let side = try SmolVLMPreprocessorConfiguration.load(directory: directory)?.frameSide ?? c.visionConfig.imageSize
            let v = c.visionConfig, patches = side / max(1, v.patchSize), tokens = patches / max(1, c.scaleFactor)
            let prefix = SmolVLMVisionModel.prefix(of: weights)
            return FamilyInspection(
                facts: [
                    ("vision", "SigLIP: \(v.numHiddenLayers) layers, hidden \(v.hiddenSize), \(v.numAttentionHeads) heads, "
                        + "intermediate \(v.intermediateSize), image \(v.imageSize), patch \(v.patchSize), \(v.hiddenAct)"),
                    ("frames", "\(side)x\(side) → \(patches * patches) patches → pixel shuffle ×\(c.scaleFactor) → "
                        + "\(tokens)x\(tokens) tokens of \(text.hiddenSize)"),
                    ("text", ModelInspection.describe(text.decoderShape, kind: "llama", theta: text.ropeTheta)),
                ],
                expectedTensors: SmolVLMVisionModel.expectedTensors(c, prefix: prefix)
                    + DecoderWeights.expectedTensors(shape: text.decoderShape, qkvBias: false, tiedHead: text.tieWordEmbeddings)
                    .map { ($0.name == "lm_head.weight" ? $0.name : prefix + "text_model." + $0.name, $0.shape) },
                part: { name in
                    if name.contains("vision_model.") { return "vision" }
                    if name.contains("connector.") { return "connector" }
                    if name.contains("text_model.") { return "text" }
                    return name.hasPrefix("lm_head.") ? "lm_head" : "other"
                })
        },
        mmproj: MmprojSupport(
            projectorTypes: ["idefics3"], textArchitectures: ["llama"],
            encoder: { mmproj, precision in try SmolVLMVisionModel.load(mmproj: mmproj, precision: precision) },
            answerer: { text, _, precision in try VideoQuestionAnswering.load(text: text, precision: precision) },
            decoderShape: { text in try LlamaConfiguration(gguf: text).decoderShape }))
}

extension VideoQuestionAnswering: VideoAnswerer {
    public var stopTokens: Set<Int> { language.stopTokens }
}
