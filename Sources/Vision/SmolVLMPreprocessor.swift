// Frames → pixel values for the SmolVLM encoder.
//
// transformers' SmolVLM video processor resizes every frame twice — the longest edge to its `size`
// (the other edge int(longest / aspect), rounded up to even), then to max_image_size.longest_edge on
// BOTH sides, i.e. a square that ignores the aspect ratio — then rescales and normalises, and pads
// nothing (all frames share that square). Both resizes are torchvision's on the uint8 frame with the
// config's `resample` (1 Lanczos, 3 bicubic, antialiased), reproduced byte for byte by resizeRGB.
//
// `--preprocess reference` (the default) hands this the decoded frame at its source size and the two
// resizes run here. `--preprocess fast` has the decoder's scaler bring the frame to the square in one
// FFmpeg scale; a frame already at the square is used as it is (a source that is itself that square
// is therefore not put through the processor's up-and-down resize when `size` is larger).
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

    /// transformers' MAX_IMAGE_SIZE: the first resize's longest edge is capped at 4k.
    static let maxImageSize = 4096

    /// The (width, height) of the first resize for a width × height frame (get_resize_output_image_size).
    public func firstResize(width: Int, height: Int) -> (width: Int, height: Int) {
        let table = configuration.videoResize ?? [:]
        guard let edge = table["longest_edge"] else { return (table["width"] ?? side, table["height"] ?? side) }
        let longest = min(Self.maxImageSize, edge)
        let aspect = Double(width) / Double(height)
        var w = width, h = height
        if width >= height {
            w = longest
            h = Int(Double(w) / aspect)
            if h % 2 != 0 { h += 1 }
        } else {
            h = longest
            w = Int(Double(h) * aspect)
            if w % 2 != 0 { w += 1 }
        }
        return (max(w, 1), max(h, 1))
    }

    /// The processor's two resizes of packed RGB24 (each skipped when it would not change the size).
    public func resize(width: Int, height: Int, rgb: [UInt8]) throws(VisionError) -> [UInt8] {
        guard let filter = configuration.filter else {
            throw .invalidConfiguration(file: "preprocessor_config.json", field: "resample", cause: "\(configuration.resample) is not supported")
        }
        let first = firstResize(width: width, height: height)
        var bytes = rgb
        if first != (width, height) {
            bytes = resizeRGB(bytes, width: width, height: height, toWidth: first.width, toHeight: first.height, filter: filter)
        }
        if first != (side, side) {
            bytes = resizeRGB(bytes, width: first.width, height: first.height, toWidth: side, toHeight: side, filter: filter)
        }
        return bytes
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
            values = try resize(width: width, height: height, rgb: rgb).map { Float($0) }
        }
        let c = configuration
        return PixelNormalization(doRescale: c.doRescale, rescaleFactor: c.rescaleFactor, doNormalize: c.doNormalize,
                                  mean: c.imageMean, std: c.imageStd).channelFirst(values, width: side, height: side)
    }
}
