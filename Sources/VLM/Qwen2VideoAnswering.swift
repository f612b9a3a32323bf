// Answering a question about pruned Qwen2.5-VL temporal patches: the chat-template prompt with each
// patch's <|video_pad|> run shortened to its kept tokens, the kept features in place, M-RoPE
// positions sliced from the full video's, one prefill, then generation.
import Foundation
import Tensor

public struct Qwen2VideoAnswering: Sendable {
    public let model: Qwen2Model
    public let tokenizer: Tokenizer
    public let stopTokens: Set<Int>
    public let source: String

    /// One pruned temporal patch.
    public struct Patch: Sendable {
        public var rows: Int
        public var cols: Int
        /// Kept merged-token indices, raster order, ascending.
        public var kept: [Int]
        /// [kept.count, hidden]: the merger's output rows of the kept tokens, in `kept` order.
        public var features: Matrix
        /// Seconds of the patch's first frame.
        public var time: Double
        public init(rows: Int, cols: Int, kept: [Int], features: Matrix, time: Double) {
            self.rows = rows
            self.cols = cols
            self.kept = kept
            self.features = features
            self.time = time
        }
    }

    public struct Answer: Sendable {
        public var text: String
        public var tokens: [Int]
        public var promptTokens: Int
        /// The same prompt's length unpruned.
        public var fullPromptTokens: Int
        public var prefillSeconds: Double
        public var decodeSeconds: Double
        public var tokensPerSecond: Double
    }

    public init(directory: String, precision: WeightPrecision = .stored) throws(VLMError) {
        source = directory
        tokenizer = try Tokenizer(directory: directory)
        model = try Qwen2Model(directory: directory, precision: precision)
        guard tokenizer.count <= model.configuration.vocabularySize else {
            throw .malformed(file: directory, cause: "tokenizer has \(tokenizer.count) tokens, the model's vocabulary \(model.configuration.vocabularySize)")
        }
        stopTokens = StopTokens.read(directory: directory, configured: model.configuration.eosTokenIDs, tokenizer: tokenizer)
    }

    /// The language side of llama.cpp's Qwen2.5-VL pair: the text GGUF's decoder, tokenizer and chat
    /// template; the special tokens' ids are the tokenizer's (the GGUF records no config.json), the
    /// merge size the projector's.
    public init(gguf path: String, spatialMergeSize: Int, precision: WeightPrecision = .stored) throws(VLMError) {
        source = path
        let file = try GGUFFile(path: path)
        let tokenizer = try Tokenizer(gguf: file)
        var c = try Qwen2Configuration(gguf: file)
        func id(_ token: String) throws(VLMError) -> Int {
            guard let id = tokenizer.id(of: token) else { throw .missingField(file: path, field: "tokenizer.ggml.tokens entry \(token)") }
            return id
        }
        c.videoTokenID = try id(Qwen2VideoPrompt.videoPad)
        c.visionStartTokenID = try id("<|vision_start|>")
        c.visionEndTokenID = try id("<|vision_end|>")
        c.spatialMergeSize = spatialMergeSize
        self.tokenizer = tokenizer
        model = try Qwen2Model(gguf: file, configuration: c, precision: precision)
        guard tokenizer.count <= c.vocabularySize else {
            throw .malformed(file: path, cause: "tokenizer has \(tokenizer.count) tokens, the model's vocabulary \(c.vocabularySize)")
        }
        stopTokens = StopTokens.read(directory: nil, configured: c.eosTokenIDs, tokenizer: tokenizer)
    }

    /// second_per_grid_t from the patches' times: the spacing of consecutive patches (temporal
    /// patch size / sampled fps); one patch alone takes Qwen's default 2 frames at 2 fps = 1 s.
    public static func secondsPerTemporalPatch(_ times: [Double]) -> Double {
        guard times.count > 1, let first = times.first, let last = times.last, last > first else { return 1 }
        return (last - first) / Double(times.count - 1)
    }

    /// A question's prompt: the video prompt (ids, positions, unpruned length) and the decoder's
    /// input with the kept features at the video rows.
    public struct Prompt: Sendable {
        public var video: Qwen2VideoPrompt
        public var decoderPrompt: DecoderPrompt
    }

    public func prompt(patches: [Patch], question: String) throws(VLMError) -> Prompt {
        let prompt = try Qwen2VideoPrompt(tokenizer: tokenizer, configuration: model.configuration, question: question,
                                          patches: patches.map { .init(rows: $0.rows, cols: $0.cols, kept: $0.kept) },
                                          secondsPerTemporalPatch: Self.secondsPerTemporalPatch(patches.map(\.time)))
        let width = model.configuration.hiddenSize
        var storage: [Float] = []
        storage.reserveCapacity(prompt.videoRows.count * width)
        for (i, p) in patches.enumerated() {
            guard p.features.rows == p.kept.count, p.features.cols == width else {
                throw .invalidArgument(name: "temporal patch \(i) features",
                                       cause: "\(p.features.rows)x\(p.features.cols) for \(p.kept.count) kept tokens of width \(width)")
            }
            storage += p.features.storage
        }
        let features: Matrix
        do { features = try Matrix(rows: prompt.videoRows.count, cols: width, storage: storage) } catch {
            throw .invalidArgument(name: "video features", cause: "\(error)")
        }
        return Prompt(video: prompt, decoderPrompt: DecoderPrompt(ids: prompt.ids, embeddings: try prompt.embeddings(model: model, features: features),
                                                                  positions: prompt.positions, nextPosition: prompt.nextPosition))
    }

    /// Answers one question; `onText` streams the answer as it is generated.
    public func answer(patches: [Patch], question: String, generation: GenerationOptions,
                       onText: (String) -> Void = { _ in }) throws -> Answer {
        let prompt = try prompt(patches: patches, question: question)
        let batch = try model.answer(prompts: [prompt.decoderPrompt], tokenizer: tokenizer, generation: generation) { onText($1) }
        let a = batch.answers[0]
        return Answer(text: a.text, tokens: a.generation.tokens, promptTokens: prompt.video.ids.count,
                      fullPromptTokens: prompt.video.fullLength, prefillSeconds: a.prefillSeconds,
                      decodeSeconds: a.generation.decodeSeconds, tokensPerSecond: a.generation.tokensPerSecond)
    }

    /// HiPrune++'s prompt vector, as every family defines it (`DecoderModel.promptEmbedding`).
    public func promptEmbedding(question: String) throws(VLMError) -> [Float] {
        try model.promptEmbedding(question: question, tokenizer: tokenizer)
    }
}
