import Prune
import Tensor

/// A rectangle in the pixels of the image the encoder was given (it may reach past the image's
/// edges where a family pads, as LLaVA-NeXT's resize-and-pad does).
public struct PixelRect: Sendable, Hashable, CustomStringConvertible {
    public var x: Int
    public var y: Int
    public var width: Int
    public var height: Int

    public init(x: Int, y: Int, width: Int, height: Int) {
        self.x = x
        self.y = y
        self.width = width
        self.height = height
    }

    /// "WxH+X+Y", as X11 geometry and ImageMagick write it.
    public var description: String { "\(width)x\(height)+\(x)+\(y)" }
}

/// Where a view sits in its frame.
public enum ViewPlace: Sendable, Hashable, CustomStringConvertible {
    /// The whole frame: the one view of SmolVLM2, Qwen2.5-VL and LLaVA-1.5.
    case frame
    /// AnyRes's base image: the whole frame at the encoder's square.
    case base
    /// An AnyRes crop: its row and column in the crop grid and the pixels it covers.
    case crop(row: Int, col: Int, rect: PixelRect)

    /// "frame", "base" or "crop r,c WxH+X+Y" (`encode` metadata, `stats`).
    public var description: String {
        switch self {
        case .frame: return "frame"
        case .base: return "base"
        case let .crop(row, col, rect): return "crop \(row),\(col) \(rect)"
        }
    }
}

/// One grid the encoder produced for a frame: its tokens as they reach the language model, and
/// the attention scores HiPrune reads. Each view is pruned on its own grid.
public struct EncodedView: Sendable {
    /// The tokens as they reach the language model (after pixel shuffle / merging / pooling), raster order.
    public var grid: TokenGrid
    /// [grid.count, text hidden size]: the connector's output, one row per token.
    public var features: Matrix
    /// 1-based encoder layer → one score per grid token (HiPrune's attention received, pooled by
    /// mean over each merged block); only the layers asked for.
    public var scores: [Int: [Float]]
    public var place: ViewPlace
    /// Rows the language model gets ahead of the view's kept tokens, outside the grid and never
    /// pruned: LLaVA-1.5's CLS row with vision_feature_select_strategy "full"; nil for every other view.
    public var leading: Matrix?

    public init(grid: TokenGrid, features: Matrix, scores: [Int: [Float]], place: ViewPlace = .frame, leading: Matrix? = nil) {
        self.grid = grid
        self.features = features
        self.scores = scores
        self.place = place
        self.leading = leading
    }
}

/// One encoder step (a frame, or Qwen2.5-VL's temporal patch) after the encoder and connector:
/// one view for most families, a base image and its crops for AnyRes.
public struct EncodedFrame: Sendable {
    public var views: [EncodedView]

    public init(views: [EncodedView]) {
        self.views = views
    }

    /// A single view covering the whole frame.
    public init(grid: TokenGrid, features: Matrix, scores: [Int: [Float]]) {
        views = [EncodedView(grid: grid, features: features, scores: scores, place: .frame)]
    }

    /// Tokens of every view.
    public var tokenCount: Int { views.reduce(0) { $0 + $1.grid.count } }
}
