// LLaVA-NeXT's vision side (`llava_next`): LLaVA-1.5's CLIP tower and projector run on the AnyRes
// base image and every crop (AnyRes.swift); each is a view pruned on its own grid.
import Foundation
import Prune
import Tensor

public struct LlavaNextVisionModel: Sendable {
    /// The tower, projector and CLIP preprocessing configuration (shared with LLaVA-1.5).
    public let llava: LlavaVisionModel

    public var configuration: LlavaConfiguration { llava.configuration }

    public init(_ llava: LlavaVisionModel) throws(VisionError) {
        guard llava.configuration.visionFeatureSelectStrategy == "default" else {
            throw .invalidConfiguration(file: "config.json", field: "vision_feature_select_strategy",
                                        cause: "'full' keeps the CLS row, which the crop grid has no place for (transformers' pack_image_features cannot lay out 577 rows either); use 'default'")
        }
        self.llava = llava
    }

    public static func load(directory: String, precision: EncoderPrecision = .f32) throws(VisionError) -> LlavaNextVisionModel {
        try LlavaNextVisionModel(LlavaVisionModel.load(directory: directory, precision: precision))
    }

    /// The AnyRes geometry of a frame of this size.
    public func layout(width: Int, height: Int) throws(VisionError) -> AnyResLayout {
        let v = llava.vision
        return try AnyResLayout(imageWidth: width, imageHeight: height, pinpoints: configuration.imageGridPinpoints,
                                side: v.imageSize, grid: v.gridSide)
    }

    /// One view of a frame: the base image (crop nil) or the unpadded part of a crop.
    public struct View: Sendable {
        public var crop: AnyResLayout.Crop?
        public var grid: TokenGrid
        /// [grid.count, text hidden], raster order on `grid`.
        public var features: Matrix
        /// 1-based layer → one score per grid token (CLS column dropped, sliced like the features).
        public var scores: [Int: [Float]]
    }

    /// Preprocesses and encodes the base image and every crop with a part inside the unpadded map.
    public func encodeViews(width: Int, height: Int, rgb: [UInt8], scoreLayers: Set<Int>) throws(VisionError) -> [View] {
        let (layout, pixels) = try pixelValues(width: width, height: height, rgb: rgb)
        return try encodeViews(layout: layout, pixelValues: pixels, scoreLayers: scoreLayers)
    }

    /// The frame's layout and the tower inputs of its views: the base image, then every crop of
    /// `layout.crops` (channel-first, side × side each).
    public func pixelValues(width: Int, height: Int, rgb: [UInt8]) throws(VisionError) -> (layout: AnyResLayout, views: [[Float]]) {
        guard width > 0, height > 0, rgb.count == width * height * 3 else {
            throw .invalidFrame("\(rgb.count) bytes for a \(width)x\(height) RGB24 frame (expected \(max(0, width * height * 3)))")
        }
        let layout = try self.layout(width: width, height: height)
        let pre = llava.preprocessor.configuration, side = layout.side
        func resized(_ w: Int, _ h: Int) -> [Float] {
            let bytes = w == width && h == height ? rgb
                : resizeRGB(rgb, width: width, height: height, toWidth: w, toHeight: h, filter: pre.filter)
            return bytes.map { Float($0) }
        }
        // The base: the whole frame squeezed to side × side.
        var views = [pre.normalization.channelFirst(resized(side, side), width: side, height: side)]
        // The canvas: the fitted frame centred on zeros (black before normalisation, as tvF.pad).
        let fitted = resized(layout.resizedWidth, layout.resizedHeight)
        var canvas = [Float](repeating: 0, count: layout.bestWidth * layout.bestHeight * 3)
        for y in 0..<layout.resizedHeight {
            let src = y * layout.resizedWidth * 3, dst = ((layout.padTop + y) * layout.bestWidth + layout.padLeft) * 3
            canvas.replaceSubrange(dst..<(dst + layout.resizedWidth * 3), with: fitted[src..<(src + layout.resizedWidth * 3)])
        }
        for crop in layout.crops {
            views.append(pre.normalization.channelFirst(canvas, width: layout.bestWidth, height: layout.bestHeight,
                                                        crop: (crop.col * side, crop.row * side, side, side)))
        }
        return (layout, views)
    }

    /// Runs the tower and projector on each view's pixels and keeps each crop's unpadded part.
    public func encodeViews(layout: AnyResLayout, pixelValues: [[Float]], scoreLayers: Set<Int>) throws(VisionError) -> [View] {
        try llava.validate(layers: scoreLayers)
        guard pixelValues.count == layout.crops.count + 1 else {
            throw .computation("\(pixelValues.count) views for a base and \(layout.crops.count) crops")
        }
        let grid = layout.grid
        let base = try llava.features(pixelValues: pixelValues[0], scoreLayers: scoreLayers)
        var views = [View(crop: nil, grid: TokenGrid(rows: grid, cols: grid), features: base.features, scores: base.scores)]
        for (crop, pixels) in zip(layout.crops, pixelValues.dropFirst()) {
            let (features, scores) = try llava.features(pixelValues: pixels, scoreLayers: scoreLayers)
            // The unpadded part: patch (r, c) of the crop is row r · grid + c.
            let indices = crop.rows.flatMap { r in crop.cols.map { r * grid + $0 } }
            var part = Matrix(rows: indices.count, cols: features.cols)
            for (i, index) in indices.enumerated() {
                part.storage.replaceSubrange((i * part.cols)..<((i + 1) * part.cols), with: features.row(index))
            }
            views.append(View(crop: crop, grid: TokenGrid(rows: crop.rows.count, cols: crop.cols.count), features: part,
                              scores: scores.mapValues { s in indices.map { s[$0] } }))
        }
        return views
    }
}

extension LlavaNextVisionModel: FrameEncoder {
    public var family: String { configuration.modelType }
    public var layerCount: Int { llava.layerCount }
    public var defaultObjectLayer: Int { llava.defaultObjectLayer }
    public var defaultDeepLayer: Int { llava.defaultDeepLayer }
    public var framesPerStep: Int { 1 }
    public var featureWidth: Int { llava.featureWidth }
    /// A 16:9 frame: the base and the 2 × 2 crops of 672 × 672 (five tower passes).
    public var flopsPerStep: Double { 5 * llava.flopsPerStep }

    /// nil, on purpose: the frame as decoded. LlavaNextImageProcessor resizes the ORIGINAL image twice,
    /// to two sizes — the base view to side × side (aspect ignored) and the crops' image to fit inside
    /// the best pinpoint (aspect kept, then padded) — so no single decode size serves both with one
    /// resize. Scaling in the decoder to either would resample the other view twice, which moves the
    /// features off transformers' (a level's difference in the resized pixels moves them ~1 %); the best
    /// pinpoint itself is the padded canvas, not a frame size (scaling to it would distort the aspect).
    public func inputSize(sourceWidth: Int, sourceHeight: Int) -> (width: Int, height: Int)? { nil }

    /// The base view (`.base`) then every crop's unpadded part (`.crop`, its rectangle in the frame).
    public func encode(_ frames: [RGBImage], scoreLayers: Set<Int>) throws(VisionError) -> EncodedFrame {
        guard let frame = frames.first else {
            throw .invalidConfiguration(file: "frames", field: "count", cause: "no frame to encode")
        }
        let views = try encodeViews(width: frame.width, height: frame.height, rgb: frame.rgb, scoreLayers: scoreLayers)
        return EncodedFrame(views: views.map { v in
            EncodedView(grid: v.grid, features: v.features, scores: v.scores,
                        place: v.crop.map { .crop(row: $0.row, col: $0.col, rect: $0.rect) } ?? .base)
        })
    }
}
