// Configuration of the Qwen2.5-VL vision side (model_type "qwen2_5_vl"), mirroring config.json's
// vision_config and the video processor's preprocessor_config.json. Coding keys are the JSON names;
// a missing field takes transformers' default (Qwen2_5_VLVisionConfig, Qwen2VLVideoProcessor).
import Foundation
import Tensor

/// config.json → vision_config.
public struct Qwen25VLVisionConfiguration: Codable, Sendable, Equatable {
    public var depth = 32
    public var hiddenSize = 3584
    public var hiddenAct = "silu"
    public var intermediateSize = 3420
    public var numHeads = 16
    public var inChannels = 3
    public var patchSize = 14
    public var spatialMergeSize = 2
    public var temporalPatchSize = 2
    public var tokensPerSecond = 4
    public var windowSize = 112
    public var outHiddenSize = 3584
    public var fullattBlockIndexes = [7, 15, 23, 31]
    public var ropeTheta: Float = 10000

    enum CodingKeys: String, CodingKey {
        case depth, hiddenSize = "hidden_size", hiddenAct = "hidden_act", intermediateSize = "intermediate_size"
        case numHeads = "num_heads", inChannels = "in_channels", inChans = "in_chans", patchSize = "patch_size"
        case spatialMergeSize = "spatial_merge_size", temporalPatchSize = "temporal_patch_size"
        case tokensPerSecond = "tokens_per_second", windowSize = "window_size", outHiddenSize = "out_hidden_size"
        case fullattBlockIndexes = "fullatt_block_indexes", ropeParameters = "rope_parameters"
    }

    struct RopeParameters: Codable { var rope_theta: Float? }

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = Self()
        depth = try c.decodeIfPresent(Int.self, forKey: .depth) ?? d.depth
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? d.hiddenSize
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? d.hiddenAct
        intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? d.intermediateSize
        numHeads = try c.decodeIfPresent(Int.self, forKey: .numHeads) ?? d.numHeads
        // Hub checkpoints say in_chans, transformers 5 writes in_channels.
        inChannels = try c.decodeIfPresent(Int.self, forKey: .inChannels) ?? c.decodeIfPresent(Int.self, forKey: .inChans) ?? d.inChannels
        patchSize = try c.decodeIfPresent(Int.self, forKey: .patchSize) ?? d.patchSize
        spatialMergeSize = try c.decodeIfPresent(Int.self, forKey: .spatialMergeSize) ?? d.spatialMergeSize
        temporalPatchSize = try c.decodeIfPresent(Int.self, forKey: .temporalPatchSize) ?? d.temporalPatchSize
        tokensPerSecond = try c.decodeIfPresent(Int.self, forKey: .tokensPerSecond) ?? d.tokensPerSecond
        windowSize = try c.decodeIfPresent(Int.self, forKey: .windowSize) ?? d.windowSize
        outHiddenSize = try c.decodeIfPresent(Int.self, forKey: .outHiddenSize) ?? d.outHiddenSize
        fullattBlockIndexes = try c.decodeIfPresent([Int].self, forKey: .fullattBlockIndexes) ?? d.fullattBlockIndexes
        ropeTheta = try c.decodeIfPresent(RopeParameters.self, forKey: .ropeParameters)?.rope_theta ?? d.ropeTheta
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(depth, forKey: .depth)
        try c.encode(hiddenSize, forKey: .hiddenSize)
        try c.encode(hiddenAct, forKey: .hiddenAct)
        try c.encode(intermediateSize, forKey: .intermediateSize)
        try c.encode(numHeads, forKey: .numHeads)
        try c.encode(inChannels, forKey: .inChannels)
        try c.encode(patchSize, forKey: .patchSize)
        try c.encode(spatialMergeSize, forKey: .spatialMergeSize)
        try c.encode(temporalPatchSize, forKey: .temporalPatchSize)
        try c.encode(tokensPerSecond, forKey: .tokensPerSecond)
        try c.encode(windowSize, forKey: .windowSize)
        try c.encode(outHiddenSize, forKey: .outHiddenSize)
        try c.encode(fullattBlockIndexes, forKey: .fullattBlockIndexes)
    }

    public var headDimension: Int { hiddenSize / max(1, numHeads) }
    /// Side of an attention window in merged tokens (window_size / merge / patch: 112 → 4).
    public var windowTokens: Int { windowSize / max(1, spatialMergeSize) / max(1, patchSize) }
    /// Width of one flattened patch: channels · temporal patch · patch².
    public var patchWidth: Int { inChannels * temporalPatchSize * patchSize * patchSize }

    /// The HiPrune layers (1-based blocks): object = the second-to-last full-attention block
    /// (16 of 32 in the released model, as the paper), deep = the last one (32).
    public var defaultScoreLayers: (object: Int, deep: Int) {
        let full = fullattBlockIndexes.sorted().map { $0 + 1 }
        guard let deep = full.last else { return (max(1, depth / 2), depth) }
        let object = full.count >= 3 ? full[full.count / 2 - 1] : (full.count == 2 ? full[0] : deep)
        return (object, deep)
    }

    func validate(file: String) throws(VisionError) {
        func check(_ ok: Bool, _ field: String, _ cause: String) throws(VisionError) {
            if !ok { throw .invalidConfiguration(file: file, field: "vision_config.\(field)", cause: cause) }
        }
        if let (field, cause) = SizeLimits.violation([
            ("depth", depth, .layers), ("hidden_size", hiddenSize, .width), ("intermediate_size", intermediateSize, .width),
            ("num_heads", numHeads, .heads), ("in_channels", inChannels, .factor), ("patch_size", patchSize, .patch),
            ("temporal_patch_size", temporalPatchSize, .factor), ("window_size", windowSize, .imageSide),
            ("out_hidden_size", outHiddenSize, .width), ("tokens_per_second", tokensPerSecond, .factor),
        ]) { throw .invalidConfiguration(file: file, field: "vision_config.\(field)", cause: cause) }
        if let (field, cause) = SizeLimits.nonPositive([("rope_theta", Double(ropeTheta))]) { try check(false, field, cause) }
        try check(depth > 0, "depth", "must be positive")
        try check(hiddenSize > 0 && numHeads > 0 && hiddenSize % numHeads == 0 && headDimension % 4 == 0, "hidden_size",
                  "\(hiddenSize) must split into num_heads \(numHeads) heads of a multiple of 4")
        try check(intermediateSize > 0, "intermediate_size", "must be positive")
        try check(inChannels > 0 && patchSize > 0 && temporalPatchSize > 0, "patch_size", "patch sizes and channels must be positive")
        try check(spatialMergeSize == 2, "spatial_merge_size", "\(spatialMergeSize) (only 2 is supported)")
        try check(windowTokens > 0, "window_size", "\(windowSize) is smaller than one merged token (\(spatialMergeSize * patchSize) pixels)")
        try check(outHiddenSize > 0, "out_hidden_size", "must be positive")
        try check(fullattBlockIndexes.allSatisfy { (0..<depth).contains($0) }, "fullatt_block_indexes",
                  "\(fullattBlockIndexes) outside blocks 0..<\(depth)")
        try check(hiddenAct == "silu", "hidden_act", "'\(hiddenAct)' is not supported (silu)")
    }
}

/// The top of config.json that the vision side needs.
public struct Qwen25VLConfiguration: Codable, Sendable, Equatable {
    public static let modelTypes: Set<String> = ["qwen2_5_vl"]

    public var modelType = "qwen2_5_vl"
    public var visionConfig = Qwen25VLVisionConfiguration()

    enum CodingKeys: String, CodingKey { case modelType = "model_type", visionConfig = "vision_config" }

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        modelType = try c.decodeIfPresent(String.self, forKey: .modelType) ?? "qwen2_5_vl"
        visionConfig = try c.decodeIfPresent(Qwen25VLVisionConfiguration.self, forKey: .visionConfig) ?? .init()
    }

    /// Reads and checks `directory/config.json`.
    public static func load(directory: String) throws(VisionError) -> Qwen25VLConfiguration {
        let file = (directory as NSString).appendingPathComponent("config.json")
        let config = try decodeJSON(Qwen25VLConfiguration.self, file: file)
        guard modelTypes.contains(config.modelType) else {
            throw .invalidConfiguration(file: file, field: "model_type", cause: "'\(config.modelType)' is not qwen2_5_vl")
        }
        try config.visionConfig.validate(file: file)
        return config
    }
}

/// The video processor's settings (video_preprocessor_config.json, else preprocessor_config.json).
public struct Qwen25VLPreprocessorConfiguration: Codable, Sendable, Equatable {
    /// Pixel bounds of a resized frame (size.shortest_edge / size.longest_edge, or min_pixels / max_pixels).
    public var minPixels = 128 * 28 * 28
    public var maxPixels = 768 * 28 * 28
    public var patchSize = 14
    public var temporalPatchSize = 2
    public var mergeSize = 2
    public var doResize = true
    public var doRescale = true
    public var rescaleFactor: Float = 1.0 / 255.0
    public var doNormalize = true
    public var imageMean: [Float] = [0.48145466, 0.4578275, 0.40821073]
    public var imageStd: [Float] = [0.26862954, 0.26130258, 0.27577711]
    /// Video sampling: frames per second (Qwen's 2 by default), frame count bounds.
    public var fps: Double = 2
    public var minFrames = 4
    public var maxFrames = 768

    enum CodingKeys: String, CodingKey {
        case minPixels = "min_pixels", maxPixels = "max_pixels", size, patchSize = "patch_size"
        case temporalPatchSize = "temporal_patch_size", mergeSize = "merge_size", doResize = "do_resize"
        case doRescale = "do_rescale", rescaleFactor = "rescale_factor", doNormalize = "do_normalize"
        case imageMean = "image_mean", imageStd = "image_std", fps, minFrames = "min_frames", maxFrames = "max_frames"
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = Self()
        let size = try c.decodeIfPresent([String: Int].self, forKey: .size)
        minPixels = try size?["shortest_edge"] ?? c.decodeIfPresent(Int.self, forKey: .minPixels) ?? d.minPixels
        maxPixels = try size?["longest_edge"] ?? c.decodeIfPresent(Int.self, forKey: .maxPixels) ?? d.maxPixels
        patchSize = try c.decodeIfPresent(Int.self, forKey: .patchSize) ?? d.patchSize
        temporalPatchSize = try c.decodeIfPresent(Int.self, forKey: .temporalPatchSize) ?? d.temporalPatchSize
        mergeSize = try c.decodeIfPresent(Int.self, forKey: .mergeSize) ?? d.mergeSize
        doResize = try c.decodeIfPresent(Bool.self, forKey: .doResize) ?? d.doResize
        doRescale = try c.decodeIfPresent(Bool.self, forKey: .doRescale) ?? d.doRescale
        rescaleFactor = try c.decodeIfPresent(Float.self, forKey: .rescaleFactor) ?? d.rescaleFactor
        doNormalize = try c.decodeIfPresent(Bool.self, forKey: .doNormalize) ?? d.doNormalize
        imageMean = try c.decodeIfPresent([Float].self, forKey: .imageMean) ?? d.imageMean
        imageStd = try c.decodeIfPresent([Float].self, forKey: .imageStd) ?? d.imageStd
        fps = try c.decodeIfPresent(Double.self, forKey: .fps) ?? d.fps
        minFrames = try c.decodeIfPresent(Int.self, forKey: .minFrames) ?? d.minFrames
        maxFrames = try c.decodeIfPresent(Int.self, forKey: .maxFrames) ?? d.maxFrames
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(minPixels, forKey: .minPixels)
        try c.encode(maxPixels, forKey: .maxPixels)
        try c.encode(patchSize, forKey: .patchSize)
        try c.encode(temporalPatchSize, forKey: .temporalPatchSize)
        try c.encode(mergeSize, forKey: .mergeSize)
        try c.encode(imageMean, forKey: .imageMean)
        try c.encode(imageStd, forKey: .imageStd)
        try c.encode(fps, forKey: .fps)
    }

    /// Side multiple of a resized frame: patch · merge (28).
    public var factor: Int { patchSize * mergeSize }

    /// Reads the directory's video settings; defaults when neither file exists.
    public static func load(directory: String) throws(VisionError) -> Qwen25VLPreprocessorConfiguration {
        for name in ["video_preprocessor_config.json", "preprocessor_config.json"] {
            let file = (directory as NSString).appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: file) else { continue }
            let config = try decodeJSON(Qwen25VLPreprocessorConfiguration.self, file: file)
            try config.validate(file: file)
            return config
        }
        return Qwen25VLPreprocessorConfiguration()
    }

    func validate(file: String) throws(VisionError) {
        func check(_ ok: Bool, _ field: String, _ cause: String) throws(VisionError) {
            if !ok { throw .invalidConfiguration(file: file, field: field, cause: cause) }
        }
        let side = SizeKind.imageSide.bounds.upperBound
        if let (field, cause) = SizeLimits.violation([
            ("patch_size", patchSize, .patch), ("merge_size", mergeSize, .factor), ("temporal_patch_size", temporalPatchSize, .factor),
            ("min_frames", minFrames, .frames), ("max_frames", maxFrames, .frames),
        ]) { throw .invalidConfiguration(file: file, field: field, cause: cause) }
        try check(maxPixels <= side * side, "max_pixels", "\(maxPixels) is more than a \(side)x\(side) picture")
        try check(imageMean.count == 3 && imageStd.count == 3, "image_mean/image_std", "expected 3 values each")
        try check(imageStd.allSatisfy { $0 != 0 }, "image_std", "a standard deviation is 0")
        try check(minPixels > 0 && maxPixels >= minPixels, "min_pixels/max_pixels", "bounds \(minPixels)...\(maxPixels) are empty")
        try check(patchSize > 0 && mergeSize > 0 && temporalPatchSize > 0, "patch_size", "patch, merge and temporal sizes must be positive")
        try check(fps > 0, "fps", "\(fps) must be positive")
    }
}
