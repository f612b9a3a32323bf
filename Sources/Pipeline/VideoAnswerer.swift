import Foundation
import Prune
import Stream
import Tensor
import Vision
import VLM

/// A family's language side as `ask` and `live` see it: pruned frames and questions in, answers
/// out. Families add a conforming type; the commands never switch on the family.
public protocol VideoAnswerer: Sendable {
    /// Tokens that end an answer.
    var stopTokens: Set<Int> { get }
    /// HiPrune++'s prompt vector: the mean of the question's token embeddings.
    func promptEmbedding(question: String) throws -> [Float]
    /// Answers every question about `frames` in order; `onText(q, piece)` streams question q's answer.
    func answer(frames: [PrunedFrame], duration: Double, questions: [String], generation: GenerationOptions,
                onText: (Int, String) -> Void) throws -> VideoAnswers
}

/// The answers to a batch of questions, and the prompt prefix they shared.
public struct VideoAnswers: Sendable {
    public var answers: [VideoAnswer]
    /// Prompt tokens prefilled once for every question (0 when each question prefills its own).
    public var sharedPrefixTokens: Int
    public var sharedPrefixMilliseconds: Double
}

extension ModelFamily {
    /// The family's language side, loaded from the directory with its weights held as `precision` says.
    public func loadAnswerer(directory: String, precision: WeightPrecision = .stored) throws -> any VideoAnswerer {
        switch self {
        case .smolVLM: return try VideoQuestionAnswering.load(directory: directory, precision: precision)
        case .qwen25VL: return try Qwen2VideoAnswering(directory: directory, precision: precision)
        }
    }

    /// How `ask` samples a file when no flag says: SmolVLM2 on a CPU gets 8 frames over the clip;
    /// Qwen2.5-VL its processor's 2 fps.
    public var defaultSampling: FrameSampling {
        switch self {
        case .smolVLM: return .uniform(count: 8)
        case .qwen25VL: return .fps(2)
        }
    }
}

extension VideoQuestionAnswering: VideoAnswerer {
    public var stopTokens: Set<Int> { language.stopTokens }
}

/// Qwen2.5-VL: each temporal patch keeps its original (t, h, w) positions; questions share the
/// prompt's prefix (system text and video) as SmolVLM2's do.
extension Qwen2VideoAnswering: VideoAnswerer {
    public func answer(frames: [PrunedFrame], duration: Double, questions: [String], generation: GenerationOptions,
                       onText: (Int, String) -> Void) throws -> VideoAnswers {
        let patches = frames.map {
            Patch(rows: $0.grid.rows, cols: $0.grid.cols, kept: $0.selection.indices, features: $0.features, time: $0.time)
        }
        let prompts = try questions.map { try prompt(patches: patches, question: $0) }
        let inputs = prompts.map(\.decoderPrompt)
        let batch = try model.answer(prompts: inputs, tokenizer: tokenizer, generation: generation, onText: onText)
        return VideoAnswers(batch, questions: questions, prompts: inputs, unprunedPromptTokens: prompts.map(\.video.fullLength))
    }
}
