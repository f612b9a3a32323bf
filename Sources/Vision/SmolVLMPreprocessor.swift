// Frames → pixel values for the SmolVLM encoder.
//
// transformers' SmolVLM video processor resizes every frame twice (longest edge to size.longest_edge,
// then to max_image_size.longest_edge on BOTH sides, i.e. a square that ignores the aspect ratio), then
// rescales and normalises, and pads nothing (all frames share that square). The Stream module
// normally scales frames straight to that square with swscale; a frame already at the square is used
// as is. A frame of any other size is resized here in one separable, antialiased Lanczos-3 step to
// the square (close to, not bit-identical with, the two-step torchvision resize).
import Foundation
import Tensor

public struct SmolVLMPreprocessor: Sendable {
    /// The frame side the encoder takes (max_image_size.longest_edge, else the vision image_size).
    public let side: Int
    public let configuration: SmolVLMPreprocessorConfiguration

    public init(configuration: SmolVLMPreprocessorConfiguration, side: Int) {
        self.configuration = configuration
        self.side = side
    }

    /// Packed RGB24 → channel-first Float32 [3, side, side].
    public func pixelValues(width: Int, height: Int, rgb: [UInt8]) throws(VisionError) -> [Float] {
        guard width > 0, height > 0, rgb.count == width * height * 3 else {
            throw .invalidFrame("\(rgb.count) bytes for a \(width)x\(height) RGB24 frame (expected \(max(0, width * height * 3)))")
        }
        let values: [Float]
        if width == side && height == side || !configuration.doResize {
            guard width == side && height == side else {
                throw .invalidFrame("\(width)x\(height) frame, the encoder takes \(side)x\(side) and do_resize is false")
            }
            values = rgb.map { Float($0) }
        } else {
            values = resizeRGB(rgb, width: width, height: height, toWidth: side, toHeight: side, filter: .lanczos3,
                               roundBetweenPasses: false).map { Float($0) }
        }
        let c = configuration
        return PixelNormalization(doRescale: c.doRescale, rescaleFactor: c.rescaleFactor, doNormalize: c.doNormalize,
                                  mean: c.imageMean, std: c.imageStd).channelFirst(values, width: side, height: side)
    }
}
