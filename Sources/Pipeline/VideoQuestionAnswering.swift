import Foundation
import Prune
import Tensor
import Vision
import VLM

/// One answered question, with what it cost.
public struct VideoAnswer: Sendable {
    public var question: String
    public var text: String
    public var tokens: [Int]
    /// Prompt tokens of this question (shared prefix included).
    public var promptTokens: Int
    /// Prompt tokens whose keys and values came from the shared prefix's cache.
    public var reusedPrefixTokens: Int
    /// Prefill of this question's own part of the prompt (the shared prefix is counted once, apart).
    public var prefillMilliseconds: Double
    public var decodeSeconds: Double
    public var tokensPerSecond: Double
    /// The prompt's length had no token been pruned, where the family reports it.
    public var unprunedPromptTokens: Int? = nil
}

/// Answers questions about pruned frames with a SmolVLM2-style model: the video prompt of the
/// reference processor with each frame's image run shortened to its kept tokens, the kept
/// features at the `<image>` positions, one prefill for all frames.
///
/// Several questions about one video share everything up to the first token where their prompts
/// differ: that prefix is prefilled once, and every question continues from a copy of its cache.
/// The prefix is found on token ids, not text, so each question's tokens are exactly those of its
/// own full prompt (byte-level BPE may merge across a text boundary).
public struct VideoQuestionAnswering: Sendable {
    public let language: LanguageModel
    public let imageTokenID: Int

    public init(language: LanguageModel, imageTokenID: Int) throws {
        guard let id = language.tokenizer.id(of: SmolVLMVideoPrompt.imageToken) else {
            throw PipelineError.unreadableConfiguration(file: language.source + "/tokenizer.json",
                                                        cause: "no \(SmolVLMVideoPrompt.imageToken) token")
        }
        guard id == imageTokenID else {
            throw PipelineError.unreadableConfiguration(
                file: language.source + "/config.json",
                cause: "image_token_id \(imageTokenID) differs from the tokenizer's \(SmolVLMVideoPrompt.imageToken) id \(id)")
        }
        self.language = language
        self.imageTokenID = id
    }

    /// Loads the language side of a SmolVLM / SmolVLM2 model directory.
    public static func load(directory: String) throws -> VideoQuestionAnswering {
        let configuration = try SmolVLMConfiguration.load(directory: directory)
        return try VideoQuestionAnswering(language: try LanguageModel(path: directory),
                                          imageTokenID: configuration.imageTokenId)
    }

    /// The prompt's token ids and input embeddings for one question.
    public func prompt(frames: [PrunedFrame], duration: Double, question: String) throws -> (ids: [Int], embeddings: Matrix) {
        let prompt = SmolVLMVideoPrompt(frames: frames.map { .init(time: $0.time, imageTokens: $0.selection.count) },
                                        duration: duration)
        let ids = language.tokenizer.encode(prompt.text(question: question))
        let positions = ids.indices.filter { ids[$0] == imageTokenID }
        let kept = frames.reduce(0) { $0 + $1.features.rows }
        guard positions.count == kept else {
            throw PipelineError.invalidOption(flag: "question",
                                              cause: "the prompt has \(positions.count) image tokens for \(kept) kept tokens (does the question contain \(SmolVLMVideoPrompt.imageToken)?)")
        }
        var features = Matrix(rows: kept, cols: language.model.configuration.hiddenSize)
        var row = 0
        for frame in frames {
            guard frame.features.cols == features.cols else {
                throw PipelineError.invalidOption(flag: "model",
                                                  cause: "frame features are \(frame.features.cols) wide, the language model's embeddings \(features.cols)")
            }
            features.storage.replaceSubrange((row * features.cols)..<((row + frame.features.rows) * features.cols),
                                             with: frame.features.storage)
            row += frame.features.rows
        }
        return (ids, try language.model.embed(ids, injecting: features, at: positions))
    }

    /// Answers every question in order; `onText(q, piece)` streams question q's answer as it is
    /// generated (never splitting a UTF-8 character).
    public func answer(frames: [PrunedFrame], duration: Double, questions: [String], generation: GenerationOptions,
                       onText: (Int, String) -> Void) throws -> VideoAnswers {
        guard !questions.isEmpty else { return VideoAnswers(answers: [], sharedPrefixTokens: 0, sharedPrefixMilliseconds: 0) }
        let prompts = try questions.map { try prompt(frames: frames, duration: duration, question: $0) }
        var shared = prompts[0].ids.count
        for p in prompts.dropFirst() {
            shared = min(shared, zip(prompts[0].ids, p.ids).prefix { $0 == $1 }.count)
        }
        // A question's own part needs at least one row: its logits start the answer.
        shared = min(shared, prompts.map(\.ids.count).min()! - 1)
        let longest = prompts.map(\.ids.count).max()!
        let configuration = language.model.configuration
        let context = min(configuration.maxPositions, longest + generation.maxNewTokens + 1)
        guard longest < context else {
            throw VLMError.contextOverflow(tokens: longest, context: configuration.maxPositions)
        }
        let prefixSession = try DecoderSession(model: language.model, context: context)
        let prefixStart = DispatchTime.now()
        if shared > 0 { try prefixSession.prefill(embeddings: prompts[0].embeddings.rows(0..<shared)) }
        let prefixMilliseconds = milliseconds(since: prefixStart)

        var answers: [VideoAnswer] = []
        for (q, prompt) in prompts.enumerated() {
            let session = DecoderSession(model: language.model, cache: prefixSession.cache)
            let start = DispatchTime.now()
            try session.prefill(embeddings: prompt.embeddings.rows(shared..<prompt.ids.count))
            let prefill = milliseconds(since: start)
            var detokenizer = StreamingDetokenizer(tokenizer: language.tokenizer)
            var text = ""
            let result = try session.continueGeneration(history: prompt.ids, options: generation) { token in
                let piece = detokenizer.append(token)
                if !piece.isEmpty {
                    text += piece
                    onText(q, piece)
                }
                return true
            }
            let tail = detokenizer.finish()
            if !tail.isEmpty {
                text += tail
                onText(q, tail)
            }
            answers.append(VideoAnswer(question: questions[q], text: text, tokens: result.tokens,
                                       promptTokens: prompt.ids.count, reusedPrefixTokens: shared,
                                       prefillMilliseconds: prefill, decodeSeconds: result.decodeSeconds,
                                       tokensPerSecond: result.tokensPerSecond))
        }
        return VideoAnswers(answers: answers, sharedPrefixTokens: shared, sharedPrefixMilliseconds: prefixMilliseconds)
    }
}

func milliseconds(since start: DispatchTime) -> Double {
    Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6
}

extension VideoQuestionAnswering {
    /// HiPrune++'s prompt vector: the mean of the question's token embeddings (the language
    /// model's input space, where the connector's features live).
    public func promptEmbedding(question: String) throws -> [Float] {
        let ids = language.tokenizer.encode(question)
        guard !ids.isEmpty else { throw PipelineError.invalidOption(flag: "question", cause: "is empty") }
        let rows = try language.model.embed(ids)
        var mean = [Float](repeating: 0, count: rows.cols)
        for r in 0..<rows.rows {
            for c in 0..<rows.cols { mean[c] += rows[r, c] }
        }
        let scale = 1 / Float(rows.rows)
        return mean.map { $0 * scale }
    }
}
