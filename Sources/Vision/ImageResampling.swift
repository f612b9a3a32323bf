// Resizing and normalising packed RGB frames, shared by the families' preprocessors.
//
// The resize is PyTorch's antialiased `interpolate` on a uint8 tensor on a CPU, which is what
// torchvision's resize runs for uint8 frames and so what transformers' processors compute
// (torchvision ≥ 0.27 also maps PIL's LANCZOS to it; older versions fall back to bicubic). For output
// index i the source centre is (i + 0.5) · scale (scale = in / out, in Double); when shrinking, the
// filter's support widens by the scale (antialiasing) and its argument is multiplied by 1 / scale;
// taps run from Int(centre − support + 0.5) to Int(centre + support + 0.5) clipped to the image;
// weights are normalised to sum 1, then held as int16 with the most fractional bits that keep the
// largest weight × 2 below 2^15. The horizontal pass runs first and is rounded to uint8, then the
// vertical one; a side that does not change is not resampled. The passes are the C kernels of
// CKernels/image_resample.c; the bytes equal torch's (Tests: ReferencePreprocessingTests).

import CKernels
import Foundation

public enum ResampleFilter: Sendable, Equatable {
    /// Lanczos with a = 3: sinc(x) · sinc(x / 3) (PIL's LANCZOS, resample = 1).
    case lanczos3
    /// Keys' cubic convolution with a = −0.5 (PIL's BICUBIC, resample = 3; torch's antialiased bicubic).
    case bicubic

    /// The filter of a processor's `resample` (PIL's numbering), nil for one we do not implement.
    public init?(pilResample: Int) {
        switch pilResample {
        case 1: self = .lanczos3
        case 3: self = .bicubic
        default: return nil
        }
    }

    /// Half the filter's width at scale 1 (torch's interp_size / 2).
    var support: Double {
        switch self {
        case .lanczos3: return 3
        case .bicubic: return 2
        }
    }

    /// torch's aa_filter, in its operation order (so that the Double weights round as torch's do).
    func weight(_ x: Double) -> Double {
        let t = abs(x)
        switch self {
        case .lanczos3:
            @inline(__always) func sinc(_ v: Double) -> Double {
                if v == 0 { return 1 }
                let p = v * Double.pi
                return sin(p) / p
            }
            return t < 3 ? sinc(t) * sinc(t / 3) : 0
        case .bicubic:
            let a = -0.5
            if t < 1 { return ((a + 2) * t - (a + 3)) * t * t + 1 }
            if t < 2 { return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a }
            return 0
        }
    }

    /// The fixed-point taps of resizing n samples to m.
    public func taps(from n: Int, to m: Int) -> ResampleTaps {
        let scale = Double(n) / Double(m)
        let support = scale >= 1 ? self.support * scale : self.support
        let inverse = scale >= 1 ? 1 / scale : 1
        let maxTaps = Int(support.rounded(.up)) * 2 + 1
        var first = [Int32](repeating: 0, count: m), count = [Int32](repeating: 0, count: m)
        var real = [Double](repeating: 0, count: m * maxTaps)
        var largest = 0.0
        for i in 0..<m {
            let center = scale * (Double(i) + 0.5)
            let lo = max(Int(center - support + 0.5), 0)
            let size = min(max(Int(center + support + 0.5), 0), n) - lo
            let taken = max(0, min(size, maxTaps))
            var total = 0.0
            for j in 0..<taken {
                let w = weight((Double(j + lo) - center + 0.5) * inverse)
                real[i * maxTaps + j] = w
                total += w
            }
            if total != 0 {
                for j in 0..<taken {
                    real[i * maxTaps + j] /= total
                    largest = max(largest, real[i * maxTaps + j])
                }
            }
            first[i] = Int32(lo)
            count[i] = Int32(taken)
        }
        var precision = 0
        while precision < 22 && Int(0.5 + largest * Double(1 << (precision + 1))) < (1 << 15) { precision += 1 }
        let unit = Double(1 << precision)
        let weights = real.map { v in Int16(truncatingIfNeeded: Int(v < 0 ? -0.5 + v * unit : 0.5 + v * unit)) }
        return ResampleTaps(first: first, count: count, weights: weights, maxTaps: maxTaps, precision: precision)
    }
}

/// One axis of a resize: per output index, the first source index, the number of taps and their
/// int16 weights (`maxTaps` per index) scaled by 2^precision.
public struct ResampleTaps: Sendable, Equatable {
    public var first: [Int32]
    public var count: [Int32]
    public var weights: [Int16]
    public var maxTaps: Int
    public var precision: Int
}

/// Resizes packed RGB24 to `toWidth` × `toHeight` as PyTorch's antialiased uint8 `interpolate`
/// does (see the top of the file): the horizontal pass rounded to uint8, then the vertical one.
public func resizeRGB(_ rgb: [UInt8], width: Int, height: Int, toWidth: Int, toHeight: Int,
                      filter: ResampleFilter) -> [UInt8] {
    precondition(width > 0 && height > 0 && toWidth > 0 && toHeight > 0 && rgb.count == width * height * 3,
                 "resizeRGB: \(rgb.count) bytes for \(width)x\(height) → \(toWidth)x\(toHeight)")
    var data = rgb
    var w = width
    if toWidth != width {
        let t = filter.taps(from: width, to: toWidth)
        var out = [UInt8](repeating: 0, count: height * toWidth * 3)
        data.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                hp_resample_horizontal_u8(src.baseAddress, width, height, 3, dst.baseAddress, toWidth, t.first, t.count,
                                          t.weights, t.maxTaps, Int32(t.precision))
            }
        }
        data = out
        w = toWidth
    }
    if toHeight != height {
        let t = filter.taps(from: height, to: toHeight)
        var out = [UInt8](repeating: 0, count: toHeight * w * 3)
        data.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                hp_resample_vertical_u8(src.baseAddress, w * 3, dst.baseAddress, toHeight, t.first, t.count, t.weights,
                                        t.maxTaps, Int32(t.precision))
            }
        }
        data = out
    }
    return data
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
