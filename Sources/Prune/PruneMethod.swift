/// The selection policies by their command-line names.
public enum PruneMethod: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case hiprune
    case hiprunePlusPlus = "hiprune++"
    case none
    case random
    case uniform
    case deep
    case object

    /// Parses a command-line name (exact, lower case).
    public init(parsing name: String) throws(PruneError) {
        guard let method = PruneMethod(rawValue: name) else { throw .unknownMethod(name) }
        self = method
    }

    public var description: String { rawValue }

    /// Whether the policy needs the token features and a prompt embedding.
    public var needsPrompt: Bool { self == .hiprunePlusPlus }
}

/// What a policy may read about one frame. Scores and features are in raster order.
public struct FrameTokens: Sendable {
    public var grid: TokenGrid
    public var objectScores: [Float]
    public var deepScores: [Float]
    /// Row-major `[grid.count, featureWidth]`, after the connector; needed by HiPrune++ only.
    public var features: [Float]
    public var featureWidth: Int

    public init(grid: TokenGrid, objectScores: [Float], deepScores: [Float], features: [Float] = [], featureWidth: Int = 0) {
        self.grid = grid
        self.objectScores = objectScores
        self.deepScores = deepScores
        self.features = features
        self.featureWidth = featureWidth
    }
}

/// A configured policy: one entry point for the pipeline and the CLI. `none` keeps every
/// token (or every candidate) whatever the budget; `beta` and `promptCount` serve `hiprune++`,
/// `seed` serves `random`.
public struct Pruner: Sendable, Hashable {
    public var method: PruneMethod
    public var hiPrune: HiPrune
    public var beta: Double
    public var promptCount: HiPrunePlusPlus.PromptCount
    public var seed: UInt64

    public init(method: PruneMethod, hiPrune: HiPrune, beta: Double = 0.1,
                promptCount: HiPrunePlusPlus.PromptCount = .ofBudget, seed: UInt64 = 0) {
        self.method = method
        self.hiPrune = hiPrune
        self.beta = beta
        self.promptCount = promptCount
        self.seed = seed
    }

    /// - Parameters:
    ///   - promptEmbedding: mean prompt embedding, required by `hiprune++`.
    ///   - candidates: survivors of temporal de-duplication, or nil.
    ///   - frameNumber: mixed into the random baseline's seed so frames differ but runs repeat.
    public func select(_ frame: FrameTokens, budget: Budget, promptEmbedding: [Float]? = nil,
                       candidates: [Bool]? = nil, frameNumber: Int = 0) throws(PruneError) -> Selection {
        let grid = frame.grid
        switch method {
        case .hiprune:
            return try hiPrune.select(objectScores: frame.objectScores, deepScores: frame.deepScores, grid: grid,
                                      budget: budget, candidates: candidates)
        case .hiprunePlusPlus:
            let plus = try HiPrunePlusPlus(hiPrune: hiPrune, beta: beta, promptCount: promptCount)
            return try plus.select(objectScores: frame.objectScores, deepScores: frame.deepScores,
                                   features: frame.features, width: frame.featureWidth,
                                   promptEmbedding: promptEmbedding ?? [], grid: grid, budget: budget,
                                   candidates: candidates)
        case .none:
            return try Baseline.keepAll(grid: grid, candidates: candidates)
        case .random:
            var mix = SplitMix64(seed: seed ^ UInt64(truncatingIfNeeded: frameNumber))
            return try Baseline.random(seed: mix.next(), grid: grid, budget: budget, candidates: candidates)
        case .uniform:
            return try Baseline.uniform(grid: grid, budget: budget, candidates: candidates)
        case .deep:
            return try Baseline.topDeep(deepScores: frame.deepScores, grid: grid, budget: budget, candidates: candidates)
        case .object:
            return try Baseline.topObject(objectScores: frame.objectScores, grid: grid, budget: budget,
                                          candidates: candidates)
        }
    }
}
