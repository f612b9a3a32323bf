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
