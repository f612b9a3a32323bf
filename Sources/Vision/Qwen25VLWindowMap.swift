import Prune

/// Qwen2.5-VL's window reordering as an index map. The encoder runs its blocks on merge groups
/// (2×2 patches, contiguous in its input) sorted window by window: windows are `window × window`
/// merged tokens (window_size 112 / patch 14 / merge 2 = 4), tiled from the top-left corner, the last
/// row and column of windows cut short by the grid's edge.
///
///     merged grid 3 × 5, window 2        window order (order[k] = raster index)
///      0  1 |  2  3 |  4                 window 0: 0 1 5 6     window 1: 2 3 7 8     window 2: 4 9
///      5  6 |  7  8 |  9                 window 3: 10 11       window 4: 12 13       window 5: 14
///     ------+-------+---
///     10 11 | 12 13 | 14                 order = [0 1 5 6 | 2 3 7 8 | 4 9 | 10 11 | 12 13 | 14]
///
/// Windowed blocks attend inside each window only; full-attention blocks attend over the whole
/// temporal patch (order does not matter to them, but the rows stay in window order throughout).
/// The map undoes itself for anything indexed by merged token: `raster[order[k]] = windowed[k]`
/// (features after the merger, pooled scores).
public struct Qwen25VLWindowMap: Sendable, Equatable {
    public let grid: TokenGrid
    public let window: Int
    /// order[k] = raster index of the k-th merged token in window order.
    public let order: [Int]
    /// Merged tokens per window, in window order (never 0).
    public let windowLengths: [Int]

    public init(grid: TokenGrid, window: Int) {
        self.grid = grid
        self.window = max(1, window)
        var order: [Int] = []
        var lengths: [Int] = []
        order.reserveCapacity(grid.count)
        let w = self.window
        var r0 = 0
        while r0 < grid.rows {
            var c0 = 0
            while c0 < grid.cols {
                var n = 0
                for r in r0..<min(r0 + w, grid.rows) {
                    for c in c0..<min(c0 + w, grid.cols) {
                        order.append(grid.index(row: r, col: c))
                        n += 1
                    }
                }
                lengths.append(n)
                c0 += w
            }
            r0 += w
        }
        self.order = order
        self.windowLengths = lengths
    }

    /// Per-merged-token values in window order → raster order.
    public func toRaster<T>(_ windowed: [T]) -> [T] {
        var out = windowed
        for (k, r) in order.enumerated() { out[r] = windowed[k] }
        return out
    }
}
