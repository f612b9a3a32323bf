import Foundation
import Tensor
import Vision
import VLM

extension ModelFamily {
    /// Qwen2.5-VL (`qwen2_5_vl`): windowed ViT with full-attention blocks, 2×2 merger, two frames
    /// per temporal patch on a grid that follows the video's aspect ratio, M-RoPE in the decoder.
    /// `ask` samples at its processor's 2 fps.
    public static let qwen25VL = ModelFamily(
        name: "Qwen2.5-VL", modelTypes: ["qwen2_5_vl"], defaultSampling: .fps(2),
        encoder: { directory, precision in try Qwen25VLVisionModel.load(directory: directory, precision: precision) },
        answerer: { directory, precision in try Qwen2VideoAnswering(directory: directory, precision: precision) },
        decoderShape: { directory in
            try Qwen2Configuration(configFile: (directory as NSString).appendingPathComponent("config.json")).decoderShape
        },
        inspection: { directory, weights in
            let v = try Qwen25VLConfiguration.load(directory: directory).visionConfig
            let text = try Qwen2Configuration(configFile: (directory as NSString).appendingPathComponent("config.json"))
            let pre = try Qwen25VLPreprocessorConfiguration.load(directory: directory)
            let example = try Qwen25VLPreprocessor.smartResize(height: 252, width: 448, factor: pre.factor,
                                                               minPixels: pre.minPixels, maxPixels: pre.maxPixels)
            let merged = pre.factor
            let visual = Qwen25VLVisionModel.prefix(of: weights)
            let textPrefix = DecoderWeights.textPrefix(in: weights) ?? "model."
            return FamilyInspection(
                facts: [
                    ("vision", "Qwen2.5-VL ViT: \(v.depth) blocks (full attention at \(v.fullattBlockIndexes.map { $0 + 1 }), "
                        + "windows of \(v.windowSize) px elsewhere), hidden \(v.hiddenSize), \(v.numHeads) heads, "
                        + "intermediate \(v.intermediateSize), patch \(v.patchSize), \(v.temporalPatchSize) frames per temporal patch"),
                    ("frames", "each keeps its aspect ratio: sides multiples of \(merged) px, \(pre.minPixels)…\(pre.maxPixels) pixels; "
                        + "448x252 → \(example.width)x\(example.height) → \(example.height / merged)x\(example.width / merged) tokens "
                        + "of \(v.outHiddenSize) after the 2x2 merger"),
                    ("text", ModelInspection.describe(text.decoderShape, kind: "qwen2", theta: text.ropeTheta)
                        + ", M-RoPE sections \(text.mropeSection)"),
                ],
                expectedTensors: Qwen25VLVisionModel.expectedTensors(v, prefix: visual)
                    + DecoderWeights.expectedTensors(shape: text.decoderShape, qkvBias: true, tiedHead: text.tieWordEmbeddings)
                    .map { ($0.name == "lm_head.weight" ? $0.name : textPrefix + $0.name, $0.shape) },
                part: { name in
                    if name.contains("merger.") { return "connector" }
                    if name.hasPrefix(visual) { return "vision" }
                    if name.hasPrefix("lm_head.") { return "lm_head" }
                    return name.hasPrefix(textPrefix) ? "text" : "other"
                })
        },
        mmproj: MmprojSupport(
            projectorTypes: ["qwen2.5vl_merger"], textArchitectures: ["qwen2vl"],
            encoder: { mmproj, precision in try Qwen25VLVisionModel.load(mmproj: mmproj, precision: precision) },
            answerer: { text, mmproj, precision in
                try Qwen2VideoAnswering(gguf: text, spatialMergeSize: try mmproj.optionalSize("clip.vision.spatial_merge_size", .factor) ?? 2,
                                        precision: precision)
            },
            decoderShape: { text in try Qwen2Configuration(gguf: text).decoderShape }))
}

/// Qwen2.5-VL: each temporal patch keeps its original (t, h, w) positions; questions share the
/// prompt's prefix (system text and video) as SmolVLM2's do.
extension Qwen2VideoAnswering: VideoAnswerer {
    public func answer(frames: [PrunedFrame], duration: Double, questions: [String], generation: GenerationOptions,
                       onText: (Int, String) -> Void) throws -> VideoAnswers {
        let patches = try frames.map { frame in
            let view = try frame.singleView(family: "Qwen2.5-VL")
            return Patch(rows: view.grid.rows, cols: view.grid.cols, kept: view.selection.indices, features: view.features,
                         time: frame.time)
        }
        let prompts = try questions.map { try prompt(patches: patches, question: $0) }
        let inputs = prompts.map(\.decoderPrompt)
        let batch = try model.answer(prompts: inputs, tokenizer: tokenizer, generation: generation, onText: onText)
        return VideoAnswers(batch, questions: questions, prompts: inputs, unprunedPromptTokens: prompts.map(\.video.fullLength))
    }
}
