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

/// One frame (or temporal patch) after pruning: what reaches the language model.
public struct PrunedFrame: Sendable {
    /// 0-based among the encoded steps of the clip.
    public var index: Int
    /// Seconds of the step's first frame.
    public var time: Double
    /// Which tokens were kept, their roles, and (through the grid) their original positions.
    public var selection: Selection
    /// [kept, featureWidth]: the kept rows of the connector's output, in `selection.indices` order.
    public var features: Matrix

    public var grid: TokenGrid { selection.grid }
}

/// What one frame cost and kept; a row of `stats` and an event of `live`.
public struct FrameStatistics: Sendable, Equatable {
    public var index: Int
    public var time: Double
    public var grid: TokenGrid
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
    /// The step reused an earlier step's encoding and selection (`--reuse`): it cost no encoding.
    public var reused = false
}

/// Turns encoded frames into pruned frames, one at a time, with the state that spans frames
/// (temporal de-duplication remembers one previous frame: bounded memory).
public struct PruningStage: Sendable {
    public let settings: PruneSettings
    public let objectLayer: Int
    public let deepLayer: Int
    private let pruner: Pruner
    private var deduplicator: TemporalDeduplicator?

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
        deduplicator = try settings.dedupThreshold.map { threshold throws(PruneError) in try TemporalDeduplicator(threshold: threshold) }
    }

    /// The encoder layers whose scores this stage reads.
    public var scoreLayers: Set<Int> { [objectLayer, deepLayer] }

    /// A new clip starts: forget the previous frame.
    public mutating func reset() { deduplicator?.reset() }

    /// Prunes one encoded frame.
    /// - Parameter promptEmbedding: mean text embedding of the question, required by `hiprune++`.
    public mutating func prune(_ frame: EncodedFrame, index: Int, time: Double, encodeMilliseconds: Double,
                               promptEmbedding: [Float]? = nil) throws -> (PrunedFrame, FrameStatistics) {
        let start = DispatchTime.now()
        guard let objectScores = frame.scores[objectLayer], let deepScores = frame.scores[deepLayer] else {
            throw PipelineError.invalidOption(flag: "--object-layer",
                                              cause: "the encoder returned no scores for layers \(objectLayer) and \(deepLayer)")
        }
        if settings.method == .hiprunePlusPlus && promptEmbedding == nil {
            throw PipelineError.invalidOption(flag: "--method hiprune++", cause: "needs a question to compare the tokens with")
        }
        let candidates = try deduplicator?.candidates(features: frame.features.storage, width: frame.features.cols,
                                                      grid: frame.grid)
        let tokens = FrameTokens(grid: frame.grid, objectScores: objectScores, deepScores: deepScores,
                                 features: settings.method.needsPrompt ? frame.features.storage : [],
                                 featureWidth: frame.features.cols)
        let selection = try pruner.select(tokens, budget: settings.budget, promptEmbedding: promptEmbedding,
                                          candidates: candidates, frameNumber: index)
        let kept = frame.features.gathering(rows: selection.indices)
        let pruneMilliseconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6
        let statistics = FrameStatistics(
            index: index, time: time, grid: frame.grid, tokensBefore: frame.grid.count, tokensAfter: selection.count,
            anchors: selection.count(of: .anchor), buffers: selection.count(of: .buffer),
            registers: selection.count(of: .register), promptTokens: selection.count(of: .prompt),
            temporalDrops: candidates.map { mask in mask.reduce(0) { $0 + ($1 ? 0 : 1) } } ?? 0,
            encodeMilliseconds: encodeMilliseconds, pruneMilliseconds: pruneMilliseconds)
        return (PrunedFrame(index: index, time: time, selection: selection, features: kept), statistics)
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
