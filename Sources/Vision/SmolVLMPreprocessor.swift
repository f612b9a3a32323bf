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
            values = lanczosResize(rgb: rgb, width: width, height: height, side: side)
        }
        let plane = side * side
        var out = [Float](repeating: 0, count: 3 * plane)
        let c = configuration
        for ch in 0..<3 {
            // transformers fuses rescale into normalisation: (x − mean/rf) / (std/rf), in Float32.
            let mean: Float, std: Float, factor: Float
            switch (c.doRescale, c.doNormalize) {
            case (true, true): mean = c.imageMean[ch] * (1 / c.rescaleFactor); std = c.imageStd[ch] * (1 / c.rescaleFactor); factor = 1
            case (false, true): mean = c.imageMean[ch]; std = c.imageStd[ch]; factor = 1
            case (true, false): mean = 0; std = 1; factor = c.rescaleFactor
            case (false, false): mean = 0; std = 1; factor = 1
            }
            values.withUnsafeBufferPointer { src in
                out.withUnsafeMutableBufferPointer { dst in
                    for i in 0..<plane { dst[ch * plane + i] = (src[i * 3 + ch] * factor - mean) / std }
                }
            }
        }
        return out
    }
}

/// Separable Lanczos-3 resize of packed RGB to side × side, antialiased when shrinking (the kernel
/// widens by the scale, as PIL does); results rounded and clamped to 0...255 like a uint8 image.
func lanczosResize(rgb: [UInt8], width: Int, height: Int, side: Int) -> [Float] {
    func weights(from n: Int, to m: Int) -> [(start: Int, w: [Float])] {
        let scale = Double(n) / Double(m)
        let support = 3.0 * max(1, scale)
        return (0..<m).map { i in
            let center = (Double(i) + 0.5) * scale
            let lo = max(0, Int((center - support).rounded(.down))), hi = min(n, Int((center + support).rounded(.up)))
            var w: [Float] = []
            var total = 0.0
            for j in lo..<hi {
                let x = (Double(j) + 0.5 - center) / max(1, scale)
                let v: Double
                if x == 0 { v = 1 } else if abs(x) >= 3 { v = 0 } else {
                    v = 3 * sin(Double.pi * x) * sin(Double.pi * x / 3) / (Double.pi * Double.pi * x * x)
                }
                w.append(Float(v))
                total += v
            }
            return (lo, w.map { total == 0 ? 0 : $0 / Float(total) })
        }
    }
    let wx = weights(from: width, to: side), wy = weights(from: height, to: side)
    var horizontal = [Float](repeating: 0, count: height * side * 3)
    for y in 0..<height {
        for x in 0..<side {
            let (start, w) = wx[x]
            for ch in 0..<3 {
                var acc: Float = 0
                for (k, v) in w.enumerated() { acc += v * Float(rgb[(y * width + start + k) * 3 + ch]) }
                horizontal[(y * side + x) * 3 + ch] = acc
            }
        }
    }
    var out = [Float](repeating: 0, count: side * side * 3)
    for y in 0..<side {
        let (start, w) = wy[y]
        for x in 0..<side {
            for ch in 0..<3 {
                var acc: Float = 0
                for (k, v) in w.enumerated() { acc += v * horizontal[((start + k) * side + x) * 3 + ch] }
                out[(y * side + x) * 3 + ch] = min(255, max(0, acc.rounded()))
            }
        }
    }
    return out
}
