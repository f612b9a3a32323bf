import Foundation
import Prune
import Vision
import VLM

/// The question → answer flow shared by `ask` and `live` (and the server): frames are pruned as
/// they are encoded, and questions are answered over the pruned frames in one batch so their
/// common prompt prefix is prefilled once.
///
/// HiPrune++ ranks tokens against a question. With one question every frame is pruned once,
/// for it, as it arrives. With several, each question needs its own selection: the flow then keeps
/// the encoded frames (`keepsEncodedFrames`) and prunes them anew for each question before
/// answering it on its own.
public struct VideoQuestionFlow: Sendable {
    public let answerer: any VideoAnswerer
    public let questions: [String]
    public private(set) var stage: PruningStage
    /// One prompt vector per question under HiPrune++; empty for every other method.
    let promptEmbeddings: [[Float]]

    public init(answerer: any VideoAnswerer, stage: PruningStage, questions: [String]) throws {
        self.answerer = answerer
        self.stage = stage
        self.questions = questions
        promptEmbeddings = stage.settings.method.needsPrompt ? try questions.map { try answerer.promptEmbedding(question: $0) } : []
        if stage.settings.method.needsPrompt && questions.isEmpty {
            throw PipelineError.invalidOption(flag: "--method \(stage.settings.method.rawValue)", cause: "needs a question")
        }
    }

    /// True when the frames must be kept as encoded (HiPrune++ with several questions prunes them
    /// once per question); false when each frame is pruned once, as it arrives.
    public var keepsEncodedFrames: Bool { promptEmbeddings.count > 1 }

    /// A new clip starts (live reconnect): forget the previous frame.
    public mutating func reset() { stage.reset() }

    /// Prunes one encoded step for every question (for the first question's prompt under HiPrune++).
    public mutating func prune(_ step: FrameAnalysis.Step) throws -> (PrunedFrame, FrameStatistics) {
        try stage.prune(step, promptEmbedding: promptEmbeddings.first)
    }

    /// The clip of steps encoded earlier (a server's cached frames): pruned in order through this
    /// flow's stage, as `ask` prunes them while they arrive, unless `keepsEncodedFrames`; with the
    /// statistics of the frames it pruned.
    public mutating func clip(of steps: [FrameAnalysis.Step]) throws -> (Clip, [FrameStatistics]) {
        guard !keepsEncodedFrames else { return (.encoded(steps), []) }
        var frames: [PrunedFrame] = [], statistics: [FrameStatistics] = []
        for step in steps {
            let (frame, s) = try prune(step)
            frames.append(frame)
            statistics.append(s)
        }
        return (.pruned(frames), statistics)
    }

    /// What the language model sees of a clip: frames pruned as they came, or encoded frames to
    /// prune per question (when `keepsEncodedFrames`).
    public enum Clip: Sendable {
        case pruned([PrunedFrame])
        case encoded([FrameAnalysis.Step])

        public var isEmpty: Bool {
            switch self {
            case .pruned(let frames): return frames.isEmpty
            case .encoded(let steps): return steps.isEmpty
            }
        }
    }

    /// Every question's answer, and the statistics of the frames each answer saw.
    public struct Result: Sendable {
        public var answers: [VideoAnswer]
        public var sharedPrefixTokens: Int
        public var sharedPrefixMilliseconds: Double
        /// The pruned frames of the last question answered (every question's, unless HiPrune++ re-pruned).
        public var frames: [PrunedFrame]
        /// Per-frame statistics of those frames, when this call pruned them (HiPrune++ per question).
        public var statistics: [FrameStatistics]
    }

    /// Answers every question about `clip`, streaming question q's text through `onText(q, piece)`.
    public mutating func answer(_ clip: Clip, duration: Double, generation: GenerationOptions,
                                onText: (Int, String) -> Void) throws -> Result {
        switch clip {
        case .pruned(let frames):
            let batch = try answerer.answer(frames: frames, duration: duration, questions: questions,
                                            generation: generation, onText: onText)
            return Result(answers: batch.answers, sharedPrefixTokens: batch.sharedPrefixTokens,
                          sharedPrefixMilliseconds: batch.sharedPrefixMilliseconds, frames: frames, statistics: [])
        case .encoded(let steps):
            var result = Result(answers: [], sharedPrefixTokens: 0, sharedPrefixMilliseconds: 0, frames: [], statistics: [])
            for (q, question) in questions.enumerated() {
                stage.reset()
                var frames: [PrunedFrame] = [], statistics: [FrameStatistics] = []
                for step in steps {
                    let (frame, s) = try stage.prune(step, promptEmbedding: promptEmbeddings.isEmpty ? nil : promptEmbeddings[q])
                    frames.append(frame)
                    statistics.append(s)
                }
                let batch = try answerer.answer(frames: frames, duration: duration, questions: [question],
                                                generation: generation) { _, piece in onText(q, piece) }
                result.answers += batch.answers
                result.sharedPrefixMilliseconds += batch.sharedPrefixMilliseconds
                result.frames = frames
                result.statistics = statistics
            }
            return result
        }
    }
}
