import Prune
import Tensor

/// SmolVLM's pixel shuffle as an index map. The encoder's patches form a side × side grid; with
/// scale s, token (R, C) of the (side/s) × (side/s) output grid gathers the s × s block of patches
/// rows R·s ..< R·s+s, cols C·s ..< C·s+s, concatenated row by row:
///
///     patches (side = 4, s = 2)        tokens (2 × 2), features = [p(0) p(1) p(4) p(5)] for token 0
///      0  1 |  2  3                      t0 = [ 0  1  4  5 ]   t1 = [ 2  3  6  7 ]
///      4  5 |  6  7                      t2 = [ 8  9 12 13 ]   t3 = [10 11 14 15 ]
///     ------+------
///      8  9 | 10 11                    chunk k = m·s + n of token (R, C) is patch (R·s + m, C·s + n)
///     12 13 | 14 15
///
/// (transformers writes this as view / permute / reshape; the map above is what those produce.)
/// The same map pools patch scores onto tokens: a token's score is the mean of its block's.
public struct PixelShuffle: Sendable, Equatable {
    public let side: Int
    public let scale: Int

    public init(side: Int, scale: Int) {
        self.side = side
        self.scale = scale
    }

    public var grid: TokenGrid { TokenGrid(rows: side / scale, cols: side / scale) }

    /// The patch (raster index on the side × side grid) behind chunk `chunk` of token `token`.
    @inlinable public func patch(token: Int, chunk: Int) -> Int {
        let tokenCols = side / scale
        let r = token / tokenCols, c = token % tokenCols
        let m = chunk / scale, n = chunk % scale
        return (r * scale + m) * side + c * scale + n
    }

    /// [side², width] → [tokens, width · scale²].
    public func shuffle(_ patches: Matrix) throws(VisionError) -> Matrix {
        guard patches.rows == side * side, scale > 0, side % scale == 0 else {
            throw .computation("pixel shuffle of \(patches.rows) patches on a \(side)x\(side) grid by \(scale)")
        }
        let width = patches.cols, chunks = scale * scale, tokens = grid.count
        var out = Matrix(rows: tokens, cols: width * chunks)
        patches.storage.withUnsafeBufferPointer { src in
            out.storage.withUnsafeMutableBufferPointer { dst in
                for t in 0..<tokens {
                    for k in 0..<chunks {
                        (dst.baseAddress! + (t * chunks + k) * width)
                            .update(from: src.baseAddress! + patch(token: t, chunk: k) * width, count: width)
                    }
                }
            }
        }
        return out
    }

    /// Per-patch scores → per-token scores, mean over each block.
    public func pool(_ scores: [Float]) throws(VisionError) -> [Float] {
        guard scores.count == side * side else {
            throw .computation("pooling \(scores.count) scores on a \(side)x\(side) grid")
        }
        let chunks = scale * scale
        return (0..<grid.count).map { t in
            var total: Float = 0
            for k in 0..<chunks { total += scores[patch(token: t, chunk: k)] }
            return total / Float(chunks)
        }
    }
}
