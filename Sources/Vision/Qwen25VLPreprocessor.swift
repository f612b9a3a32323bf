// Frames → patches for the Qwen2.5-VL encoder, as transformers' Qwen2VLVideoProcessor does it:
//
// 1. smart_resize: both sides become multiples of 28 (patch 14 × merge 2), the pixel count lands in
//    [min_pixels, max_pixels], the aspect ratio stays as close as it can. Each frame's grid follows it.
// 2. Resize (bicubic, antialiased) of the uint8 frame. The reference (torchvision on a CPU tensor)
//    runs PyTorch's uint8 kernel: a horizontal pass rounded to uint8, then a vertical pass, with the
//    PIL filter (a = −0.5, support widened by the scale when shrinking), with the same fixed-point
//    weights (ImageResampling.swift), so the bytes are the reference's.
// 3. Rescale and normalise with the CLIP mean/std (fused as the reference does: (x − mean/rf) / (std/rf)).
// 4. Two frames per temporal patch; an odd count repeats the last frame.
// 5. Patches in the encoder's order, merge blocks contiguous (layout below).
import Foundation
import Tensor

public struct Qwen25VLPreprocessor: Sendable {
    public let configuration: Qwen25VLPreprocessorConfiguration

    public init(configuration: Qwen25VLPreprocessorConfiguration = .init()) {
        self.configuration = configuration
    }

    /// The (height, width) a height × width frame is resized to (transformers' smart_resize).
    public func targetSize(height: Int, width: Int) throws(VisionError) -> (height: Int, width: Int) {
        try Self.smartResize(height: height, width: width, factor: configuration.factor,
                             minPixels: configuration.minPixels, maxPixels: configuration.maxPixels)
    }

    public static func smartResize(height: Int, width: Int, factor: Int, minPixels: Int, maxPixels: Int) throws(VisionError) -> (height: Int, width: Int) {
        guard height > 0, width > 0, factor > 0 else { throw .invalidFrame("\(width)x\(height) frame has no pixels") }
        guard Double(max(height, width)) / Double(min(height, width)) <= 200 else {
            throw .invalidFrame("\(width)x\(height) frame: aspect ratio above 200")
        }
        let f = Double(factor), h = Double(height), w = Double(width)
        // Python's round: half to even.
        var hBar = Int((h / f).rounded(.toNearestOrEven)) * factor
        var wBar = Int((w / f).rounded(.toNearestOrEven)) * factor
        if hBar * wBar > maxPixels {
            let beta = ((h * w) / Double(maxPixels)).squareRoot()
            hBar = max(factor, Int((h / beta / f).rounded(.down)) * factor)
            wBar = max(factor, Int((w / beta / f).rounded(.down)) * factor)
        } else if hBar * wBar < minPixels {
            let beta = (Double(minPixels) / (h * w)).squareRoot()
            hBar = Int((h * beta / f).rounded(.up)) * factor
            wBar = Int((w * beta / f).rounded(.up)) * factor
        }
        return (hBar, wBar)
    }

    /// Bicubic, antialiased resize of packed RGB24, as PyTorch's uint8 kernel (see the top of the file).
    public static func resize(rgb: [UInt8], width: Int, height: Int, toWidth: Int, toHeight: Int) throws(VisionError) -> [UInt8] {
        guard width > 0, height > 0, rgb.count == width * height * 3 else {
            throw .invalidFrame("\(rgb.count) bytes for a \(width)x\(height) RGB24 frame (expected \(max(0, width * height * 3)))")
        }
        guard toWidth > 0, toHeight > 0 else { throw .invalidFrame("resize to \(toWidth)x\(toHeight)") }
        return resizeRGB(rgb, width: width, height: height, toWidth: toWidth, toHeight: toHeight, filter: .bicubic)
    }

    /// One temporal patch of frames (already at the same size) → patches [h·w, channels·temporal·patch²],
    /// where h, w are the patch grid's sides. `frames` holds 1...temporal_patch_size packed RGB24 frames;
    /// a short patch repeats its last frame.
    ///
    /// Row order (merge blocks contiguous, as the encoder and its window map expect), for merge 2:
    ///
    ///     patch grid (h = 4, w = 6)           row of patch (y, x) = 4·(block) + 2·(y % 2) + (x % 2),
    ///      0  1 |  4  5 |  8  9               block = (y / 2) · (w / 2) + x / 2
    ///      2  3 |  6  7 | 10 11
    ///     ------+-------+------               a row's columns: [channel][frame][dy][dx] — the
    ///     12 13 | 16 17 | 20 21               flattened Conv3d kernel [3, 2, 14, 14]
    ///     14 15 | 18 19 | 22 23
    public func patches(frames: [[UInt8]], width: Int, height: Int) throws(VisionError) -> Matrix {
        let c = configuration
        let p = c.patchSize, m = c.mergeSize, tps = c.temporalPatchSize
        guard !frames.isEmpty, frames.count <= tps else {
            throw .invalidFrame("\(frames.count) frames for one temporal patch of \(tps)")
        }
        guard width % c.factor == 0, height % c.factor == 0, width > 0, height > 0 else {
            throw .invalidFrame("\(width)x\(height) is not a multiple of \(c.factor) on both sides")
        }
        for f in frames where f.count != width * height * 3 {
            throw .invalidFrame("\(f.count) bytes for a \(width)x\(height) RGB24 frame (expected \(width * height * 3))")
        }
        // transformers fuses rescale into normalisation: (x − mean/rf) / (std/rf), in Float32.
        var mean = [Float](repeating: 0, count: 3), std = [Float](repeating: 1, count: 3), factor: Float = 1
        switch (c.doRescale, c.doNormalize) {
        case (true, true):
            for ch in 0..<3 { mean[ch] = c.imageMean[ch] * (1 / c.rescaleFactor); std[ch] = c.imageStd[ch] * (1 / c.rescaleFactor) }
        case (false, true):
            mean = c.imageMean; std = c.imageStd
        case (true, false):
            factor = c.rescaleFactor
        case (false, false):
            break
        }
        let gh = height / p, gw = width / p
        let rowWidth = 3 * tps * p * p
        var out = Matrix(rows: gh * gw, cols: rowWidth)
        out.storage.withUnsafeMutableBufferPointer { dst in
            for y in 0..<gh {
                for x in 0..<gw {
                    let block = (y / m) * (gw / m) + x / m
                    let row = block * m * m + (y % m) * m + (x % m)
                    var o = row * rowWidth
                    for ch in 0..<3 {
                        for t in 0..<tps {
                            let frame = frames[min(t, frames.count - 1)]
                            for dy in 0..<p {
                                let base = ((y * p + dy) * width + x * p) * 3 + ch
                                for dx in 0..<p {
                                    dst[o] = (Float(frame[base + dx * 3]) * factor - mean[ch]) / std[ch]
                                    o += 1
                                }
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// Resizes every frame of a temporal patch to the smart_resize size of the first, then patches.
    /// Returns the patches and the patch grid (rows, cols).
    public func temporalPatch(frames: [(width: Int, height: Int, rgb: [UInt8])]) throws(VisionError) -> (patches: Matrix, rows: Int, cols: Int) {
        guard let first = frames.first else { throw .invalidFrame("no frames for a temporal patch") }
        let target = configuration.doResize ? try targetSize(height: first.height, width: first.width) : (first.height, first.width)
        var resized: [[UInt8]] = []
        for f in frames {
            guard f.rgb.count == f.width * f.height * 3, f.width > 0, f.height > 0 else {
                throw .invalidFrame("\(f.rgb.count) bytes for a \(f.width)x\(f.height) RGB24 frame (expected \(max(0, f.width * f.height * 3)))")
            }
            if f.width == target.1 && f.height == target.0 {
                resized.append(f.rgb)
            } else {
                resized.append(try Self.resize(rgb: f.rgb, width: f.width, height: f.height, toWidth: target.1, toHeight: target.0))
            }
        }
        let patches = try patches(frames: resized, width: target.1, height: target.0)
        return (patches, target.0 / configuration.patchSize, target.1 / configuration.patchSize)
    }
}

/// Qwen's video sampling (Qwen2VLVideoProcessor.sample_frames with fps): the indices of the frames
/// to decode, a count that is a multiple of the temporal patch size.
public enum Qwen25VLVideoSampling {
    public static func frameIndices(totalFrames: Int, videoFPS: Double, fps: Double = 2, minFrames: Int = 4,
                                    maxFrames: Int = 768, temporalPatchSize: Int = 2) throws(VisionError) -> [Int] {
        guard totalFrames > 0, videoFPS > 0, fps > 0, temporalPatchSize > 0 else {
            throw .invalidFrame("cannot sample \(totalFrames) frames at \(videoFPS) fps to \(fps) fps")
        }
        let cap = (min(maxFrames, totalFrames) / temporalPatchSize) * temporalPatchSize
        var count = Double(totalFrames) / videoFPS * fps
        count = min(max(count, Double(minFrames)), Double(cap), Double(totalFrames))
        let n = Int((count / Double(temporalPatchSize)).rounded(.down)) * temporalPatchSize
        guard n > 0 else {
            throw .invalidFrame("\(totalFrames) frames are fewer than one temporal patch of \(temporalPatchSize)")
        }
        // torch.arange(0, total, total / n) in float32, truncated to int.
        let step = Double(totalFrames) / Double(n)
        var out: [Int] = []
        var i = 0
        while Double(i) * step < Double(totalFrames) {
            out.append(Int(Float(Double(i) * step)))
            i += 1
        }
        return out
    }

    /// Seconds one temporal patch spans (second_per_grid_ts): temporal patch size / sampled fps, the
    /// sampled fps being the sampled count over the video's duration.
    public static func secondsPerTemporalPatch(sampledFrames: Int, totalFrames: Int, videoFPS: Double,
                                               temporalPatchSize: Int = 2) -> Double {
        guard totalFrames > 0, sampledFrames > 0, videoFPS > 0 else { return Double(temporalPatchSize) / 2 }
        let sampledFPS = Double(sampledFrames) / Double(totalFrames) * videoFPS
        return Double(temporalPatchSize) / sampledFPS
    }
}
