// Frames → pixel values for a CLIP tower, as transformers' CLIPImageProcessor makes them: resize
// so that the shortest edge is size.shortest_edge (the other edge int(size · long / short)), with
// antialiased bicubic on the uint8 frame (torch's uint8 kernel, as Qwen2.5-VL's); centre crop to crop_size; rescale and normalise with the
// CLIP mean and std. The Stream module normally scales frames to the resized size already
// (FrameEncoder.inputSize), so only the crop is left; a frame at any other size is resized here.
//
// `padToSquare` is the original LLaVA's `image_aspect_ratio = pad`: the frame is first centred on a
// square canvas of the mean colour (expand2square), so that nothing is cropped away.
import Foundation

public struct CLIPPreprocessor: Sendable {
    public let configuration: CLIPPreprocessorConfiguration
    /// Pad to a square of the mean colour before resizing (nothing cropped).
    public var padToSquare: Bool

    public init(configuration: CLIPPreprocessorConfiguration, padToSquare: Bool = false) {
        self.configuration = configuration
        self.padToSquare = padToSquare
    }

    /// Output (width, height) of the processor's resize for a frame of this size (before the crop).
    public func resizedSize(width: Int, height: Int) -> (width: Int, height: Int) {
        let c = configuration
        guard c.doResize, width > 0, height > 0 else { return (width, height) }
        if let h = c.resizeHeight, let w = c.resizeWidth { return (w, h) }
        guard let s = c.shortestEdge else { return (width, height) }
        // get_resize_output_image_size(default_to_square=False): int(size · long / short).
        if width <= height { return (s, Int(Double(s * height) / Double(width))) }
        return (Int(Double(s * width) / Double(height)), s)
    }

    /// The frame size pixelValues resizes to, padding included: what the decoder should scale to.
    public func inputSize(sourceWidth: Int, sourceHeight: Int) -> (width: Int, height: Int) {
        let side = max(sourceWidth, sourceHeight)
        return padToSquare ? resizedSize(width: side, height: side) : resizedSize(width: sourceWidth, height: sourceHeight)
    }

    /// Packed RGB24 → channel-first Float32 [3, crop height, crop width].
    public func pixelValues(width: Int, height: Int, rgb: [UInt8]) throws(VisionError) -> [Float] {
        guard width > 0, height > 0, rgb.count == width * height * 3 else {
            throw .invalidFrame("\(rgb.count) bytes for a \(width)x\(height) RGB24 frame (expected \(max(0, width * height * 3)))")
        }
        var (w, h, pixels) = (width, height, rgb)
        if padToSquare && w != h { (w, h, pixels) = expandToSquare(pixels, width: w, height: h) }
        let c = configuration
        let target = resizedSize(width: w, height: h)
        let values = target == (w, h)
            ? pixels.map { Float($0) }
            : resizeRGB(pixels, width: w, height: h, toWidth: target.width, toHeight: target.height, filter: c.filter).map { Float($0) }
        (w, h) = target
        guard c.doCenterCrop else {
            return c.normalization.channelFirst(values, width: w, height: h)
        }
        guard w >= c.cropWidth, h >= c.cropHeight else {
            throw .invalidFrame("\(width)x\(height) frame resized to \(w)x\(h) is smaller than the \(c.cropWidth)x\(c.cropHeight) crop")
        }
        // int((size − crop) / 2.0), as transformers' center_crop.
        let top = (h - c.cropHeight) / 2, left = (w - c.cropWidth) / 2
        return c.normalization.channelFirst(values, width: w, height: h, crop: (left, top, c.cropWidth, c.cropHeight))
    }

    /// LLaVA's expand2square: the frame centred on a square of the mean colour, int(mean · 255).
    func expandToSquare(_ rgb: [UInt8], width: Int, height: Int) -> (Int, Int, [UInt8]) {
        let side = max(width, height)
        let fill = configuration.imageMean.map { UInt8(max(0, min(255, Int($0 * 255)))) }
        var out = [UInt8](repeating: 0, count: side * side * 3)
        for i in 0..<(side * side) { out[i * 3] = fill[0]; out[i * 3 + 1] = fill[1]; out[i * 3 + 2] = fill[2] }
        let x0 = (side - width) / 2, y0 = (side - height) / 2
        for y in 0..<height {
            let src = y * width * 3, dst = ((y0 + y) * side + x0) * 3
            out.replaceSubrange(dst..<(dst + width * 3), with: rgb[src..<(src + width * 3)])
        }
        return (side, side, out)
    }
}
