// The vision side of LLaVA-1.5 (`llava`): CLIP preprocessing, the CLIP tower up to
// vision_feature_layer, the CLS row dropped ("default") or kept ("full") and the multi_modal_projector
// (linear_1, GELU, linear_2). One frame is one view on the tower's patch grid (24 × 24 for
// ViT-L/14-336); HiPrune's scores are the tower's, CLS column dropped. With "full", the CLS row
// rides outside the grid (EncodedView.leading): never pruned, ahead of the frame's kept rows, where
// transformers puts it.
//
// Weight layouts: llava-hf's (`vision_tower.vision_model.*`, `multi_modal_projector.*`), what
// transformers 5 saves (`vision_tower.*`), and transformers 5's module names (`model.vision_tower.*`,
// `model.multi_modal_projector.*`); the prefix is found from the class embedding.
import Foundation
import Prune
import Tensor

public struct LlavaVisionModel: Sendable {
    public let configuration: LlavaConfiguration
    public let preprocessor: CLIPPreprocessor
    public let tower: CLIPVisionModel
    let linear1: Matrix, linear2: Matrix  // [text hidden, vision hidden], [text hidden, text hidden]
    let bias1: [Float]?, bias2: [Float]?
    let projectorActivation: ViTEncoder.Activation

    public var vision: CLIPVisionConfiguration { configuration.visionConfig }
    /// The patch grid of one tower input (24 × 24 for ViT-L/14-336).
    public var patchGrid: TokenGrid { TokenGrid(rows: vision.gridSide, cols: vision.gridSide) }

    static let towerPrefixes = ["vision_tower.vision_model.", "model.vision_tower.vision_model.", "vision_tower.", "model.vision_tower."]
    static let projectorPrefixes = ["multi_modal_projector.", "model.multi_modal_projector."]

    /// The tower and projector prefixes of this checkpoint (llava-hf's when none is found, so that
    /// the error names the tensor a user would look for).
    public static func prefixes(of weights: WeightStore) -> (tower: String, projector: String) {
        let tower = towerPrefixes.first { weights.contains("\($0)embeddings.class_embedding") } ?? towerPrefixes[0]
        let projector = projectorPrefixes.first { weights.contains("\($0)linear_1.weight") } ?? projectorPrefixes[0]
        return (tower, projector)
    }

    /// Every tensor the vision side reads, with shapes.
    public static func expectedTensors(_ c: LlavaConfiguration, towerPrefix: String = "vision_tower.vision_model.",
                                       projectorPrefix: String = "multi_modal_projector.") -> [(name: String, shape: [Int])] {
        let v = c.visionConfig.hiddenSize, t = c.textHiddenSize
        var list = CLIPVisionModel.expectedTensors(c.visionConfig, prefix: towerPrefix, layers: c.featureLayerIndex)
        list += [("\(projectorPrefix)linear_1.weight", [t, v]), ("\(projectorPrefix)linear_2.weight", [t, t])]
        if c.multimodalProjectorBias {
            list += [("\(projectorPrefix)linear_1.bias", [t]), ("\(projectorPrefix)linear_2.bias", [t])]
        }
        return list
    }

    /// Loads config.json, the first of `preprocessors` that exists (none: the tower's size, CLIP's
    /// defaults) and the weights of a model directory.
    public static func load(directory: String, preprocessors: [String] = ["preprocessor_config.json"],
                            precision: EncoderPrecision = .f32) throws(VisionError) -> LlavaVisionModel {
        let config = try LlavaConfiguration.load(directory: directory)
        var preprocessing: CLIPPreprocessorConfiguration? = nil
        for name in preprocessors where preprocessing == nil {
            preprocessing = try CLIPPreprocessorConfiguration.load(directory: directory, name: name)
        }
        let weights: WeightStore
        do { weights = try WeightStore(directory: directory) } catch { throw .weights(error) }
        return try LlavaVisionModel(configuration: config, preprocessing: preprocessing, weights: weights, precision: precision)
    }

    public init(configuration c: LlavaConfiguration, preprocessing: CLIPPreprocessorConfiguration?,
                weights: WeightStore, precision: EncoderPrecision = .f32) throws(VisionError) {
        let (tower, projector) = Self.prefixes(of: weights)
        try self.init(configuration: c, preprocessing: preprocessing, towerPrefix: tower, projectorPrefix: projector,
                      precision: precision) {
            (name, shape) throws(WeightsError) in try weights.matrix(name, shape: shape)
        }
    }

    /// Builds the model from any source of tensors (a checkpoint, or random weights in benchmarks).
    public init(configuration c: LlavaConfiguration, preprocessing: CLIPPreprocessorConfiguration?,
                towerPrefix: String = "vision_tower.vision_model.", projectorPrefix: String = "multi_modal_projector.",
                precision: EncoderPrecision = .f32, tensor: (String, [Int]) throws(WeightsError) -> Matrix) throws(VisionError) {
        try c.validate(file: "config.json")
        configuration = c
        var pre = preprocessing ?? CLIPPreprocessorConfiguration()
        if preprocessing == nil {
            pre.shortestEdge = c.visionConfig.imageSize
            pre.cropHeight = c.visionConfig.imageSize
            pre.cropWidth = c.visionConfig.imageSize
        }
        guard pre.doCenterCrop, pre.cropHeight == c.visionConfig.imageSize, pre.cropWidth == c.visionConfig.imageSize else {
            throw .invalidConfiguration(file: "preprocessor_config.json", field: "crop_size",
                                        cause: "\(pre.cropWidth)x\(pre.cropHeight) (centre crop \(pre.doCenterCrop)) differs from the tower's image_size \(c.visionConfig.imageSize)")
        }
        preprocessor = CLIPPreprocessor(configuration: pre)
        projectorActivation = ViTEncoder.Activation(hiddenAct: c.projectorHiddenAct) ?? .geluErf
        let v = c.visionConfig.hiddenSize, t = c.textHiddenSize
        do throws(WeightsError) {
            self.tower = try CLIPVisionModel(configuration: c.visionConfig, prefix: towerPrefix, layers: c.featureLayerIndex,
                                             precision: precision, tensor: tensor)
            linear1 = try tensor("\(projectorPrefix)linear_1.weight", [t, v])
            linear2 = try tensor("\(projectorPrefix)linear_2.weight", [t, t])
            bias1 = c.multimodalProjectorBias ? try tensor("\(projectorPrefix)linear_1.bias", [t]).storage : nil
            bias2 = c.multimodalProjectorBias ? try tensor("\(projectorPrefix)linear_2.bias", [t]).storage : nil
        } catch {
            throw .weights(error)
        }
    }

    /// The multi_modal_projector: linear_1, activation, linear_2; [rows, vision hidden] → [rows, text hidden].
    public func project(_ x: Matrix) throws(VisionError) -> Matrix {
        do {
            var h = try linear(x, weight: linear1, bias: projectorActivation == .geluTanh ? nil : bias1)
            switch projectorActivation {
            case .geluTanh: try geluTanh(&h, bias: bias1)
            case .geluErf: geluErf(&h)
            case .quickGelu: quickGelu(&h)
            }
            return try linear(h, weight: linear2, bias: bias2)
        } catch {
            throw .computation("\(error)")
        }
    }

    /// One tower input (channel-first pixels at the tower's size) → the projected features of the
    /// selected layer ([patches, text hidden] with "default", CLS first with "full") and the per-patch
    /// scores of `scoreLayers` (CLS column dropped).
    public func features(pixelValues: [Float], scoreLayers: Set<Int>) throws(VisionError) -> (features: Matrix, scores: [Int: [Float]]) {
        let out = try tower.forward(pixelValues: pixelValues, scoreLayers: scoreLayers)
        let selected = configuration.visionFeatureSelectStrategy == "full"
            ? out.lastHiddenState : out.lastHiddenState.rows(1..<out.lastHiddenState.rows)
        return (try project(selected), out.patchScores)
    }

    /// Encodes packed RGB24: preprocess, tower, projector; one view on the patch grid.
    public func encode(width: Int, height: Int, rgb: [UInt8], scoreLayers: Set<Int>) throws(VisionError) -> EncodedFrame {
        try validate(layers: scoreLayers)
        let pixels = try preprocessor.pixelValues(width: width, height: height, rgb: rgb)
        let (features, scores) = try self.features(pixelValues: pixels, scoreLayers: scoreLayers)
        guard features.rows == patchGrid.count + 1 else {
            return EncodedFrame(grid: patchGrid, features: features, scores: scores)
        }
        // "full": the CLS row (first) has no place on the patch grid HiPrune prunes.
        return EncodedFrame(views: [EncodedView(grid: patchGrid, features: features.rows(1..<features.rows), scores: scores,
                                                place: .frame, leading: features.rows(0..<1))])
    }
}

extension LlavaVisionModel: FrameEncoder {
    public var family: String { configuration.modelType }
    /// The layers that exist for HiPrune: those run, 1...the feature layer.
    public var layerCount: Int { tower.layers }
    /// 9 of 24 for CLIP ViT-L/14 (HIPRUNE.md); other depths scale it, round(9 · L / 24).
    public var defaultObjectLayer: Int {
        let scaled = Int((9 * Double(vision.numHiddenLayers) / 24).rounded(.toNearestOrEven))
        return max(1, min(layerCount, scaled))
    }
    /// The feature layer (23 of 24 with vision_feature_layer −2).
    public var defaultDeepLayer: Int { layerCount }
    public var framesPerStep: Int { 1 }
    public var featureWidth: Int { configuration.textHiddenSize }
    public var flopsPerStep: Double {
        let n = Double(patchGrid.count), v = Double(vision.hiddenSize), t = Double(configuration.textHiddenSize)
        return tower.flops + 2 * n * (v * t + t * t)
    }

    /// `.fast`: the processor's resized size (shortest edge), so only the crop is left here;
    /// `.reference`: the source size, resized here as CLIPImageProcessor resizes (torchvision's uint8 kernel).
    public func inputSize(sourceWidth: Int, sourceHeight: Int, preprocessing: Preprocessing) -> (width: Int, height: Int)? {
        preprocessing == .fast ? preprocessor.inputSize(sourceWidth: sourceWidth, sourceHeight: sourceHeight) : nil
    }

    public func encode(_ frames: [RGBImage], scoreLayers: Set<Int>) throws(VisionError) -> EncodedFrame {
        guard let frame = frames.first else {
            throw .invalidConfiguration(file: "frames", field: "count", cause: "no frame to encode")
        }
        return try encode(width: frame.width, height: frame.height, rgb: frame.rgb, scoreLayers: scoreLayers)
    }
}
