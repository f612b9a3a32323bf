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
/// Several questions about one video share their prompts' common prefix (see DecoderPrompt).
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
    public static func load(directory: String, precision: WeightPrecision = .stored) throws -> VideoQuestionAnswering {
        let configuration = try SmolVLMConfiguration.load(directory: directory)
        return try VideoQuestionAnswering(language: try LanguageModel(path: directory, precision: precision),
                                          imageTokenID: configuration.imageTokenId)
    }

    /// The prompt's token ids and input embeddings for one question.
    public func prompt(frames: [PrunedFrame], duration: Double, question: String) throws -> (ids: [Int], embeddings: Matrix) {
        let views = try frames.map { try $0.singleView(family: "SmolVLM2") }
        let prompt = SmolVLMVideoPrompt(frames: zip(frames, views).map { .init(time: $0.time, imageTokens: $1.selection.count) },
                                        duration: duration)
        let ids = language.tokenizer.encode(try prompt.text(question: question))
        let positions = ids.indices.filter { ids[$0] == imageTokenID }
        let kept = views.reduce(0) { $0 + $1.features.rows }
        guard positions.count == kept else {
            throw PipelineError.invalidOption(flag: "question",
                                              cause: "the prompt has \(positions.count) image tokens for \(kept) kept tokens (does the question contain \(SmolVLMVideoPrompt.imageToken)?)")
        }
        var features = Matrix(rows: kept, cols: language.model.configuration.hiddenSize)
        var row = 0
        for view in views {
            guard view.features.cols == features.cols else {
                throw PipelineError.invalidOption(flag: "model",
                                                  cause: "frame features are \(view.features.cols) wide, the language model's embeddings \(features.cols)")
            }
            features.storage.replaceSubrange((row * features.cols)..<((row + view.features.rows) * features.cols),
                                             with: view.features.storage)
            row += view.features.rows
        }
        return (ids, try language.model.embed(ids, injecting: features, at: positions))
    }

    /// Answers every question in order; `onText(q, piece)` streams question q's answer as it is
    /// generated (never splitting a UTF-8 character).
    public func answer(frames: [PrunedFrame], duration: Double, questions: [String], generation: GenerationOptions,
                       onText: (Int, String) -> Void) throws -> VideoAnswers {
        let prompts = try questions.map { question in
            let (ids, embeddings) = try prompt(frames: frames, duration: duration, question: question)
            return DecoderPrompt(ids: ids, embeddings: embeddings)
        }
        let batch = try language.model.answer(prompts: prompts, tokenizer: language.tokenizer, generation: generation, onText: onText)
        return VideoAnswers(batch, questions: questions, prompts: prompts)
    }
}

extension VideoAnswers {
    /// The answers of a prompt batch, question by question.
    init(_ batch: PromptBatchAnswers, questions: [String], prompts: [DecoderPrompt], unprunedPromptTokens: [Int]? = nil) {
        answers = zip(batch.answers.indices, batch.answers).map { q, a in
            VideoAnswer(question: questions[q], text: a.text, tokens: a.generation.tokens, promptTokens: prompts[q].ids.count,
                        reusedPrefixTokens: batch.sharedPrefixRows, prefillMilliseconds: a.prefillSeconds * 1000,
                        decodeSeconds: a.generation.decodeSeconds, tokensPerSecond: a.generation.tokensPerSecond,
                        unprunedPromptTokens: unprunedPromptTokens?[q])
        }
        sharedPrefixTokens = batch.sharedPrefixRows
        sharedPrefixMilliseconds = batch.sharedPrefixSeconds * 1000
    }
}

func milliseconds(since start: DispatchTime) -> Double {
    Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6
}

extension VideoQuestionAnswering {
    /// HiPrune++'s prompt vector, as every family defines it (`DecoderModel.promptEmbedding`).
    public func promptEmbedding(question: String) throws -> [Float] {
        try language.model.promptEmbedding(question: question, tokenizer: language.tokenizer)
    }
}
