import Prune
import Vision

/// How `visualize` paints a frame: each kept token's cell tinted by its role, pruned cells darkened.
///
/// Blends are integer arithmetic on 8-bit values, so a pixel's result is exact and testable:
/// a kept pixel becomes `(source · (256 − tintWeight) + tint · tintWeight + 128) >> 8`, a pruned
/// one `(source · prunedWeight + 128) >> 8`, a grid-line pixel `(value · (256 − lineWeight) + 255 · lineWeight + 128) >> 8`
/// after its cell's blend.
public struct OverlayStyle: Sendable, Hashable {
    public struct Color: Sendable, Hashable {
        public var r: UInt8, g: UInt8, b: UInt8
        public init(r: UInt8, g: UInt8, b: UInt8) { self.r = r; self.g = g; self.b = b }
    }

    /// Out of 256: how far a kept cell moves toward its role's colour (the rest keeps the frame's structure).
    public var tintWeight: Int
    /// Out of 256: what a pruned cell keeps of its brightness.
    public var prunedWeight: Int
    /// Out of 256, toward white, on the first pixel row and column of every cell; 0: no grid lines.
    public var lineWeight: Int

    public init(tintWeight: Int = 112, prunedWeight: Int = 80, gridLines: Bool = false) {
        self.tintWeight = min(256, max(0, tintWeight))
        self.prunedWeight = min(256, max(0, prunedWeight))
        lineWeight = gridLines ? 96 : 0
    }

    public static func color(of role: TokenRole) -> Color {
        switch role {
        case .anchor: return Color(r: 255, g: 220, b: 0)      // yellow
        case .buffer: return Color(r: 255, g: 40, b: 40)      // red
        case .register: return Color(r: 0, g: 230, b: 255)    // cyan
        case .prompt, .kept: return Color(r: 40, g: 255, b: 80)  // green
        }
    }

    /// One line for stderr: which colour means what.
    public static let legend = "legend: anchor yellow, buffer red, register cyan, prompt/kept green, pruned darkened"
}

public enum Overlay {
    /// The frame with its token grid laid over the whole picture and each cell painted by the
    /// selection. The grid covers the whole frame uniformly because the encoder saw the whole
    /// frame stretched to its input (SmolVLM resizes every frame to its square ignoring the aspect
    /// ratio; Qwen2.5-VL resizes it whole to multiples of 28), so token (r, c) came from pixels
    /// `[c·W/cols, (c+1)·W/cols) × [r·H/rows, (r+1)·H/rows)` of the frame at any size.
    /// - Parameters:
    ///   - rgb: packed RGB24, row stride `width · 3`.
    /// - Throws: `PipelineError.invalidOption` when the bytes do not make the picture or the grid
    ///   does not fit in it (a cell must be at least one pixel).
    ///   - region: where the grid lies (a crop's rectangle; nil: the whole frame). Pixels outside
    ///     it are left as they are; a region reaching past the frame (padding) is clipped.
    public static func draw(rgb: [UInt8], width: Int, height: Int, selection: Selection,
                            style: OverlayStyle = OverlayStyle(), region: PixelRect? = nil) throws(PipelineError) -> [UInt8] {
        let grid = selection.grid
        guard width > 0, height > 0, rgb.count == width * height * 3 else {
            throw .invalidOption(flag: "frame", cause: "\(rgb.count) bytes do not make a \(width)x\(height) RGB24 picture")
        }
        let area = region ?? PixelRect(x: 0, y: 0, width: width, height: height)
        guard grid.rows > 0, grid.cols > 0, grid.rows <= area.height, grid.cols <= area.width else {
            throw .invalidOption(flag: "frame", cause: "a \(grid) token grid does not fit a \(area.width)x\(area.height) picture")
        }
        let xs = max(0, area.x)..<min(width, area.x + area.width), ys = max(0, area.y)..<min(height, area.y + area.height)
        guard !xs.isEmpty, !ys.isEmpty else { return rgb }
        var roleByToken = [TokenRole?](repeating: nil, count: grid.count)
        for (index, role) in zip(selection.indices, selection.roles) { roleByToken[index] = role }

        // Column of every pixel x of the region, and whether x starts a cell; the same for rows.
        let cellOfX = (0..<width).map { x in (x - area.x) * grid.cols / area.width }
        let cellOfY = (0..<height).map { y in (y - area.y) * grid.rows / area.height }
        let startsCellX = (0..<width).map { $0 > area.x && cellOfX[$0] != cellOfX[$0 - 1] }
        let tint = style.tintWeight, keep = 256 - style.tintWeight, dim = style.prunedWeight
        let line = style.lineWeight

        var out = rgb
        out.withUnsafeMutableBufferPointer { pixels in
            for y in ys {
                let row = cellOfY[y]
                let lineRow = line > 0 && y > area.y && cellOfY[y - 1] != row
                for x in xs {
                    let p = (y * width + x) * 3
                    var r = Int(pixels[p]), g = Int(pixels[p + 1]), b = Int(pixels[p + 2])
                    if let role = roleByToken[grid.index(row: row, col: cellOfX[x])] {
                        let c = OverlayStyle.color(of: role)
                        r = (r * keep + Int(c.r) * tint + 128) >> 8
                        g = (g * keep + Int(c.g) * tint + 128) >> 8
                        b = (b * keep + Int(c.b) * tint + 128) >> 8
                    } else {
                        r = (r * dim + 128) >> 8
                        g = (g * dim + 128) >> 8
                        b = (b * dim + 128) >> 8
                    }
                    if line > 0 && (lineRow || startsCellX[x]) {
                        r = (r * (256 - line) + 255 * line + 128) >> 8
                        g = (g * (256 - line) + 255 * line + 128) >> 8
                        b = (b * (256 - line) + 255 * line + 128) >> 8
                    }
                    pixels[p] = UInt8(min(255, r))
                    pixels[p + 1] = UInt8(min(255, g))
                    pixels[p + 2] = UInt8(min(255, b))
                }
            }
        }
        return out
    }
}

extension Overlay {
    /// A frame's views drawn each over its own rectangle. A frame of one view is the frame with its
    /// grid over the whole picture (`draw`). An AnyRes frame is two panels side by side, each the
    /// frame's size: on the left the base view over the whole frame, on the right every crop over
    /// the pixels it covers. Returns the picture and its width (its height is the frame's).
    public static func draw(rgb: [UInt8], width: Int, height: Int, views: [(place: ViewPlace, selection: Selection)],
                            style: OverlayStyle = OverlayStyle()) throws(PipelineError) -> (rgb: [UInt8], width: Int) {
        guard views.count > 1 || views.first.map({ $0.place != .frame }) == true else {
            guard let view = views.first else { return (rgb, width) }
            return (try draw(rgb: rgb, width: width, height: height, selection: view.selection, style: style), width)
        }
        var base = rgb, crops = rgb
        for view in views {
            switch view.place {
            case .frame, .base:
                base = try draw(rgb: base, width: width, height: height, selection: view.selection, style: style)
            case .crop(_, _, let rect):
                crops = try draw(rgb: crops, width: width, height: height, selection: view.selection, style: style, region: rect)
            }
        }
        var out = [UInt8](repeating: 0, count: width * 2 * height * 3)
        let stride = width * 3
        for y in 0..<height {
            out.replaceSubrange((y * 2 * stride)..<(y * 2 * stride + stride), with: base[(y * stride)..<((y + 1) * stride)])
            out.replaceSubrange((y * 2 * stride + stride)..<((y + 1) * 2 * stride), with: crops[(y * stride)..<((y + 1) * stride)])
        }
        return (out, width * 2)
    }
}
