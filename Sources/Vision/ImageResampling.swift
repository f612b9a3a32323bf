// Resizing and normalising packed RGB frames, shared by the families' preprocessors.
//
// The resize is PIL's (and torch's antialiased `interpolate`) separable convolution: for output
// pixel i the source centre is (i + 0.5) · scale, the filter widens by the scale when shrinking
// (antialiasing), taps run from int(centre − support + 0.5) to int(centre + support + 0.5), their
// weights are normalised to sum 1; horizontal pass first, then vertical; the result is a uint8
// image, as the reference processors produce.

import Foundation

public enum ResampleFilter: Sendable, Equatable {
    /// Lanczos with a = 3 (PIL's LANCZOS, resample = 1 in SmolVLM's processor config).
    case lanczos3
    /// Cubic convolution with a = −0.5 (PIL's BICUBIC, resample = 3; torch's antialiased bicubic).
    case bicubic

    var support: Double {
        switch self {
        case .lanczos3: return 3
        case .bicubic: return 2
        }
    }

    func weight(_ x: Double) -> Double {
        switch self {
        case .lanczos3:
            if x == 0 { return 1 }
            if abs(x) >= 3 { return 0 }
            return 3 * sin(Double.pi * x) * sin(Double.pi * x / 3) / (Double.pi * Double.pi * x * x)
        case .bicubic:
            let a = -0.5, t = abs(x)
            if t < 1 { return ((a + 2) * t - (a + 3)) * t * t + 1 }
            if t < 2 { return (((t - 5) * t + 8) * t - 4) * a }
            return 0
        }
    }

    /// Per output index: first source index and the normalised weights.
    func taps(from n: Int, to m: Int) -> [(start: Int, weights: [Float])] {
        let scale = Double(n) / Double(m)
        let filterScale = max(1, scale)
        let support = self.support * filterScale
        return (0..<m).map { i in
            let center = (Double(i) + 0.5) * scale
            let lo = max(0, Int(center - support + 0.5)), hi = min(n, Int(center + support + 0.5))
            var w: [Double] = []
            var total = 0.0
            for j in lo..<max(lo, hi) {
                let v = weight((Double(j) - center + 0.5) / filterScale)
                w.append(v)
                total += v
            }
            return (lo, w.map { total == 0 ? 0 : Float($0 / total) })
        }
    }
}

/// Resizes packed RGB24 to `toWidth` × `toHeight`: the horizontal pass, then the vertical one (a
/// pass whose side does not change is skipped, as torch skips it). `roundBetweenPasses` rounds the
/// horizontal result to uint8 first, as PyTorch's uint8 kernel (torchvision on a uint8 tensor, the
/// default backend of transformers 5's image processors) does; otherwise the passes run in Float32
/// and only the end is rounded (PIL's float path).
public func resizeRGB(_ rgb: [UInt8], width: Int, height: Int, toWidth: Int, toHeight: Int,
                      filter: ResampleFilter, roundBetweenPasses: Bool) -> [UInt8] {
    @inline(__always) func byte(_ v: Float) -> Float { min(255, max(0, v.rounded())) }
    var data = rgb.map { Float($0) }
    var w = width
    if toWidth != width {
        let taps = filter.taps(from: width, to: toWidth)
        var out = [Float](repeating: 0, count: height * toWidth * 3)
        for y in 0..<height {
            for x in 0..<toWidth {
                let (start, weights) = taps[x]
                for ch in 0..<3 {
                    var acc: Float = 0
                    for (k, v) in weights.enumerated() { acc += v * data[(y * w + start + k) * 3 + ch] }
                    out[(y * toWidth + x) * 3 + ch] = roundBetweenPasses ? byte(acc) : acc
                }
            }
        }
        data = out
        w = toWidth
    }
    if toHeight != height {
        let taps = filter.taps(from: height, to: toHeight)
        var out = [Float](repeating: 0, count: toHeight * w * 3)
        for y in 0..<toHeight {
            let (start, weights) = taps[y]
            for x in 0..<w {
                for ch in 0..<3 {
                    var acc: Float = 0
                    for (k, v) in weights.enumerated() { acc += v * data[((start + k) * w + x) * 3 + ch] }
                    out[(y * w + x) * 3 + ch] = acc
                }
            }
        }
        data = out
    }
    return data.map { UInt8(byte($0)) }
}

/// How pixel values 0...255 become the encoder's input: transformers fuses rescale into
/// normalisation, (x − mean/rf) / (std/rf), in Float32.
public struct PixelNormalization: Sendable, Equatable {
    public var doRescale: Bool
    public var rescaleFactor: Float
    public var doNormalize: Bool
    public var mean: [Float]
    public var std: [Float]

    public init(doRescale: Bool, rescaleFactor: Float, doNormalize: Bool, mean: [Float], std: [Float]) {
        self.doRescale = doRescale
        self.rescaleFactor = rescaleFactor
        self.doNormalize = doNormalize
        self.mean = mean
        self.std = std
    }

    /// Packed RGB values [height · width · 3] (a `crop` of a larger image when given: x, y, width,
    /// height in its pixels) → channel-first [3, height, width].
    public func channelFirst(_ values: [Float], width: Int, height: Int,
                             crop: (x: Int, y: Int, width: Int, height: Int)? = nil) -> [Float] {
        let c = crop ?? (0, 0, width, height)
        let plane = c.width * c.height
        var out = [Float](repeating: 0, count: 3 * plane)
        for ch in 0..<3 {
            let m: Float, s: Float, factor: Float
            switch (doRescale, doNormalize) {
            case (true, true): m = mean[ch] * (1 / rescaleFactor); s = std[ch] * (1 / rescaleFactor); factor = 1
            case (false, true): m = mean[ch]; s = std[ch]; factor = 1
            case (true, false): m = 0; s = 1; factor = rescaleFactor
            case (false, false): m = 0; s = 1; factor = 1
            }
            values.withUnsafeBufferPointer { src in
                out.withUnsafeMutableBufferPointer { dst in
                    for y in 0..<c.height {
                        for x in 0..<c.width {
                            let v = src[((c.y + y) * width + c.x + x) * 3 + ch]
                            dst[ch * plane + y * c.width + x] = (v * factor - m) / s
                        }
                    }
                }
            }
        }
        return out
    }
}
