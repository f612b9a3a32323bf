/// The tokens of one frame as they reach the language model: `rows × cols`, raster order.
///
/// Defined once; the encoder produces it (after patch merging / pixel shuffle), the
/// selection policies read neighbours from it, the prompt builders take positions from it.
public struct TokenGrid: Sendable, Hashable, CustomStringConvertible {
    public let rows: Int
    public let cols: Int

    public init(rows: Int, cols: Int) {
        self.rows = rows
        self.cols = cols
    }

    public var count: Int { rows * cols }

    /// Raster index of (row, col).
    @inlinable public func index(row: Int, col: Int) -> Int { row * cols + col }

    /// (row, col) of a raster index.
    @inlinable public func position(of index: Int) -> (row: Int, col: Int) {
        (index / cols, index % cols)
    }

    /// "ROWSxCOLS", the form used in statistics and in `encode` metadata.
    public var description: String { "\(rows)x\(cols)" }
}
