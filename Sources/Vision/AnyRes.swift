// LLaVA-NeXT's AnyRes, as transformers' LlavaNextImageProcessor and LlavaNextModel do it, in
// three parts: the geometry of one frame (AnyResLayout), the encoder's views (LlavaNextVisionModel)
// and the packing of pruned views into the rows the language model receives (AnyResPacking).
//
//     frame W × H ──select_best_resolution──▶ best (w_b, h_b) among image_grid_pinpoints
//       ├─ resized to (side, side), aspect ignored ─────────────▶ base view: grid × grid patches
//       └─ resized to fit inside best (ceil), centred on a zero canvas (w_b × h_b)
//             └─ cut into (h_b / side) × (w_b / side) crops of side × side, raster order
//
// The crops' patch grids join into one (rows · grid) × (cols · grid) map; unpad_image removes the
// rows (or columns) that cover the padding, symmetrically. A crop view is the part of its crop
// inside that unpadded map (a crop entirely in the padding yields no view), so HiPrune never
// spends budget on padding. Packed (transformers' pack_image_features): the base's tokens, then
// the unpadded map row by row, each row followed by `image_newline`. Pruned: each view keeps its
// own tokens; a row of the map keeps its newline when it keeps any token.
import Foundation
import Prune
import Tensor

public struct AnyResLayout: Sendable, Equatable {
    public struct Crop: Sendable, Equatable {
        /// Position in the crop grid.
        public var row: Int, col: Int
        /// Patch rows and columns of this crop inside the unpadded map (local to the crop's grid).
        public var rows: Range<Int>, cols: Range<Int>
        /// The crop's unpadded part in the frame's own pixels (clamped to the frame).
        public var rect: PixelRect
    }

    public var imageWidth: Int, imageHeight: Int
    /// The chosen pinpoint.
    public var bestWidth: Int, bestHeight: Int
    /// The frame resized to fit inside the pinpoint, and its offset on the zero canvas.
    public var resizedWidth: Int, resizedHeight: Int
    public var padLeft: Int, padTop: Int
    /// Crop side in pixels (the tower's image_size) and patches per crop side.
    public var side: Int, grid: Int
    public var cropRows: Int, cropCols: Int
    /// Rows and columns of the joined (cropRows · grid) × (cropCols · grid) map that unpad_image keeps.
    public var unpaddedRows: Range<Int>, unpaddedCols: Range<Int>
    /// Crops with a part inside the unpadded map, raster order.
    public var crops: [Crop]

    /// transformers' select_best_resolution: the pinpoint (height, width) that keeps the most of
    /// the frame's pixels, then wastes the least; the first such in the list.
    public static func bestResolution(width: Int, height: Int, pinpoints: [[Int]]) -> (height: Int, width: Int)? {
        var best: (Int, Int)? = nil
        var maxEffective = 0, minWasted = Int.max
        for p in pinpoints where p.count == 2 {
            let (h, w) = (p[0], p[1])
            let scale = min(Double(w) / Double(width), Double(h) / Double(height))
            let downW = Int(Double(width) * scale), downH = Int(Double(height) * scale)
            let effective = min(downW * downH, width * height)
            let wasted = w * h - effective
            if effective > maxEffective || (effective == maxEffective && wasted < minWasted) {
                maxEffective = effective
                minWasted = wasted
                best = (h, w)
            }
        }
        return best
    }

    public init(imageWidth w: Int, imageHeight h: Int, pinpoints: [[Int]], side: Int, grid: Int) throws(VisionError) {
        guard w > 0, h > 0, side > 0, grid > 0 else { throw .invalidFrame("\(w)x\(h) frame for AnyRes crops of \(side)") }
        guard let best = Self.bestResolution(width: w, height: h, pinpoints: pinpoints) else {
            throw .invalidConfiguration(file: "config.json", field: "image_grid_pinpoints", cause: "empty")
        }
        guard best.height % side == 0, best.width % side == 0 else {
            throw .invalidConfiguration(file: "config.json", field: "image_grid_pinpoints",
                                        cause: "\(best.height)x\(best.width) is not a multiple of the crop side \(side)")
        }
        imageWidth = w
        imageHeight = h
        bestWidth = best.width
        bestHeight = best.height
        // get_patch_output_size: the limiting side fills the pinpoint, the other is ceil'd.
        let scaleW = Double(best.width) / Double(w), scaleH = Double(best.height) / Double(h)
        if scaleW < scaleH {
            resizedWidth = best.width
            resizedHeight = min(Int((Double(h) * scaleW).rounded(.up)), best.height)
        } else {
            resizedHeight = best.height
            resizedWidth = min(Int((Double(w) * scaleH).rounded(.up)), best.width)
        }
        padLeft = (best.width - resizedWidth) / 2
        padTop = (best.height - resizedHeight) / 2
        self.side = side
        self.grid = grid
        cropRows = best.height / side
        cropCols = best.width / side
        // unpad_image on the joined map, with Python's int(round(x, 7)).
        let mapH = cropRows * grid, mapW = cropCols * grid
        func round7(_ x: Double) -> Int { Int(((x * 1e7).rounded(.toNearestOrEven)) / 1e7) }
        if Double(w) / Double(h) > Double(mapW) / Double(mapH) {
            let kept = round7(Double(h) * (Double(mapW) / Double(w)))
            let pad = (mapH - kept) / 2
            unpaddedRows = pad..<(mapH - pad)
            unpaddedCols = 0..<mapW
        } else {
            let kept = round7(Double(w) * (Double(mapH) / Double(h)))
            let pad = (mapW - kept) / 2
            unpaddedRows = 0..<mapH
            unpaddedCols = pad..<(mapW - pad)
        }
        var crops: [Crop] = []
        let patch = Double(side) / Double(grid)
        let (left, top, fittedW, fittedH) = (Double(padLeft), Double(padTop), Double(resizedWidth), Double(resizedHeight))
        for r in 0..<cropRows {
            for c in 0..<cropCols {
                let rows = max(unpaddedRows.lowerBound - r * grid, 0)..<min(unpaddedRows.upperBound - r * grid, grid)
                let cols = max(unpaddedCols.lowerBound - c * grid, 0)..<min(unpaddedCols.upperBound - c * grid, grid)
                guard !rows.isEmpty, !cols.isEmpty else { continue }
                // Canvas pixels of the part → the frame's pixels (the resize's scale), clamped to the frame.
                func frameX(_ px: Double) -> Int { max(0, min(w, Int(((px - left) * Double(w) / fittedW).rounded()))) }
                func frameY(_ py: Double) -> Int { max(0, min(h, Int(((py - top) * Double(h) / fittedH).rounded()))) }
                let x0 = frameX(Double(c * side) + Double(cols.lowerBound) * patch)
                let x1 = frameX(Double(c * side) + Double(cols.upperBound) * patch)
                let y0 = frameY(Double(r * side) + Double(rows.lowerBound) * patch)
                let y1 = frameY(Double(r * side) + Double(rows.upperBound) * patch)
                crops.append(Crop(row: r, col: c, rows: rows, cols: cols, rect: PixelRect(x: x0, y: y0, width: x1 - x0, height: y1 - y0)))
            }
        }
        self.crops = crops
    }
}

/// The rows LLaVA-NeXT's language model receives for one frame, from its pruned views.
public enum AnyResPacking {
    /// One pruned view: where it sits (nil for the base image), its grid, kept indices (ascending,
    /// raster order on `grid`) and their features (one row per kept index).
    public struct View: Sendable {
        public var crop: (row: Int, col: Int)?
        public var grid: TokenGrid
        public var kept: [Int]
        public var features: Matrix

        public init(crop: (row: Int, col: Int)?, grid: TokenGrid, kept: [Int], features: Matrix) {
            self.crop = crop
            self.grid = grid
            self.kept = kept
            self.features = features
        }
    }

    /// Base view's kept rows, then the crop map row by row (crops of a crop-row left to right, each
    /// contributing its kept tokens of that patch row), a newline after every row that kept a token.
    public static func pack(_ views: [View], newline: [Float]) throws(VisionError) -> Matrix {
        guard let width = views.first?.features.cols else { return Matrix(rows: 0, cols: newline.count) }
        guard newline.count == width else {
            throw .computation("image_newline of \(newline.count) for features of width \(width)")
        }
        var storage: [Float] = []
        for (i, v) in views.enumerated() {
            guard v.features.rows == v.kept.count, v.features.cols == width, v.kept.allSatisfy({ (0..<v.grid.count).contains($0) }) else {
                throw .computation("view \(i): \(v.features.rows)x\(v.features.cols) features for \(v.kept.count) kept of \(v.grid)")
            }
        }
        for v in views where v.crop == nil { storage += v.features.storage }
        let crops = views.filter { $0.crop != nil }.sorted { ($0.crop!.row, $0.crop!.col) < ($1.crop!.row, $1.crop!.col) }
        var start = 0
        while start < crops.count {
            let row = crops[start].crop!.row
            var end = start
            while end < crops.count, crops[end].crop!.row == row { end += 1 }
            let band = crops[start..<end]
            guard band.allSatisfy({ $0.grid.rows == band.first!.grid.rows }) else {
                throw .computation("crops of row \(row) differ in height")
            }
            // Per crop, a cursor into its ascending kept list.
            var cursor = [Int](repeating: 0, count: band.count)
            for localRow in 0..<band.first!.grid.rows {
                var any = false
                for (k, v) in band.enumerated() {
                    let limit = (localRow + 1) * v.grid.cols
                    while cursor[k] < v.kept.count, v.kept[cursor[k]] < limit {
                        storage += v.features.row(cursor[k])
                        cursor[k] += 1
                        any = true
                    }
                }
                if any { storage += newline }
            }
            start = end
        }
        do { return try Matrix(rows: storage.count / width, cols: width, storage: storage) } catch { throw .computation("\(error)") }
    }
}
