import Prune
import Tensor

/// Qwen2.5-VL as the pipeline's frame encoder: a step is one temporal patch of two frames (an
/// incomplete last step repeats its frame), and each step's grid follows the frames' aspect ratio.
extension Qwen25VLVisionModel: FrameEncoder {
    public var family: String { "qwen2_5_vl" }
    /// 16 of 32 in the released models (HIPRUNE.md); for other depths the middle full-attention block.
    public var defaultObjectLayer: Int { vision.defaultScoreLayers.object }
    /// The last full-attention block (32 of 32).
    public var defaultDeepLayer: Int { vision.defaultScoreLayers.deep }
    public var framesPerStep: Int { vision.temporalPatchSize }
    public var featureWidth: Int { vision.outHiddenSize }
    /// The grid depends on each input's size; this is the cost of a 16:9 step at 448×252, what
    /// the default pixel bounds keep for a 448×252 frame (16×9 merged tokens).
    public var flopsPerStep: Double { flops(rows: 18, cols: 32) }

    /// `.fast`: the smart_resize size of the source, so the decoder's scaler does the resize;
    /// `.reference`: the source size, resized here as Qwen2VLVideoProcessor resizes (bicubic, antialiased).
    public func inputSize(sourceWidth: Int, sourceHeight: Int, preprocessing: Preprocessing) -> (width: Int, height: Int)? {
        guard preprocessing == .fast, sourceWidth > 0, sourceHeight > 0, preprocessor.configuration.doResize,
              let target = try? preprocessor.targetSize(height: sourceHeight, width: sourceWidth) else { return nil }
        return (target.width, target.height)
    }

    public func encode(_ frames: [RGBImage], scoreLayers: Set<Int>) throws(VisionError) -> EncodedFrame {
        guard !frames.isEmpty else { throw .invalidConfiguration(file: "frames", field: "count", cause: "no frame to encode") }
        return EncodedFrame(views: [try encode(frames: frames.map { (width: $0.width, height: $0.height, rgb: $0.rgb) }, scoreLayers: scoreLayers)])
    }
}
