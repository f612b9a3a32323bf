// config.json of the LLaVA families (`llava`, `llava_next`, `llava_next_video`) as far as the vision
// side reads it, and preprocessor_config.json of their CLIP image processor. Missing fields take
// transformers' defaults (LlavaConfig, LlavaNextConfig, LlavaNextVideoConfig, CLIPImageProcessor).
// The decoder's own fields (text_config) are read by VLM's LlamaConfiguration.
import Foundation

public struct LlavaConfiguration: Sendable, Equatable {
    public static let modelTypes: Set<String> = ["llava", "llava_next", "llava_next_video"]

    public var modelType = "llava"
    public var visionConfig = CLIPVisionConfiguration()
    /// text_config.hidden_size: the width the projector maps into.
    public var textHiddenSize = 4096
    /// text_config.model_type: the decoder (and its chat format), llama (vicuna) or mistral.
    public var textModelType = "llama"
    public var imageTokenId = 32000
    /// llava_next_video's <video> token.
    public var videoTokenId: Int?
    public var projectorHiddenAct = "gelu"
    public var multimodalProjectorBias = true
    /// hidden_states index LLaVA reads (negative from the end: −2 is the second-to-last layer's output).
    public var visionFeatureLayer = -2
    /// "default" drops the CLS row, "full" keeps it.
    public var visionFeatureSelectStrategy = "default"
    /// llava_next: candidate (height, width) resolutions of AnyRes.
    public var imageGridPinpoints: [[Int]] = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]
    /// llava_next_video: pooling of each frame's grid before the language model.
    public var spatialPoolMode = "average"
    public var spatialPoolStride = 2

    public init() {}

    /// The CLIP hidden_states index read, 0...num_hidden_layers (also the number of layers run).
    public var featureLayerIndex: Int {
        let layers = visionConfig.numHiddenLayers
        return visionFeatureLayer >= 0 ? visionFeatureLayer : layers + 1 + visionFeatureLayer
    }

    /// Reads and checks `directory/config.json`.
    public static func load(directory: String) throws(VisionError) -> LlavaConfiguration {
        let file = (directory as NSString).appendingPathComponent("config.json")
        guard let data = FileManager.default.contents(atPath: file) else { throw .missingFile(file) }
        let root: [String: Any]
        do {
            guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw VisionError.malformedJSON(file: file, cause: "not an object")
            }
            root = object
        } catch let error as VisionError {
            throw error
        } catch {
            throw .malformedJSON(file: file, cause: "\(error)")
        }
        return try LlavaConfiguration(json: root, file: file)
    }

    public init(json root: [String: Any], file: String) throws(VisionError) {
        func int(_ key: String) throws(VisionError) -> Int? {
            guard let value = root[key], !(value is NSNull) else { return nil }
            guard let n = value as? NSNumber, !(value is Bool) else {
                throw .invalidConfiguration(file: file, field: key, cause: "expected an integer")
            }
            return n.intValue
        }
        func string(_ key: String) throws(VisionError) -> String? {
            guard let value = root[key], !(value is NSNull) else { return nil }
            guard let s = value as? String else { throw .invalidConfiguration(file: file, field: key, cause: "expected a string") }
            return s
        }
        modelType = try string("model_type") ?? "(none)"
        guard Self.modelTypes.contains(modelType) else { throw .unknownModelType(file: file, modelType: modelType) }
        if let vision = root["vision_config"] as? [String: Any] {
            do {
                visionConfig = try JSONDecoder().decode(CLIPVisionConfiguration.self,
                                                        from: JSONSerialization.data(withJSONObject: vision))
            } catch {
                throw .invalidConfiguration(file: file, field: "vision_config", cause: "\(error)")
            }
        } else {
            // LlavaConfig's default tower: CLIP ViT-L/14-336.
            visionConfig = CLIPVisionConfiguration()
            visionConfig.hiddenSize = 1024
            visionConfig.intermediateSize = 4096
            visionConfig.numHiddenLayers = 24
            visionConfig.numAttentionHeads = 16
            visionConfig.imageSize = 336
            visionConfig.patchSize = 14
        }
        if let text = root["text_config"] as? [String: Any] {
            textHiddenSize = (text["hidden_size"] as? NSNumber)?.intValue ?? textHiddenSize
            textModelType = text["model_type"] as? String ?? textModelType
        }
        // transformers 5 names them *_token_id, older files *_token_index.
        let image = try int("image_token_id"), legacyImage = try int("image_token_index")
        let video = try int("video_token_id"), legacyVideo = try int("video_token_index")
        imageTokenId = image ?? legacyImage ?? imageTokenId
        videoTokenId = video ?? legacyVideo ?? (modelType == "llava_next_video" ? 32001 : nil)
        projectorHiddenAct = try string("projector_hidden_act") ?? projectorHiddenAct
        multimodalProjectorBias = root["multimodal_projector_bias"] as? Bool ?? true
        if let layer = root["vision_feature_layer"], !(layer is NSNull) {
            guard let n = layer as? NSNumber, !(layer is Bool) else {
                throw .invalidConfiguration(file: file, field: "vision_feature_layer",
                                            cause: "a list of layers (features concatenated) is not supported; one layer only")
            }
            visionFeatureLayer = n.intValue
        }
        visionFeatureSelectStrategy = try string("vision_feature_select_strategy") ?? visionFeatureSelectStrategy
        if let pinpoints = root["image_grid_pinpoints"], !(pinpoints is NSNull) {
            guard let list = pinpoints as? [[NSNumber]] else {
                throw .invalidConfiguration(file: file, field: "image_grid_pinpoints", cause: "expected a list of [height, width]")
            }
            imageGridPinpoints = list.map { $0.map(\.intValue) }
        }
        spatialPoolMode = try string("spatial_pool_mode") ?? spatialPoolMode
        spatialPoolStride = try int("spatial_pool_stride") ?? spatialPoolStride
        try validate(file: file)
    }

    func validate(file: String) throws(VisionError) {
        func check(_ ok: Bool, _ field: String, _ cause: String) throws(VisionError) {
            if !ok { throw .invalidConfiguration(file: file, field: field, cause: cause) }
        }
        try visionConfig.validate(file: file)
        let layers = visionConfig.numHiddenLayers
        try check((1...layers).contains(featureLayerIndex), "vision_feature_layer",
                  "\(visionFeatureLayer) does not name a layer output of a \(layers)-layer tower")
        try check(["default", "full"].contains(visionFeatureSelectStrategy), "vision_feature_select_strategy",
                  "'\(visionFeatureSelectStrategy)' is not supported (default, full)")
        try check(ViTEncoder.Activation(hiddenAct: projectorHiddenAct) != nil, "projector_hidden_act",
                  "'\(projectorHiddenAct)' is not supported")
        try check(textHiddenSize > 0, "text_config.hidden_size", "must be positive")
        try check(imageGridPinpoints.allSatisfy { $0.count == 2 && $0[0] > 0 && $0[1] > 0 }, "image_grid_pinpoints",
                  "every entry must be a positive [height, width]")
        try check(["average", "max"].contains(spatialPoolMode), "spatial_pool_mode", "'\(spatialPoolMode)' is not supported (average, max)")
        try check(spatialPoolStride > 0, "spatial_pool_stride", "must be positive")
    }
}

/// preprocessor_config.json of a CLIP image processor (LLaVA's): resize of the shortest edge,
/// centre crop, rescale and normalise. `size` and `crop_size` may be numbers or objects.
public struct CLIPPreprocessorConfiguration: Sendable, Equatable {
    public var doResize = true
    /// size.shortest_edge; nil with `size` {height, width}.
    public var shortestEdge: Int? = 224
    /// size {height, width}: resize to exactly that (with shortestEdge nil).
    public var resizeHeight: Int?, resizeWidth: Int?
    public var doCenterCrop = true
    public var cropHeight = 224, cropWidth = 224
    public var resample = 3
    public var doRescale = true
    public var rescaleFactor: Float = 1.0 / 255.0
    public var doNormalize = true
    public var imageMean: [Float] = [0.48145466, 0.4578275, 0.40821073]
    public var imageStd: [Float] = [0.26862954, 0.26130258, 0.27577711]

    public init() {}

    /// Reads `directory/<name>` (preprocessor_config.json, or a video processor's
    /// video_preprocessor_config.json); nil when the file does not exist.
    public static func load(directory: String, name: String = "preprocessor_config.json") throws(VisionError) -> CLIPPreprocessorConfiguration? {
        let file = (directory as NSString).appendingPathComponent(name)
        guard FileManager.default.fileExists(atPath: file) else { return nil }
        guard let data = FileManager.default.contents(atPath: file) else { throw .missingFile(file) }
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw .malformedJSON(file: file, cause: "not a JSON object")
        }
        var c = CLIPPreprocessorConfiguration()
        func bool(_ key: String, _ fallback: Bool) -> Bool { root[key] as? Bool ?? fallback }
        func number(_ key: String) -> NSNumber? { root[key] as? NSNumber }
        c.doResize = bool("do_resize", c.doResize)
        c.doCenterCrop = bool("do_center_crop", c.doCenterCrop)
        c.doRescale = bool("do_rescale", c.doRescale)
        c.doNormalize = bool("do_normalize", c.doNormalize)
        c.rescaleFactor = number("rescale_factor")?.floatValue ?? c.rescaleFactor
        c.resample = number("resample")?.intValue ?? c.resample
        switch root["size"] {
        case let n as NSNumber:
            c.shortestEdge = n.intValue
        case let d as [String: NSNumber]:
            if let s = d["shortest_edge"] {
                c.shortestEdge = s.intValue
            } else if let h = d["height"], let w = d["width"] {
                c.shortestEdge = nil
                c.resizeHeight = h.intValue
                c.resizeWidth = w.intValue
            } else {
                throw .invalidConfiguration(file: file, field: "size", cause: "expected shortest_edge or height and width")
            }
        case nil, is NSNull: break
        default: throw .invalidConfiguration(file: file, field: "size", cause: "expected a number or an object")
        }
        switch root["crop_size"] {
        case let n as NSNumber:
            c.cropHeight = n.intValue
            c.cropWidth = n.intValue
        case let d as [String: NSNumber]:
            guard let h = d["height"], let w = d["width"] else {
                throw .invalidConfiguration(file: file, field: "crop_size", cause: "expected height and width")
            }
            c.cropHeight = h.intValue
            c.cropWidth = w.intValue
        case nil, is NSNull: break
        default: throw .invalidConfiguration(file: file, field: "crop_size", cause: "expected a number or an object")
        }
        for (key, keyPath) in [("image_mean", \CLIPPreprocessorConfiguration.imageMean), ("image_std", \.imageStd)] {
            switch root[key] {
            case let n as NSNumber: c[keyPath: keyPath] = [n.floatValue, n.floatValue, n.floatValue]
            case let list as [NSNumber] where list.count == 3: c[keyPath: keyPath] = list.map(\.floatValue)
            case nil, is NSNull: break
            default: throw .invalidConfiguration(file: file, field: key, cause: "expected 3 values")
            }
        }
        guard c.imageStd.allSatisfy({ $0 != 0 }) else {
            throw .invalidConfiguration(file: file, field: "image_std", cause: "a standard deviation is 0")
        }
        guard c.shortestEdge.map({ $0 > 0 }) ?? true, (c.resizeHeight ?? 1) > 0, (c.resizeWidth ?? 1) > 0,
              c.cropHeight > 0, c.cropWidth > 0 else {
            throw .invalidConfiguration(file: file, field: "size/crop_size", cause: "sizes must be positive")
        }
        guard [1, 3].contains(c.resample) else {
            throw .invalidConfiguration(file: file, field: "resample", cause: "\(c.resample) is not supported (1 lanczos, 3 bicubic)")
        }
        return c
    }

    var filter: ResampleFilter { resample == 1 ? .lanczos3 : .bicubic }

    var normalization: PixelNormalization {
        PixelNormalization(doRescale: doRescale, rescaleFactor: rescaleFactor, doNormalize: doNormalize, mean: imageMean, std: imageStd)
    }
}
