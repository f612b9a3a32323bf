/// Policies HiPrune is measured against. All keep exactly `min(N', candidates)` tokens with
/// role `.kept`, in raster order, and are deterministic.
public enum Baseline {
    /// Every token (or every candidate).
    public static func keepAll(grid: TokenGrid, candidates: [Bool]? = nil) throws(PruneError) -> Selection {
        try Validate.grid(grid)
        try Validate.mask(candidates, count: grid.count)
        return Selection(grid: grid, roleByToken: (0..<grid.count).map { (candidates?[$0] ?? true) ? .kept : nil })
    }

    /// A uniformly random subset; the same seed gives the same subset on every platform
    /// (SplitMix64 and a partial Fisher–Yates shuffle, no system generator).
    public static func random(seed: UInt64, grid: TokenGrid, budget: Budget,
                              candidates: [Bool]? = nil) throws(PruneError) -> Selection {
        var (open, keep) = try prepare(grid: grid, budget: budget, candidates: candidates)
        var generator = SplitMix64(seed: seed)
        for i in 0..<keep {
            open.swapAt(i, i + generator.next(below: open.count - i))
        }
        return mark(open.prefix(keep), grid: grid)
    }

    /// An evenly spread lattice: `r` rows and `c` columns spaced over the grid (r/c close to the
    /// grid's aspect), then exactly N' of its r·c points taken evenly in raster order.
    /// With candidates, the N' are taken evenly over the surviving candidates instead.
    public static func uniform(grid: TokenGrid, budget: Budget, candidates: [Bool]? = nil) throws(PruneError) -> Selection {
        let (open, keep) = try prepare(grid: grid, budget: budget, candidates: candidates)
        guard keep > 0 else { return mark([], grid: grid) }
        guard candidates == nil else { return mark(spread(keep, over: open.count).map { open[$0] }, grid: grid) }
        let n = grid.count
        // Rows from the grid's shape, columns to cover the budget, then rows tightened to the
        // fewest that still cover it (a 10×1 grid gets 5 rows for 5 tokens, not 7).
        let estimate = min(grid.rows, max(1, roundHalfEven(Double(grid.rows) * (Double(keep) / Double(n)).squareRoot())))
        let cols = min(grid.cols, (keep + estimate - 1) / estimate)
        let rows = (keep + cols - 1) / cols
        let latticeRows = spread(rows, over: grid.rows), latticeCols = spread(cols, over: grid.cols)
        let lattice = latticeRows.flatMap { r in latticeCols.map { c in grid.index(row: r, col: c) } }
        return mark(spread(keep, over: lattice.count).map { lattice[$0] }, grid: grid)
    }

    /// The N' tokens of highest deep-layer score (registers only).
    public static func topDeep(deepScores: [Float], grid: TokenGrid, budget: Budget,
                               candidates: [Bool]? = nil) throws(PruneError) -> Selection {
        try top(deepScores, field: "deep-layer scores", grid: grid, budget: budget, candidates: candidates)
    }

    /// The N' tokens of highest object-layer score (anchors only, no buffers).
    public static func topObject(objectScores: [Float], grid: TokenGrid, budget: Budget,
                                 candidates: [Bool]? = nil) throws(PruneError) -> Selection {
        try top(objectScores, field: "object-layer scores", grid: grid, budget: budget, candidates: candidates)
    }

    static func top(_ scores: [Float], field: String, grid: TokenGrid, budget: Budget,
                    candidates: [Bool]?) throws(PruneError) -> Selection {
        try Validate.grid(grid)
        try Validate.values(scores, field: field, count: grid.count)
        var (open, keep) = try prepare(grid: grid, budget: budget, candidates: candidates)
        selectTop(keep, of: &open, by: scores)
        return mark(open.prefix(keep), grid: grid)
    }

    /// Open tokens and the count to keep, after validation.
    static func prepare(grid: TokenGrid, budget: Budget, candidates: [Bool]?) throws(PruneError) -> ([Int], Int) {
        try Validate.grid(grid)
        try Validate.mask(candidates, count: grid.count)
        let budgetCount = try budget.resolve(tokenCount: grid.count)
        let open = candidates.map { mask in (0..<grid.count).filter { mask[$0] } } ?? Array(0..<grid.count)
        return (open, min(budgetCount, open.count))
    }

    static func mark(_ kept: some Sequence<Int>, grid: TokenGrid) -> Selection {
        var roleByToken = [TokenRole?](repeating: nil, count: grid.count)
        for index in kept { roleByToken[index] = .kept }
        return Selection(grid: grid, roleByToken: roleByToken)
    }

    /// `count` distinct positions in 0..<total, each at the centre of its share: ⌊(2m+1)·total / 2count⌋.
    static func spread(_ count: Int, over total: Int) -> [Int] {
        (0..<count).map { m in (2 * m + 1) * total / (2 * count) }
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and fixed by its constants, so seeded
/// selections are identical on every platform and Swift version.
/// Defined once: selections, the sampler and the random weights of benchmarks all draw from it.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    @usableFromInline var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// Inlinable across modules: benchmark models fill hundreds of millions of weights with it.
    @inlinable public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) from the top 24 bits (exact in Float).
    @inlinable public mutating func nextUnit() -> Float { Float(next() >> 40) / Float(1 << 24) }

    /// Roughly unit variance: a centred sum of four uniforms.
    @inlinable public mutating func normalish() -> Float {
        var s: Float = 0
        for _ in 0..<4 { s += nextUnit() }
        return (s - 2) * 1.7320508
    }

    /// Unbiased integer in 0..<bound (bound > 0), by Lemire's multiply-and-reject.
    public mutating func next(below bound: Int) -> Int {
        let b = UInt64(bound)
        var product = next().multipliedFullWidth(by: b)
        if product.low < b {
            let threshold = (0 &- b) % b
            while product.low < threshold { product = next().multipliedFullWidth(by: b) }
        }
        return Int(product.high)
    }
}
