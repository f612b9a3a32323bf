// The CLIP vision tower (`clip_vision_model`, LLaVA's ViT-L/14-336), in the order data flows:
// patch embedding (no bias), the class embedding prepended as row 0, position embeddings 0...N,
// `pre_layrnorm`, then the shared pre-norm ViT layers (ViTEncoder) with quick_gelu. LLaVA reads
// hidden_states[vision_feature_layer] (the output of an inner layer, before `post_layernorm`), so
// the tower runs only the layers up to that one and `post_layernorm` is never read.
import Foundation
import Tensor

/// config.json → vision_config of a CLIP tower (transformers' CLIPVisionConfig defaults).
public struct CLIPVisionConfiguration: ViTVisionFields, Codable, Sendable, Equatable {
    public var modelType = "clip_vision_model"
    public var hiddenSize = 768
    public var intermediateSize = 3072
    public var numHiddenLayers = 12
    public var numAttentionHeads = 12
    public var numChannels = 3
    public var imageSize = 224
    public var patchSize = 32
    public var hiddenAct = "quick_gelu"
    public var layerNormEps: Float = 1e-5

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type", hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers", numAttentionHeads = "num_attention_heads", numChannels = "num_channels"
        case imageSize = "image_size", patchSize = "patch_size", hiddenAct = "hidden_act", layerNormEps = "layer_norm_eps"
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        try self.init(decodingViTFields: decoder)
        modelType = try decoder.container(keyedBy: CodingKeys.self).decodeIfPresent(String.self, forKey: .modelType) ?? modelType
    }

    /// Patches per side of the trained (and only) input size.
    public var gridSide: Int { imageSize / max(1, patchSize) }

    /// Checks the sizes; `field` prefixes the names in errors (e.g. "vision_config.").
    public func validate(file: String, field: String = "vision_config.") throws(VisionError) {
        func check(_ ok: Bool, _ name: String, _ cause: String) throws(VisionError) {
            if !ok { throw .invalidConfiguration(file: file, field: field + name, cause: cause) }
        }
        try check(modelType == "clip_vision_model", "model_type", "'\(modelType)' is not supported (only clip_vision_model)")
        try check(hiddenSize > 0 && numAttentionHeads > 0 && hiddenSize % numAttentionHeads == 0, "hidden_size",
                  "\(hiddenSize) is not a positive multiple of num_attention_heads \(numAttentionHeads)")
        try check(patchSize > 0 && imageSize > 0 && imageSize % patchSize == 0, "image_size",
                  "\(imageSize) is not a positive multiple of patch_size \(patchSize)")
        try check(numHiddenLayers > 0, "num_hidden_layers", "must be positive")
        try check(intermediateSize > 0, "intermediate_size", "must be positive")
        try check(numChannels > 0, "num_channels", "must be positive")
        if let (name, cause) = SizeLimits.nonPositive([("layer_norm_eps", Double(layerNormEps))]) { try check(false, name, cause) }
        try check(ViTEncoder.Activation(hiddenAct: hiddenAct) != nil, "hidden_act", "'\(hiddenAct)' is not supported")
    }

    func encoderShape(layers: Int) -> ViTEncoder.Shape {
        ViTEncoder.Shape(hidden: hiddenSize, intermediate: intermediateSize, heads: numAttentionHeads, layers: layers,
                         layerNormEps: layerNormEps, activation: ViTEncoder.Activation(hiddenAct: hiddenAct) ?? .quickGelu)
    }
}

public struct CLIPVisionModel: Sendable {
    public let configuration: CLIPVisionConfiguration
    let patchWeight: Matrix  // [hidden, channels · patch²]
    let classEmbedding: [Float]
    let positionEmbedding: Matrix  // [patches + 1, hidden]
    let preLayerNormWeight, preLayerNormBias: [Float]
    let encoder: ViTEncoder

    /// Layers loaded and run (1...layers); the tower may have more.
    public var layers: Int { encoder.shape.layers }

    /// Every tensor read under `prefix` (e.g. "vision_tower.vision_model."), with shapes, for the first `layers` layers.
    public static func expectedTensors(_ c: CLIPVisionConfiguration, prefix: String, layers: Int) -> [(name: String, shape: [Int])] {
        let d = c.hiddenSize, p = c.patchSize
        return [("\(prefix)embeddings.class_embedding", [d]),
                ("\(prefix)embeddings.patch_embedding.weight", [d, c.numChannels, p, p]),
                ("\(prefix)embeddings.position_embedding.weight", [c.gridSide * c.gridSide + 1, d]),
                ("\(prefix)pre_layrnorm.weight", [d]), ("\(prefix)pre_layrnorm.bias", [d])]
            + ViTEncoder.expectedTensors(prefix: "\(prefix)encoder.", shape: c.encoderShape(layers: layers))
    }

    /// Reads the tower's first `layers` layers (validated configuration) from `tensor(name, shape)`.
    public init(configuration c: CLIPVisionConfiguration, prefix: String, layers: Int, precision: EncoderPrecision = .f32,
                tensor: (String, [Int]) throws(WeightsError) -> Matrix) throws(WeightsError) {
        configuration = c
        let d = c.hiddenSize, p = c.patchSize
        classEmbedding = try tensor("\(prefix)embeddings.class_embedding", [d]).storage
        patchWeight = try tensor("\(prefix)embeddings.patch_embedding.weight", [d, c.numChannels, p, p])
        positionEmbedding = try tensor("\(prefix)embeddings.position_embedding.weight", [c.gridSide * c.gridSide + 1, d])
        preLayerNormWeight = try tensor("\(prefix)pre_layrnorm.weight", [d]).storage
        preLayerNormBias = try tensor("\(prefix)pre_layrnorm.bias", [d]).storage
        encoder = try ViTEncoder(prefix: "\(prefix)encoder.", shape: c.encoderShape(layers: layers), precision: precision, tensor: tensor)
    }

    /// Everything the tower computes for one image.
    public struct Output: Sendable {
        /// [patches + 1, hidden], CLS first: the output of the last layer run (hidden_states[layers]).
        public var lastHiddenState: Matrix
        /// hiddenStates[0] = after pre_layrnorm, [l] = output of layer l (only when asked for).
        public var hiddenStates: [Matrix]
        /// 1-based layer → per-patch score: mean over heads and over every query (CLS included) of
        /// the softmax, the CLS column dropped (HIPRUNE.md), raster order of the patch grid.
        public var patchScores: [Int: [Float]]
    }

    /// Runs the tower on channel-first pixel values [channels, image_size, image_size].
    public func forward(pixelValues: [Float], scoreLayers: Set<Int> = [], keepHiddenStates: Bool = false) throws(VisionError) -> Output {
        let c = configuration, side = c.imageSize, d = c.hiddenSize
        guard pixelValues.count == c.numChannels * side * side else {
            throw .invalidFrame("\(pixelValues.count) pixel values, the CLIP tower takes \(c.numChannels)x\(side)x\(side)")
        }
        do {
            let patches = try patchEmbedding(pixels: pixelValues, channels: c.numChannels, height: side, width: side,
                                             patch: c.patchSize, weight: patchWeight, bias: nil)
            var embeddings = Matrix(rows: patches.rows + 1, cols: d)
            embeddings.storage.replaceSubrange(0..<d, with: classEmbedding)
            embeddings.storage.replaceSubrange(d..<embeddings.count, with: patches.storage)
            try add(&embeddings, positionEmbedding)
            var h = Matrix(rows: embeddings.rows, cols: d)
            try layerNorm(embeddings, weight: preLayerNormWeight, bias: preLayerNormBias, eps: c.layerNormEps, into: &h)
            let first = keepHiddenStates ? h : Matrix(rows: 0, cols: 0)
            let run = try encoder.run(&h, layers: layers, scoreLayers: scoreLayers, keepHiddenStates: keepHiddenStates)
            if let bias = run.pendingBias { try addRow(&h, bias) }
            return Output(lastHiddenState: h, hiddenStates: keepHiddenStates ? [first] + run.hiddenStates : [],
                          patchScores: run.scores.mapValues { Array($0.dropFirst()) })
        } catch {
            throw .computation("\(error)")
        }
    }

    public var parameterCount: Int {
        patchWeight.count + classEmbedding.count + positionEmbedding.count + 2 * preLayerNormWeight.count + encoder.parameterCount
    }

    /// Multiply-adds × 2 of one image through the layers run.
    public var flops: Double {
        let c = configuration, n = c.gridSide * c.gridSide
        return 2 * Double(n * c.hiddenSize * c.numChannels * c.patchSize * c.patchSize) + encoder.flops(tokens: n + 1, layers: layers)
    }
}
