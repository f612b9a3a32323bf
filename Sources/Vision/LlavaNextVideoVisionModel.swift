// LLaVA-NeXT-Video's vision side (`llava_next_video`): each frame through LLaVA's CLIP tower (CLIP
// preprocessing, CLS dropped), then the vision resampler — an average (or max) pool of
// spatial_pool_stride × spatial_pool_stride blocks of the patch grid, 24 × 24 → 12 × 12 — *before*
// the projector, as transformers' get_video_features does. One view per frame on the pooled grid;
// a pooled token's HiPrune score is the mean of its block's patch scores (as for SmolVLM's pixel
// shuffle). The blocks are PixelShuffle's index map: a token's chunks are its block's patches.
import Foundation
import Prune
import Tensor

public struct LlavaNextVideoVisionModel: Sendable {
    public let llava: LlavaVisionModel
    /// The patch grid's blocks, one per pooled token.
    public let pool: PixelShuffle

    public var configuration: LlavaConfiguration { llava.configuration }

    public init(_ llava: LlavaVisionModel) throws(VisionError) {
        let c = llava.configuration
        guard c.visionFeatureSelectStrategy == "default" else {
            throw .invalidConfiguration(file: "config.json", field: "vision_feature_select_strategy",
                                        cause: "'full' keeps the CLS row, which the 2-D pooling has no place for (transformers' pooling of 577 rows fails too); use 'default'")
        }
        let side = c.visionConfig.gridSide, stride = c.spatialPoolStride
        guard side % stride == 0 else {
            throw .invalidConfiguration(file: "config.json", field: "spatial_pool_stride",
                                        cause: "\(stride) does not divide the \(side)x\(side) patch grid")
        }
        self.llava = llava
        pool = PixelShuffle(side: side, scale: stride)
    }

    /// Frames take the video processor's settings when the checkpoint ships them.
    public static func load(directory: String, precision: EncoderPrecision = .f32) throws(VisionError) -> LlavaNextVideoVisionModel {
        try LlavaNextVideoVisionModel(LlavaVisionModel.load(directory: directory,
                                                            preprocessors: ["video_preprocessor_config.json", "preprocessor_config.json"],
                                                            precision: precision))
    }

    /// [patches, width] → [pooled tokens, width]: the mean (or max) of each block's rows.
    public func pooled(_ patches: Matrix) throws(VisionError) -> Matrix {
        let blocks = try pool.shuffle(patches)  // token t: its block's patches side by side
        let width = patches.cols, chunks = pool.scale * pool.scale
        let average = configuration.spatialPoolMode == "average"
        var out = Matrix(rows: blocks.rows, cols: width)
        for t in 0..<blocks.rows {
            for c in 0..<width {
                var acc: Float = average ? 0 : -.infinity
                for k in 0..<chunks {
                    let v = blocks[t, k * width + c]
                    acc = average ? acc + v : max(acc, v)
                }
                out[t, c] = average ? acc / Float(chunks) : acc
            }
        }
        return out
    }

    /// Encodes packed RGB24: CLIP preprocessing, tower, pool, projector; one view on the pooled grid.
    public func encode(width: Int, height: Int, rgb: [UInt8], scoreLayers: Set<Int>) throws(VisionError) -> EncodedFrame {
        try llava.validate(layers: scoreLayers)
        let pixels = try llava.preprocessor.pixelValues(width: width, height: height, rgb: rgb)
        let out = try llava.tower.forward(pixelValues: pixels, scoreLayers: scoreLayers)
        let patches = out.lastHiddenState.rows(1..<out.lastHiddenState.rows)
        let features = try llava.project(try pooled(patches))
        var scores: [Int: [Float]] = [:]
        for (layer, s) in out.patchScores { scores[layer] = try pool.pool(s) }
        return EncodedFrame(grid: pool.grid, features: features, scores: scores)
    }
}

extension LlavaNextVideoVisionModel: FrameEncoder {
    public var family: String { configuration.modelType }
    public var layerCount: Int { llava.layerCount }
    public var defaultObjectLayer: Int { llava.defaultObjectLayer }
    public var defaultDeepLayer: Int { llava.defaultDeepLayer }
    public var framesPerStep: Int { 1 }
    public var featureWidth: Int { llava.featureWidth }
    public var flopsPerStep: Double {
        let t = Double(configuration.textHiddenSize), v = Double(llava.vision.hiddenSize), n = Double(pool.grid.count)
        return llava.tower.flops + 2 * n * (v * t + t * t)
    }

    public func inputSize(sourceWidth: Int, sourceHeight: Int, preprocessing: Preprocessing) -> (width: Int, height: Int)? {
        llava.inputSize(sourceWidth: sourceWidth, sourceHeight: sourceHeight, preprocessing: preprocessing)
    }

    public func encode(_ frames: [RGBImage], scoreLayers: Set<Int>) throws(VisionError) -> EncodedFrame {
        guard let frame = frames.first else {
            throw .invalidConfiguration(file: "frames", field: "count", cause: "no frame to encode")
        }
        return try encode(width: frame.width, height: frame.height, rgb: frame.rgb, scoreLayers: scoreLayers)
    }
}
