import Foundation
import Prune
import Tensor
import Vision
import VLM

/// Answers questions about pruned frames with a LLaVA-family model: the checkpoint's chat template
/// (LlavaVideoPrompt) with each frame's placeholder run as long as its packed kept tokens, those
/// features at the placeholder rows, consecutive positions (the decoder is Llama's or Mistral's,
/// 1-D RoPE: a pruned prompt is simply shorter), one prefill for all frames. Several questions
/// share their prompts' common prefix (see DecoderPrompt).
public struct LlavaVideoAnswering: Sendable {
    public let language: LanguageModel
    public let videoPrompt: LlavaVideoPrompt
    /// The id of the placeholder token (`<image>`, or `<video>` for LLaVA-NeXT-Video).
    public let placeholderID: Int
    /// LLaVA-NeXT's image_newline (text hidden), closing each packed row of crops.
    public let imageNewline: [Float]?

    public init(language: LanguageModel, layout: LlavaVideoPrompt.Layout, placeholderID: Int, imageNewline: [Float]? = nil) throws {
        let name = layout == .video ? LlavaVideoPrompt.videoToken : LlavaVideoPrompt.imageToken
        guard let id = language.tokenizer.id(of: name) else {
            throw PipelineError.unreadableConfiguration(file: language.source + "/tokenizer.json", cause: "no \(name) token")
        }
        guard id == placeholderID else {
            throw PipelineError.unreadableConfiguration(
                file: language.source + "/config.json",
                cause: "the \(name) token id \(placeholderID) differs from the tokenizer's id \(id)")
        }
        self.language = language
        self.videoPrompt = try LlavaVideoPrompt(tokenizer: language.tokenizer, layout: layout)
        self.placeholderID = id
        self.imageNewline = imageNewline
    }

    /// Loads the language side of a LLaVA / LLaVA-NeXT / LLaVA-NeXT-Video model directory.
    public static func load(directory: String, precision: WeightPrecision = .stored) throws -> LlavaVideoAnswering {
        let configuration = try LlavaConfiguration.load(directory: directory)
        let video = configuration.modelType == "llava_next_video"
        let language = try LanguageModel(path: directory, precision: precision)
        var newline: [Float]? = nil
        if configuration.modelType == "llava_next" {
            let weights = try WeightStore(directory: directory)
            let name = ["image_newline", "model.image_newline"].first(where: weights.contains) ?? "image_newline"
            newline = try weights.matrix(name, shape: [configuration.textHiddenSize]).storage
        }
        return try LlavaVideoAnswering(language: language, layout: video ? .video : .images,
                                       placeholderID: video ? configuration.videoTokenId ?? -1 : configuration.imageTokenId,
                                       imageNewline: newline)
    }

    /// One frame as the prompt takes it: its time and its packed kept features, one row per placeholder.
    public struct Frame: Sendable {
        public var time: Double
        public var features: Matrix
        public init(time: Double, features: Matrix) {
            self.time = time
            self.features = features
        }
    }

    /// The decoder's input for one question: ids and embeddings with the features at the placeholders.
    public func prompt(frames: [Frame], question: String) throws -> DecoderPrompt {
        let ids = try videoPrompt.ids(frameTokens: frames.map(\.features.rows), question: question, tokenizer: language.tokenizer)
        let rows = ids.indices.filter { ids[$0] == placeholderID }
        let width = language.model.configuration.hiddenSize
        var storage: [Float] = []
        storage.reserveCapacity(rows.count * width)
        for (i, frame) in frames.enumerated() {
            guard frame.features.cols == width else {
                throw PipelineError.invalidOption(flag: "model",
                                                  cause: "frame \(i) features are \(frame.features.cols) wide, the language model's embeddings \(width)")
            }
            storage += frame.features.storage
        }
        guard rows.count * width == storage.count else {
            throw PipelineError.invalidOption(flag: "question",
                                              cause: "the prompt has \(rows.count) \(videoPrompt.placeholder) tokens for \(storage.count / max(1, width)) kept tokens (does the question contain \(videoPrompt.placeholder)?)")
        }
        let features = try Matrix(rows: rows.count, cols: width, storage: storage)
        return DecoderPrompt(ids: ids, embeddings: try language.model.embed(ids, injecting: features, at: rows))
    }

    /// Answers every question in order; `onText(q, piece)` streams question q's answer.
    public func answer(frames: [Frame], questions: [String], generation: GenerationOptions,
                       onText: (Int, String) -> Void) throws -> VideoAnswers {
        let prompts = try questions.map { try prompt(frames: frames, question: $0) }
        let batch = try language.model.answer(prompts: prompts, tokenizer: language.tokenizer, generation: generation, onText: onText)
        return VideoAnswers(batch, questions: questions, prompts: prompts)
    }

    /// HiPrune++'s prompt vector, as every family defines it (`DecoderModel.promptEmbedding`).
    public func promptEmbedding(question: String) throws -> [Float] {
        try language.model.promptEmbedding(question: question, tokenizer: language.tokenizer)
    }

    public var stopTokens: Set<Int> { language.stopTokens }
}

extension LlavaVideoAnswering: VideoAnswerer {
    /// A pruned frame's placeholder rows: the one view's kept features (LLaVA-1.5, LLaVA-NeXT-Video;
    /// with "full", LLaVA-1.5's CLS row first), or AnyRes's packing of the base and crop views with
    /// image_newline (LLaVA-NeXT).
    public func packed(_ frame: PrunedFrame) throws -> Frame {
        if frame.views.count == 1, let view = frame.views.first, view.place == .frame {
            guard let leading = view.leading else { return Frame(time: frame.time, features: view.features) }
            return Frame(time: frame.time, features: try Matrix(rows: leading.rows + view.features.rows, cols: view.features.cols,
                                                                storage: leading.storage + view.features.storage))
        }
        guard let imageNewline else {
            throw PipelineError.invalidOption(flag: "model", cause: "frame \(frame.index) has \(frame.views.count) views; this model has no image_newline to pack them")
        }
        let views = frame.views.map { v -> AnyResPacking.View in
            var crop: (row: Int, col: Int)? = nil
            if case let .crop(row, col, _) = v.place { crop = (row, col) }
            return AnyResPacking.View(crop: crop, grid: v.selection.grid, kept: v.selection.indices, features: v.features)
        }
        return Frame(time: frame.time, features: try AnyResPacking.pack(views, newline: imageNewline))
    }

    public func answer(frames: [PrunedFrame], duration: Double, questions: [String], generation: GenerationOptions,
                       onText: (Int, String) -> Void) throws -> VideoAnswers {
        try answer(frames: frames.map(packed), questions: questions, generation: generation, onText: onText)
    }
}
