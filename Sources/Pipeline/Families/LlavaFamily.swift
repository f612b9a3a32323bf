import Foundation
import Tensor
import Vision
import VLM

extension ModelFamily {
    /// LLaVA-1.5 (`llava`): CLIP ViT-L/14-336 with CLS up to the second-to-last layer, a
    /// linear-GELU-linear projector and a Llama (vicuna) decoder; a frame is one 24 × 24 view.
    /// The paper's 7B system: `ask` takes 4 frames (2304 visual tokens unpruned).
    public static let llava = ModelFamily(
        name: "LLaVA-1.5", modelTypes: ["llava"], defaultSampling: .uniform(count: 4),
        encoder: { directory, precision in try LlavaVisionModel.load(directory: directory, precision: precision) },
        answerer: { directory, precision in try LlavaVideoAnswering.load(directory: directory, precision: precision) },
        decoderShape: { directory in try llavaDecoder(directory).decoderShape },
        inspection: { directory, weights in try llavaInspection(directory: directory, weights: weights) },
        mmproj: llavaMmproj(anyRes: false) { mmproj, precision in try LlavaVisionModel.load(mmproj: mmproj, precision: precision) })

    /// LLaVA-NeXT (`llava_next`): LLaVA-1.5's tower and projector on AnyRes views (the base image
    /// and the crops of the best pinpoint, un-padded), each pruned on its own grid, rows of crops
    /// closed by `image_newline`; Llama (vicuna) or Mistral decoder. `ask` takes 4 frames.
    public static let llavaNext = ModelFamily(
        name: "LLaVA-NeXT", modelTypes: ["llava_next"], defaultSampling: .uniform(count: 4),
        encoder: { directory, precision in try LlavaNextVisionModel.load(directory: directory, precision: precision) },
        answerer: { directory, precision in try LlavaVideoAnswering.load(directory: directory, precision: precision) },
        decoderShape: { directory in try llavaDecoder(directory).decoderShape },
        inspection: { directory, weights in try llavaInspection(directory: directory, weights: weights) },
        mmproj: llavaMmproj(anyRes: true) { mmproj, precision in try LlavaNextVisionModel.load(mmproj: mmproj, precision: precision) })

    /// LLaVA-NeXT-Video (`llava_next_video`): each frame through the CLIP tower, pooled 2 × 2 (24 × 24
    /// → 12 × 12) before the projector, one `<video>` run for all frames; `ask` takes 8 frames.
    public static let llavaNextVideo = ModelFamily(
        name: "LLaVA-NeXT-Video", modelTypes: ["llava_next_video"], defaultSampling: .uniform(count: 8),
        encoder: { directory, precision in try LlavaNextVideoVisionModel.load(directory: directory, precision: precision) },
        answerer: { directory, precision in try LlavaVideoAnswering.load(directory: directory, precision: precision) },
        decoderShape: { directory in try llavaDecoder(directory).decoderShape },
        inspection: { directory, weights in try llavaInspection(directory: directory, weights: weights) })
}

/// llama.cpp's "mlp" projector (its legacy converter's LLaVA files, Families/LlavaMmproj.swift):
/// LLaVA-NeXT's when it records AnyRes pinpoints, LLaVA-1.5's otherwise; the text GGUF is a Llama
/// (vicuna) or Mistral decoder, both "llama" to llama.cpp.
private func llavaMmproj(anyRes: Bool,
                         encoder: @escaping @Sendable (MmprojFile, EncoderPrecision) throws -> any FrameEncoder) -> MmprojSupport {
    MmprojSupport(
        projectorTypes: ["mlp"], textArchitectures: ["llama"],
        accepts: { LlavaVisionModel.isAnyRes($0) == anyRes },
        outputWidth: { try LlavaVisionModel.outputWidth($0) },
        encoder: encoder,
        answerer: { text, mmproj, precision in try LlavaVideoAnswering.load(text: text, mmproj: mmproj, precision: precision) },
        decoderShape: { text in try LlamaConfiguration(gguf: text).decoderShape })
}

private func llavaDecoder(_ directory: String) throws -> LlamaConfiguration {
    try LlamaConfiguration(configFile: (directory as NSString).appendingPathComponent("config.json"))
}

/// The LLaVA families' `inspect`: tower, projector, (AnyRes / pooling) and decoder, with every
/// tensor the loaders read under the prefixes this checkpoint uses.
private func llavaInspection(directory: String, weights: WeightStore) throws -> FamilyInspection {
    let c = try LlavaConfiguration.load(directory: directory)
    let text = try llavaDecoder(directory)
    let v = c.visionConfig, grid = v.gridSide
    let (tower, projector) = LlavaVisionModel.prefixes(of: weights)
    let textPrefix = DecoderWeights.textPrefix(in: weights) ?? "language_model.model."
    let head = LlamaModel.headName(in: weights, prefix: textPrefix)
    var frames = "\(v.imageSize)x\(v.imageSize) (shortest edge, centre crop) → \(grid)x\(grid) tokens of \(c.textHiddenSize)"
    var expected = LlavaVisionModel.expectedTensors(c, towerPrefix: tower, projectorPrefix: projector)
    switch c.modelType {
    case "llava_next":
        let newline = ["image_newline", "model.image_newline"].first(where: weights.contains) ?? "image_newline"
        expected.append((newline, [c.textHiddenSize]))
        frames = "AnyRes: base \(v.imageSize)x\(v.imageSize) + crops of \(v.imageSize) on the best of "
            + c.imageGridPinpoints.map { "\($0[1])x\($0[0])" }.joined(separator: ", ") + ", each view \(grid)x\(grid) tokens "
            + "(crops un-padded), image_newline after each row"
    case "llava_next_video":
        let s = c.spatialPoolStride
        frames = "\(v.imageSize)x\(v.imageSize) → \(grid)x\(grid) → \(c.spatialPoolMode) pool ×\(s) → "
            + "\((grid + s - 1) / s)x\((grid + s - 1) / s) tokens of \(c.textHiddenSize)"
    default:
        break
    }
    let strategy = c.visionFeatureSelectStrategy == "default" ? "CLS dropped" : "CLS kept"
    return FamilyInspection(
        facts: [
            ("vision", "CLIP: \(v.numHiddenLayers) layers (features from layer \(c.featureLayerIndex), \(strategy)), hidden "
                + "\(v.hiddenSize), \(v.numAttentionHeads) heads, intermediate \(v.intermediateSize), image \(v.imageSize), "
                + "patch \(v.patchSize), \(v.hiddenAct); projector \(v.hiddenSize) → \(c.textHiddenSize) (\(c.projectorHiddenAct))"),
            ("frames", frames),
            ("text", ModelInspection.describe(text.decoderShape, kind: c.textModelType, theta: text.ropeTheta)),
        ],
        expectedTensors: expected
            + DecoderWeights.expectedTensors(shape: text.decoderShape, qkvBias: false, tiedHead: text.tieWordEmbeddings)
            .map { ($0.name == "lm_head.weight" ? head : textPrefix + $0.name, $0.shape) },
        part: { name in
            if name.hasPrefix(tower) { return "vision" }
            if name.hasPrefix(projector) || name.hasSuffix("image_newline") { return "connector" }
            if name == head { return "lm_head" }
            return name.hasPrefix(textPrefix) ? "text" : "other"
        })
}
