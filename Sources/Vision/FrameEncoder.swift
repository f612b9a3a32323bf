import Prune

/// Pixels of one decoded frame, packed RGB24 (row stride `width * 3`). Vision does not depend on
/// the Stream module; the pipeline hands a frame's pixels over in this form.
public struct RGBImage: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var rgb: [UInt8]

    public init(width: Int, height: Int, rgb: [UInt8]) {
        self.width = width
        self.height = height
        self.rgb = rgb
    }
}

/// How decoded frames reach the encoder's input size (`--preprocess`).
public enum Preprocessing: String, Sendable, CaseIterable {
    /// Frames are decoded at their source size and the family's preprocessor resizes them as the
    /// family's reference processor (transformers) does.
    case reference
    /// The decoder's scaler (FFmpeg's bicubic swscale) brings frames to the encoder's input size in
    /// one step while converting them to RGB; faster, and not the reference's pixels.
    case fast
}

/// A vision family's encoder as the pipeline sees it. Families add a conforming type; the
/// pipeline (stats, encode, ask, live) never switches on the family.
///
/// A *step* is what the encoder consumes at once: one frame for SmolVLM, a temporal patch of
/// `framesPerStep` frames for Qwen2.5-VL (an incomplete last step repeats its last frame).
/// Every step yields one `EncodedFrame`: one view on the step's own grid, or (AnyRes) a base
/// view and its crops, each on its own grid.
public protocol FrameEncoder: Sendable {
    /// Family name as `config.json`'s `model_type` spells it.
    var family: String { get }
    /// Encoder layers are numbered 1...layerCount.
    var layerCount: Int { get }
    /// HiPrune's object layer for this family (HIPRUNE.md's table).
    var defaultObjectLayer: Int { get }
    /// HiPrune's deep layer for this family.
    var defaultDeepLayer: Int { get }
    /// Frames per encoder step.
    var framesPerStep: Int { get }
    /// Width of one token's feature row after the connector (the language model's hidden size).
    var featureWidth: Int { get }
    /// Multiply-adds × 2 of one step (for statistics).
    var flopsPerStep: Double { get }

    /// The size frames should be decoded at for a source of this size (0 × 0 when unknown) under
    /// `preprocessing`: with `.fast`, the encoder's input size, so that the decoder's scaler does the
    /// resize once; with `.reference`, nil when the family's preprocessor reproduces its reference's
    /// resize from any size. nil: decode at the source size.
    func inputSize(sourceWidth: Int, sourceHeight: Int, preprocessing: Preprocessing) -> (width: Int, height: Int)?

    /// Encodes one step; `frames.count` is between 1 and `framesPerStep`.
    func encode(_ frames: [RGBImage], scoreLayers: Set<Int>) throws(VisionError) -> EncodedFrame
}

extension FrameEncoder {
    /// Default: no preferred size; the preprocessor resizes whatever it gets.
    public func inputSize(sourceWidth: Int, sourceHeight: Int, preprocessing: Preprocessing) -> (width: Int, height: Int)? { nil }

    /// Rejects layers outside 1...layerCount with an error naming the flag.
    public func validate(layers: Set<Int>, flag: String = "--layers") throws(VisionError) {
        for layer in layers.sorted() where !(1...layerCount).contains(layer) {
            throw .invalidConfiguration(file: flag, field: "\(layer)", cause: "the encoder has layers 1...\(layerCount)")
        }
    }
}

extension SmolVLMVisionModel: FrameEncoder {
    public var family: String { configuration.modelType }
    /// SigLIP's object layer is not published: L/2 by default (calibrate per video with `calibrate`).
    public var defaultObjectLayer: Int { max(1, layerCount / 2) }
    public var defaultDeepLayer: Int { layerCount }
    public var framesPerStep: Int { 1 }
    public var featureWidth: Int { configuration.textConfig.hiddenSize }
    public var flopsPerStep: Double { flopsPerFrame }

    /// Every frame becomes the encoder's square, whatever its aspect ratio (as the reference's
    /// video processor does): in one FFmpeg scale (`.fast`), or through the processor's two resizes
    /// from the source size (`.reference`, SmolVLMPreprocessor).
    public func inputSize(sourceWidth: Int, sourceHeight: Int, preprocessing: Preprocessing) -> (width: Int, height: Int)? {
        preprocessing == .fast ? (preprocessor.side, preprocessor.side) : nil
    }

    public func encode(_ frames: [RGBImage], scoreLayers: Set<Int>) throws(VisionError) -> EncodedFrame {
        guard let frame = frames.first else {
            throw .invalidConfiguration(file: "frames", field: "count", cause: "no frame to encode")
        }
        return EncodedFrame(views: [try encode(width: frame.width, height: frame.height, rgb: frame.rgb, scoreLayers: scoreLayers)])
    }
}
