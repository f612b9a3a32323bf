import Prune
import Tensor

/// One frame after the vision encoder and connector, ready for pruning and the language model.
public struct EncodedFrame: Sendable {
    /// The tokens as they reach the language model (after pixel shuffle), raster order.
    public var grid: TokenGrid
    /// [grid.count, text hidden size]: the connector's output, one row per token.
    public var features: Matrix
    /// 1-based encoder layer → one score per grid token (HiPrune's attention received, pooled by
    /// mean over each merged block); only the layers asked for.
    public var scores: [Int: [Float]]

    public init(grid: TokenGrid, features: Matrix, scores: [Int: [Float]]) {
        self.grid = grid
        self.features = features
        self.scores = scores
    }
}
