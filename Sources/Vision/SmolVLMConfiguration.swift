// Configuration of the SmolVLM / SmolVLM2 family (model_type "smolvlm" or "idefics3"), mirroring
// config.json and preprocessor_config.json. Coding keys are the JSON names; a missing field takes
// transformers' default (SmolVLMConfig, SmolVLMVisionConfig, LlamaConfig, SmolVLMVideoProcessor).
import Foundation
import Tensor

/// Errors of the Vision module; each names the file, field or input and the cause.
public enum VisionError: Error, CustomStringConvertible {
    case missingFile(String)
    case malformedJSON(file: String, cause: String)
    case unknownModelType(file: String, modelType: String)
    case invalidConfiguration(file: String, field: String, cause: String)
    case weights(WeightsError)
    case invalidFrame(String)
    case computation(String)

    public var description: String {
        switch self {
        case let .missingFile(file): return "\(file): file not found"
        case let .malformedJSON(file, cause): return "\(file): malformed JSON: \(cause)"
        case let .unknownModelType(file, modelType):
            return "\(file): model_type '\(modelType)' is not supported (expected smolvlm or idefics3)"
        case let .invalidConfiguration(file, field, cause): return "\(file): \(field): \(cause)"
        case let .weights(error): return error.description
        case let .invalidFrame(detail): return "frame: \(detail)"
        case let .computation(detail): return "vision encoder: \(detail)"
        }
    }
}

/// config.json → vision_config.
public struct SmolVLMVisionConfiguration: ViTVisionFields, Codable, Sendable, Equatable {
    public var hiddenSize = 1152
    public var intermediateSize = 3072
    public var numHiddenLayers = 12
    public var numAttentionHeads = 16
    public var numChannels = 3
    public var imageSize = 224
    public var patchSize = 32
    public var hiddenAct = "gelu_pytorch_tanh"
    public var layerNormEps: Float = 1e-6

    enum CodingKeys: String, CodingKey {
        case hiddenSize = "hidden_size", intermediateSize = "intermediate_size", numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads", numChannels = "num_channels", imageSize = "image_size"
        case patchSize = "patch_size", hiddenAct = "hidden_act", layerNormEps = "layer_norm_eps"
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        try self.init(decodingViTFields: decoder)
    }
}

/// The fields every ViT tower's vision_config shares (SigLIP's, CLIP's), decoded once over each
/// type's own defaults (transformers' SiglipVisionConfig / CLIPVisionConfig differ in them).
public protocol ViTVisionFields {
    init()
    var hiddenSize: Int { get set }
    var intermediateSize: Int { get set }
    var numHiddenLayers: Int { get set }
    var numAttentionHeads: Int { get set }
    var numChannels: Int { get set }
    var imageSize: Int { get set }
    var patchSize: Int { get set }
    var hiddenAct: String { get set }
    var layerNormEps: Float { get set }
}

private enum ViTVisionKeys: String, CodingKey {
    case hiddenSize = "hidden_size", intermediateSize = "intermediate_size", numHiddenLayers = "num_hidden_layers"
    case numAttentionHeads = "num_attention_heads", numChannels = "num_channels", imageSize = "image_size"
    case patchSize = "patch_size", hiddenAct = "hidden_act", layerNormEps = "layer_norm_eps"
}

extension ViTVisionFields {
    /// The type's defaults, then every shared field config.json gives.
    public init(decodingViTFields decoder: Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: ViTVisionKeys.self)
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? hiddenSize
        intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? intermediateSize
        numHiddenLayers = try c.decodeIfPresent(Int.self, forKey: .numHiddenLayers) ?? numHiddenLayers
        numAttentionHeads = try c.decodeIfPresent(Int.self, forKey: .numAttentionHeads) ?? numAttentionHeads
        numChannels = try c.decodeIfPresent(Int.self, forKey: .numChannels) ?? numChannels
        imageSize = try c.decodeIfPresent(Int.self, forKey: .imageSize) ?? imageSize
        patchSize = try c.decodeIfPresent(Int.self, forKey: .patchSize) ?? patchSize
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? hiddenAct
        layerNormEps = try c.decodeIfPresent(Float.self, forKey: .layerNormEps) ?? layerNormEps
    }
}

/// config.json → text_config as far as the vision side needs it: the width the connector projects
/// into. The decoder itself is read by VLM's LlamaConfiguration.
public struct SmolVLMTextConfiguration: Codable, Sendable, Equatable {
    public var hiddenSize = 4096

    enum CodingKeys: String, CodingKey { case hiddenSize = "hidden_size" }

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? Self().hiddenSize
    }
}

/// config.json of a SmolVLM / SmolVLM2 / Idefics3 checkpoint.
public struct SmolVLMConfiguration: Codable, Sendable, Equatable {
    public static let modelTypes: Set<String> = ["smolvlm", "idefics3"]

    public var modelType = "smolvlm"
    public var visionConfig = SmolVLMVisionConfiguration()
    public var textConfig = SmolVLMTextConfiguration()
    public var scaleFactor = 2
    public var imageTokenId = 128257
    public var tieWordEmbeddings = false

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type", visionConfig = "vision_config", textConfig = "text_config"
        case scaleFactor = "scale_factor", imageTokenId = "image_token_id", tieWordEmbeddings = "tie_word_embeddings"
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = Self()
        modelType = try c.decodeIfPresent(String.self, forKey: .modelType) ?? d.modelType
        visionConfig = try c.decodeIfPresent(SmolVLMVisionConfiguration.self, forKey: .visionConfig) ?? d.visionConfig
        textConfig = try c.decodeIfPresent(SmolVLMTextConfiguration.self, forKey: .textConfig) ?? d.textConfig
        scaleFactor = try c.decodeIfPresent(Int.self, forKey: .scaleFactor) ?? d.scaleFactor
        imageTokenId = try c.decodeIfPresent(Int.self, forKey: .imageTokenId) ?? d.imageTokenId
        tieWordEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) ?? d.tieWordEmbeddings
    }

    /// Reads and checks `directory/config.json`.
    public static func load(directory: String) throws(VisionError) -> SmolVLMConfiguration {
        let file = (directory as NSString).appendingPathComponent("config.json")
        let config = try decodeJSON(SmolVLMConfiguration.self, file: file)
        guard modelTypes.contains(config.modelType) else { throw .unknownModelType(file: file, modelType: config.modelType) }
        try config.validate(file: file)
        return config
    }

    /// The SigLIP layers' shape (hidden_act already validated).
    var encoderShape: ViTEncoder.Shape {
        let v = visionConfig
        return ViTEncoder.Shape(hidden: v.hiddenSize, intermediate: v.intermediateSize, heads: v.numAttentionHeads,
                                layers: v.numHiddenLayers, layerNormEps: v.layerNormEps,
                                activation: ViTEncoder.Activation(hiddenAct: v.hiddenAct) ?? .geluTanh)
    }

    func validate(file: String) throws(VisionError) {
        let v = visionConfig
        func check(_ ok: Bool, _ field: String, _ cause: String) throws(VisionError) {
            if !ok { throw .invalidConfiguration(file: file, field: field, cause: cause) }
        }
        if let (field, cause) = SizeLimits.violation([
            ("vision_config.num_hidden_layers", v.numHiddenLayers, .layers), ("vision_config.hidden_size", v.hiddenSize, .width),
            ("vision_config.intermediate_size", v.intermediateSize, .width),
            ("vision_config.num_attention_heads", v.numAttentionHeads, .heads), ("vision_config.num_channels", v.numChannels, .factor),
            ("vision_config.image_size", v.imageSize, .imageSide), ("vision_config.patch_size", v.patchSize, .patch),
            ("scale_factor", scaleFactor, .factor), ("text_config.hidden_size", textConfig.hiddenSize, .width),
        ]) { throw .invalidConfiguration(file: file, field: field, cause: cause) }
        if let (field, cause) = SizeLimits.nonPositive([("vision_config.layer_norm_eps", Double(v.layerNormEps))]) {
            throw .invalidConfiguration(file: file, field: field, cause: cause)
        }
        try check(v.hiddenSize > 0 && v.numAttentionHeads > 0 && v.hiddenSize % v.numAttentionHeads == 0,
                  "vision_config.hidden_size", "\(v.hiddenSize) is not a positive multiple of num_attention_heads \(v.numAttentionHeads)")
        try check(v.patchSize > 0 && v.imageSize > 0 && v.imageSize % v.patchSize == 0,
                  "vision_config.image_size", "\(v.imageSize) is not a positive multiple of patch_size \(v.patchSize)")
        try check(v.numHiddenLayers > 0, "vision_config.num_hidden_layers", "must be positive")
        try check(v.intermediateSize > 0, "vision_config.intermediate_size", "must be positive")
        try check(v.numChannels > 0, "vision_config.num_channels", "must be positive")
        try check(["gelu_pytorch_tanh", "gelu_new", "gelu", "gelu_fast"].contains(v.hiddenAct),
                  "vision_config.hidden_act", "'\(v.hiddenAct)' is not supported")
        try check(scaleFactor > 0 && (v.imageSize / v.patchSize) % scaleFactor == 0, "scale_factor",
                  "\(scaleFactor) does not divide the \(v.imageSize / v.patchSize) patches per side")
        try check(textConfig.hiddenSize > 0, "text_config.hidden_size", "must be positive")
    }
}

/// preprocessor_config.json, the fields frames need (SmolVLM video processor defaults).
public struct SmolVLMPreprocessorConfiguration: Codable, Sendable, Equatable {
    public var doResize = true
    public var doRescale = true
    public var rescaleFactor: Float = 1.0 / 255.0
    public var doNormalize = true
    public var imageMean: [Float] = [0.5, 0.5, 0.5]
    public var imageStd: [Float] = [0.5, 0.5, 0.5]
    public var size: [String: Int]? = ["longest_edge": 4 * 364]
    public var maxImageSize: [String: Int]? = ["longest_edge": 364]
    public var resample = 1
    public var videoSampling: VideoSampling?
    /// The video processor's `size` (its first resize): `size` when the file has it, else
    /// video_sampling.video_size, else the class default, as SmolVLMVideoProcessor.__init__ picks it.
    public var videoResize: [String: Int]? = ["longest_edge": 4 * 364]

    public struct VideoSampling: Codable, Sendable, Equatable {
        public var fps: Double?
        public var maxFrames: Int?
        public var videoSize: [String: Int]?
        enum CodingKeys: String, CodingKey { case fps, maxFrames = "max_frames", videoSize = "video_size" }
    }

    enum CodingKeys: String, CodingKey {
        case doResize = "do_resize", doRescale = "do_rescale", rescaleFactor = "rescale_factor"
        case doNormalize = "do_normalize", imageMean = "image_mean", imageStd = "image_std", size
        case maxImageSize = "max_image_size", resample, videoSampling = "video_sampling"
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = Self()
        doResize = try c.decodeIfPresent(Bool.self, forKey: .doResize) ?? d.doResize
        doRescale = try c.decodeIfPresent(Bool.self, forKey: .doRescale) ?? d.doRescale
        rescaleFactor = try c.decodeIfPresent(Float.self, forKey: .rescaleFactor) ?? d.rescaleFactor
        doNormalize = try c.decodeIfPresent(Bool.self, forKey: .doNormalize) ?? d.doNormalize
        imageMean = try Self.triple(c, .imageMean) ?? d.imageMean
        imageStd = try Self.triple(c, .imageStd) ?? d.imageStd
        let fileSize = try c.decodeIfPresent([String: Int].self, forKey: .size)
        size = fileSize ?? d.size
        maxImageSize = try c.decodeIfPresent([String: Int].self, forKey: .maxImageSize) ?? d.maxImageSize
        resample = try c.decodeIfPresent(Int.self, forKey: .resample) ?? d.resample
        videoSampling = try c.decodeIfPresent(VideoSampling.self, forKey: .videoSampling)
        videoResize = fileSize ?? (videoSampling != nil ? videoSampling?.videoSize : d.size)
    }

    /// image_mean / image_std may be one number or one per channel.
    static func triple(_ c: KeyedDecodingContainer<CodingKeys>, _ key: CodingKeys) throws -> [Float]? {
        if let one = try? c.decodeIfPresent(Float.self, forKey: key) { return [one, one, one] }
        return try c.decodeIfPresent([Float].self, forKey: key)
    }

    /// The side of the square every video frame is resized to: the video processor's last resize
    /// goes to max_image_size.longest_edge on both sides.
    public var frameSide: Int? { maxImageSize?["longest_edge"] ?? videoSampling?.videoSize?["longest_edge"] }

    /// The filter of `resample` (1 Lanczos, 3 bicubic, as torchvision ≥ 0.27 runs them on a CPU).
    public var filter: ResampleFilter? { ResampleFilter(pilResample: resample) }

    /// Reads `directory/preprocessor_config.json`; nil when the file does not exist.
    public static func load(directory: String) throws(VisionError) -> SmolVLMPreprocessorConfiguration? {
        let file = (directory as NSString).appendingPathComponent("preprocessor_config.json")
        guard FileManager.default.fileExists(atPath: file) else { return nil }
        let config = try decodeJSON(SmolVLMPreprocessorConfiguration.self, file: file)
        guard config.imageMean.count == 3, config.imageStd.count == 3 else {
            throw .invalidConfiguration(file: file, field: "image_mean/image_std", cause: "expected 3 values each")
        }
        guard config.imageStd.allSatisfy({ $0 != 0 }) else {
            throw .invalidConfiguration(file: file, field: "image_std", cause: "a standard deviation is 0")
        }
        var sizes: [(field: String, value: Int, kind: SizeKind)] = []
        for (name, table) in [("size", config.size), ("max_image_size", config.maxImageSize),
                              ("video_sampling.video_size", config.videoSampling?.videoSize)] {
            for (key, value) in (table ?? [:]).sorted(by: { $0.key < $1.key }) { sizes.append(("\(name).\(key)", value, .imageSide)) }
        }
        guard config.filter != nil else {
            throw .invalidConfiguration(file: file, field: "resample", cause: "\(config.resample) is not supported (1 lanczos, 3 bicubic)")
        }
        if config.doResize, config.videoResize?["longest_edge"] == nil,
           config.videoResize?["height"] == nil || config.videoResize?["width"] == nil {
            throw .invalidConfiguration(file: file, field: "size", cause: "the video resize needs longest_edge, or height and width")
        }
        if let frames = config.videoSampling?.maxFrames { sizes.append(("video_sampling.max_frames", frames, .frames)) }
        if let (field, cause) = SizeLimits.violation(sizes) { throw .invalidConfiguration(file: file, field: field, cause: cause) }
        return config
    }
}

/// Decodes a JSON file, naming the file and the failing field in the error.
func decodeJSON<T: Decodable>(_ type: T.Type, file: String) throws(VisionError) -> T {
    guard let data = FileManager.default.contents(atPath: file) else { throw .missingFile(file) }
    do {
        return try JSONDecoder().decode(T.self, from: data)
    } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
        throw .invalidConfiguration(file: file, field: context.codingPath.map(\.stringValue).joined(separator: "."),
                                    cause: context.debugDescription)
    } catch let DecodingError.dataCorrupted(context) {
        let cause = (context.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String ?? context.debugDescription
        throw .malformedJSON(file: file, cause: cause)
    } catch {
        throw .malformedJSON(file: file, cause: "\(error)")
    }
}
