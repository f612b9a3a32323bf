/// Drops tokens that repeat the previous frame, before any budget is spent (beyond the paper).
///
/// For frame t > 0 of a clip, a token whose feature has cosine similarity ≥ `threshold` with the
/// token at the same grid position in the previous frame is not a candidate. The previous frame
/// means its **full** features, whatever was kept of it: the comparison is between what the camera
/// saw in consecutive frames, so it does not depend on the policy or budget used before. (A slow
/// drift can therefore stay dropped for a long time; lower the threshold if that matters.)
///
/// The first frame, and the first frame after a grid change, is never de-duplicated: a token
/// only has a counterpart on the same grid. Positions are preserved: the result is a mask over
/// the frame's own raster order, and the policies keep the original indices.
///
/// With a budget: N' is still computed from the frame's full token count, and the policies keep
/// `min(N', survivors)` tokens chosen among the survivors.
///
/// Memory: one previous frame (`N · width` floats).
public struct TemporalDeduplicator: Sendable {
    public let threshold: Float
    private var previous: (grid: TokenGrid, width: Int, features: [Float])?

    /// `threshold` in [-1, 1]; 1 drops only exact repeats (up to scale).
    public init(threshold: Float) throws(PruneError) {
        guard threshold.isFinite, threshold >= -1, threshold <= 1 else {
            throw .invalidParameter(name: "dedup threshold", value: Double(threshold), expected: "a cosine in [-1, 1]")
        }
        self.threshold = threshold
    }

    /// Forgets the previous frame (a new clip starts).
    public mutating func reset() { previous = nil }

    /// The candidate mask of this frame (true = may be kept), remembering its features for the next.
    /// - Parameter features: row-major `[grid.count, width]`.
    public mutating func candidates(features: [Float], width: Int, grid: TokenGrid) throws(PruneError) -> [Bool] {
        try Validate.grid(grid)
        guard width >= 1 else { throw .invalidParameter(name: "feature width", value: Double(width), expected: ">= 1") }
        try Validate.values(features, field: "token features", count: grid.count * width)
        defer { previous = (grid, width, features) }
        guard let previous, previous.grid == grid, previous.width == width else {
            return [Bool](repeating: true, count: grid.count)
        }
        return features.withUnsafeBufferPointer { current in
            previous.features.withUnsafeBufferPointer { before in
                (0..<grid.count).map { cosine(current, $0, before, $0, width: width) < threshold }
            }
        }
    }
}
