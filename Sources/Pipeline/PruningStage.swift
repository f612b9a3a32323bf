import Foundation
import Prune
import Tensor
import Vision

/// Everything that decides which tokens of a frame are kept; the CLI builds it from flags.
public struct PruneSettings: Sendable, Hashable {
    public var method: PruneMethod
    public var budget: Budget
    public var alpha: Double
    public var mode: HiPrune.Mode
    /// nil: the encoder family's default.
    public var objectLayer: Int?
    /// nil: the encoder family's default.
    public var deepLayer: Int?
    /// Cosine threshold of temporal de-duplication; nil disables it.
    public var dedupThreshold: Float?
    public var beta: Double
    public var seed: UInt64

    public init(method: PruneMethod = .hiprune, budget: Budget = .ratio(0.33), alpha: Double = 0.1,
                mode: HiPrune.Mode = .grid, objectLayer: Int? = nil, deepLayer: Int? = nil,
                dedupThreshold: Float? = nil, beta: Double = 0.1, seed: UInt64 = 0) {
        self.method = method
        self.budget = budget
        self.alpha = alpha
        self.mode = mode
        self.objectLayer = objectLayer
        self.deepLayer = deepLayer
        self.dedupThreshold = dedupThreshold
        self.beta = beta
        self.seed = seed
    }
}

/// One view of a frame after pruning: the kept tokens of its grid.
public struct PrunedView: Sendable {
    public var place: ViewPlace
    /// Which tokens were kept, their roles, and (through the grid) their original positions.
    public var selection: Selection
    /// [kept, featureWidth]: the kept rows of the connector's output, in `selection.indices` order.
    public var features: Matrix
    /// The encoder view's rows outside the grid, kept whole (EncodedView.leading).
    public var leading: Matrix?

    public init(place: ViewPlace, selection: Selection, features: Matrix, leading: Matrix? = nil) {
        self.place = place
        self.selection = selection
        self.features = features
        self.leading = leading
    }

    public var grid: TokenGrid { selection.grid }
}

/// One frame (or temporal patch) after pruning: what reaches the language model.
public struct PrunedFrame: Sendable {
    /// 0-based among the encoded steps of the clip.
    public var index: Int
    /// Seconds of the step's first frame.
    public var time: Double
    /// One per view the encoder produced, in its order.
    public var views: [PrunedView]

    public init(index: Int, time: Double, views: [PrunedView]) {
        self.index = index
        self.time = time
        self.views = views
    }

    /// A frame of one view covering the whole frame.
    public init(index: Int, time: Double, selection: Selection, features: Matrix) {
        self.init(index: index, time: time, views: [PrunedView(place: .frame, selection: selection, features: features)])
    }

    /// Kept tokens over every view.
    public var keptCount: Int { views.reduce(0) { $0 + $1.selection.count } }

    /// The one view of a single-view family; families whose encoder makes one view per step
    /// (SmolVLM2, Qwen2.5-VL) read their frames through this.
    public func singleView(family: String) throws -> PrunedView {
        guard views.count == 1, let view = views.first else {
            throw PipelineError.invalidOption(flag: "model",
                                              cause: "\(family) takes one view per frame; frame \(index) has \(views.count)")
        }
        return view
    }
}

/// What one frame cost and kept; a row of `stats` and an event of `live`. Counts are totals over
/// the frame's views.
public struct FrameStatistics: Sendable, Equatable {
    public var index: Int
    public var time: Double
    /// One grid per view, in the encoder's order.
    public var grids: [TokenGrid]
    public var tokensBefore: Int
    public var tokensAfter: Int
    public var anchors: Int
    public var buffers: Int
    public var registers: Int
    public var promptTokens: Int
    /// Tokens dropped by temporal de-duplication before the budget was spent.
    public var temporalDrops: Int
    public var encodeMilliseconds: Double
    public var pruneMilliseconds: Double

    /// "8x8" for one view; for several, runs of equal grids as "GRIDxN" joined by "+"
    /// (a LLaVA-NeXT frame of a base image and four crops: "24x24x5").
    public var gridDescription: String { Self.describe(grids) }

    /// The description `gridDescription` gives of a frame's view grids.
    public static func describe(_ grids: [TokenGrid]) -> String {
        guard grids.count > 1 else { return grids.first?.description ?? "0x0" }
        var runs: [(grid: TokenGrid, count: Int)] = []
        for grid in grids {
            if let last = runs.last, last.grid == grid { runs[runs.count - 1].count += 1 } else { runs.append((grid, 1)) }
        }
        return runs.map { $0.count == 1 ? $0.grid.description : "\($0.grid)x\($0.count)" }.joined(separator: "+")
    }
    /// The step reused an earlier step's encoding and selection (`--reuse`): it cost no encoding.
    public var reused = false
}

/// Turns encoded frames into pruned frames, one at a time, with the state that spans frames
/// (temporal de-duplication remembers one previous frame per view: bounded memory).
public struct PruningStage: Sendable {
    public let settings: PruneSettings
    public let objectLayer: Int
    public let deepLayer: Int
    private let pruner: Pruner
    private let deduplicatorTemplate: TemporalDeduplicator?
    /// One per view position: a crop is compared with the same crop of the previous frame.
    private var deduplicators: [TemporalDeduplicator] = []
    /// The last step pruned, handed to the steps that reuse its encoding (`--reuse`).
    private var lastPruned: (index: Int, frame: PrunedFrame, statistics: FrameStatistics)?

    /// Validates the settings against the encoder: layers in range, parameters sane.
    public init(settings: PruneSettings, encoder: any FrameEncoder) throws {
        self.settings = settings
        objectLayer = settings.objectLayer ?? encoder.defaultObjectLayer
        deepLayer = settings.deepLayer ?? encoder.defaultDeepLayer
        try ObjectLayerCalibration.validate(objectLayer: objectLayer, layerCount: encoder.layerCount)
        guard (1...encoder.layerCount).contains(deepLayer) else {
            throw PipelineError.invalidOption(flag: "--deep-layer",
                                              cause: "layer \(deepLayer) is out of range: the encoder has layers 1...\(encoder.layerCount)")
        }
        pruner = Pruner(method: settings.method, hiPrune: try HiPrune(alpha: settings.alpha, mode: settings.mode),
                        beta: settings.beta, seed: settings.seed)
        if settings.method == .hiprunePlusPlus { _ = try HiPrunePlusPlus(hiPrune: pruner.hiPrune, beta: settings.beta) }
        deduplicatorTemplate = try settings.dedupThreshold.map { threshold throws(PruneError) in
            try TemporalDeduplicator(threshold: threshold)
        }
    }

    /// The encoder layers whose scores this stage reads.
    public var scoreLayers: Set<Int> { [objectLayer, deepLayer] }

    /// A new clip starts: forget the previous frame.
    public mutating func reset() {
        deduplicators.removeAll()
        lastPruned = nil
    }

    /// Prunes one encoded step of `FrameAnalysis`. A step that reuses an earlier step's encoding
    /// (`--reuse`) reuses that step's selection too, with its own index and time: it costs
    /// neither encoding nor pruning, and de-duplication does not see it as a repeat of itself.
    public mutating func prune(_ step: FrameAnalysis.Step, promptEmbedding: [Float]? = nil) throws -> (PrunedFrame, FrameStatistics) {
        if let source = step.reusedFrom, let last = lastPruned, last.index == source {
            var frame = last.frame, statistics = last.statistics
            frame.index = step.index
            frame.time = step.time
            statistics.index = step.index
            statistics.time = step.time
            statistics.encodeMilliseconds = 0
            statistics.pruneMilliseconds = 0
            statistics.reused = true
            return (frame, statistics)
        }
        let (frame, statistics) = try prune(step.encoded, index: step.index, time: step.time,
                                            encodeMilliseconds: step.encodeMilliseconds, promptEmbedding: promptEmbedding)
        lastPruned = (step.index, frame, statistics)
        return (frame, statistics)
    }

    /// Each view's budget. A frame of one view gets the settings' budget as it is; a frame of
    /// several splits N' (resolved on all its tokens) as HIPRUNE.md says for crops: N'/views
    /// each, the remainder one token at a time to the earliest views. A view smaller than its
    /// share keeps all it has and the rest is split the same way over the others, so the views'
    /// budgets always add up to N'.
    static func viewBudgets(_ budget: Budget, grids: [TokenGrid]) throws -> [Budget] {
        guard grids.count > 1 else { return grids.map { _ in budget } }
        let total = try budget.resolve(tokenCount: grids.reduce(0) { $0 + $1.count })
        // The highest level L that every view can be filled to (a view holds min(tokens, L))
        // within N'; what is left then goes one token each to the earliest views still below capacity.
        func filled(to level: Int) -> Int { grids.reduce(0) { $0 + min($1.count, level) } }
        var low = 0, high = grids.map(\.count).max() ?? 0
        while low < high {
            let mid = (low + high + 1) / 2
            if filled(to: mid) <= total { low = mid } else { high = mid - 1 }
        }
        var counts = grids.map { min($0.count, low) }
        var remaining = total - filled(to: low)
        for v in grids.indices where remaining > 0 && counts[v] < grids[v].count {
            counts[v] += 1
            remaining -= 1
        }
        return counts.map { .count($0) }
    }

    /// Prunes one encoded frame, each view on its own grid.
    /// - Parameter promptEmbedding: mean text embedding of the question, required by `hiprune++`.
    public mutating func prune(_ frame: EncodedFrame, index: Int, time: Double, encodeMilliseconds: Double,
                               promptEmbedding: [Float]? = nil) throws -> (PrunedFrame, FrameStatistics) {
        let start = DispatchTime.now()
        if settings.method == .hiprunePlusPlus && promptEmbedding == nil {
            throw PipelineError.invalidOption(flag: "--method hiprune++", cause: "needs a question to compare the tokens with")
        }
        let budgets = try Self.viewBudgets(settings.budget, grids: frame.views.map(\.grid))
        var views: [PrunedView] = []
        views.reserveCapacity(frame.views.count)
        var temporalDrops = 0
        for (v, view) in frame.views.enumerated() {
            guard let objectScores = view.scores[objectLayer], let deepScores = view.scores[deepLayer] else {
                throw PipelineError.invalidOption(flag: "--object-layer",
                                                  cause: "the encoder returned no scores for layers \(objectLayer) and \(deepLayer)")
            }
            if let template = deduplicatorTemplate, deduplicators.count <= v { deduplicators.append(template) }
            let candidates = v < deduplicators.count
                ? try deduplicators[v].candidates(features: view.features.storage, width: view.features.cols, grid: view.grid)
                : nil
            temporalDrops += candidates.map { mask in mask.reduce(0) { $0 + ($1 ? 0 : 1) } } ?? 0
            let tokens = FrameTokens(grid: view.grid, objectScores: objectScores, deepScores: deepScores,
                                     features: settings.method.needsPrompt ? view.features.storage : [],
                                     featureWidth: view.features.cols)
            // The random baseline's seed mixes the frame number; a second view must not repeat the first's draw.
            let selection = try pruner.select(tokens, budget: budgets[v], promptEmbedding: promptEmbedding,
                                              candidates: candidates, frameNumber: index &+ v &* 1_000_003)
            views.append(PrunedView(place: view.place, selection: selection, features: view.features.gathering(rows: selection.indices),
                                    leading: view.leading))
        }
        let pruneMilliseconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6
        func total(_ role: TokenRole) -> Int { views.reduce(0) { $0 + $1.selection.count(of: role) } }
        let statistics = FrameStatistics(
            index: index, time: time, grids: frame.views.map(\.grid), tokensBefore: frame.tokenCount,
            tokensAfter: views.reduce(0) { $0 + $1.selection.count }, anchors: total(.anchor), buffers: total(.buffer),
            registers: total(.register), promptTokens: total(.prompt), temporalDrops: temporalDrops,
            encodeMilliseconds: encodeMilliseconds, pruneMilliseconds: pruneMilliseconds)
        return (PrunedFrame(index: index, time: time, views: views), statistics)
    }
}

extension Matrix {
    /// The given rows, in the given order.
    public func gathering(rows indices: [Int]) -> Matrix {
        var out = Matrix(rows: indices.count, cols: cols)
        let width = cols
        storage.withUnsafeBufferPointer { source in
            out.storage.withUnsafeMutableBufferPointer { target in
                for (k, row) in indices.enumerated() {
                    for c in 0..<width { target[k * width + c] = source[row * width + c] }
                }
            }
        }
        return out
    }
}
