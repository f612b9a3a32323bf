/// Picks the object layer `l` of an encoder from its own attention on a few frames (beyond the
/// paper, which reads it off the same curve by eye).
///
/// Dispersion of a layer on one frame: the mean pairwise Euclidean grid distance (in token
/// units, between (row, col) positions) among its top-10 % tokens by score — `round(0.1·N)` half
/// to even, at least 2, at most N; 0 when N < 2. Ties rank the lower index first. The curve
/// averages that over frames.
///
/// Suggested layer: among the first ⌈2L/3⌉ of the L measured layers (in layer order), the one of
/// minimum dispersion, ties → the lower layer. The object-centric middle is the trough; the
/// deep global phase (high and flat) is excluded by the 2/3 window.
public struct ObjectLayerCalibration: Sendable, Hashable {
    /// One frame's per-layer scores, keyed by 1-based layer number, each `grid.count` long.
    public struct Frame: Sendable, Hashable {
        public var grid: TokenGrid
        public var scores: [Int: [Float]]
        public init(grid: TokenGrid, scores: [Int: [Float]]) {
            self.grid = grid
            self.scores = scores
        }
    }

    /// Measured layers, ascending (1-based).
    public let layers: [Int]
    /// Mean dispersion per layer, aligned with `layers`.
    public let dispersion: [Double]
    public let suggestedObjectLayer: Int

    /// Every frame must have scores for the same layers.
    public init(frames: [Frame]) throws(PruneError) {
        guard let first = frames.first, !first.scores.isEmpty else { throw .noCalibrationFrames }
        let layers = first.scores.keys.sorted()
        var total = [Double](repeating: 0, count: layers.count)
        for (f, frame) in frames.enumerated() {
            try Validate.grid(frame.grid)
            if let extra = frame.scores.keys.sorted().first(where: { first.scores[$0] == nil }) {
                throw .missingLayer(frame: 0, layer: extra)
            }
            for (i, layer) in layers.enumerated() {
                guard let scores = frame.scores[layer] else { throw .missingLayer(frame: f, layer: layer) }
                try Validate.values(scores, field: "layer \(layer) scores of calibration frame \(f)", count: frame.grid.count)
                total[i] += Self.dispersion(scores: scores, grid: frame.grid)
            }
        }
        self.layers = layers
        self.dispersion = total.map { $0 / Double(frames.count) }
        let window = (2 * layers.count + 2) / 3
        var best = 0
        for i in 1..<max(window, 1) where dispersion[i] < dispersion[best] { best = i }
        self.suggestedObjectLayer = layers[best]
    }

    /// Dispersion of one layer on one frame (see the type's documentation).
    public static func dispersion(scores: [Float], grid: TokenGrid) -> Double {
        let n = grid.count
        guard n >= 2, scores.count == n else { return 0 }
        let k = min(n, max(2, roundHalfEven(0.1 * Double(n))))
        var open = Array(0..<n)
        selectTop(k, of: &open, by: scores)
        let top = open.prefix(k).map { grid.position(of: $0) }
        var sum = 0.0
        for i in 0..<k {
            for j in (i + 1)..<k {
                let dr = Double(top[i].row - top[j].row), dc = Double(top[i].col - top[j].col)
                sum += (dr * dr + dc * dc).squareRoot()
            }
        }
        return sum / Double(k * (k - 1) / 2)
    }

    /// Rejects an object layer outside the encoder's `1...layerCount`.
    public static func validate(objectLayer: Int, layerCount: Int) throws(PruneError) {
        guard (1...max(layerCount, 1)).contains(objectLayer), layerCount >= 1 else {
            throw .objectLayerOutOfRange(layer: objectLayer, layerCount: layerCount)
        }
    }
}
