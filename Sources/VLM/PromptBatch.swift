// Several questions about one video, any family: their prompts agree up to the first row where
// the token ids (or, under M-RoPE, the positions) differ. That prefix — system text and every
// frame's kept features — is prefilled once; each question continues from a copy of its cache.
// The prefix is found on token ids, not text, so each question's tokens are exactly those of its
// own full prompt (byte-level BPE may merge across a text boundary).
import Foundation
import Tensor

/// A prompt ready for the decoder.
public struct DecoderPrompt: Sendable {
    public var ids: [Int]
    /// [ids.count, hidden]: token embeddings with visual features in place.
    public var embeddings: Matrix
    /// Rotary positions of the rows; nil: 0, 1, 2, …
    public var positions: [MRoPEPosition]?
    /// Where generation continues (M-RoPE: after the whole unpruned video); nil: after the last row.
    public var nextPosition: Int?

    public init(ids: [Int], embeddings: Matrix, positions: [MRoPEPosition]? = nil, nextPosition: Int? = nil) {
        self.ids = ids
        self.embeddings = embeddings
        self.positions = positions
        self.nextPosition = nextPosition
    }
}

/// One prompt's answer and what it cost.
public struct PromptAnswer: Sendable {
    public var text: String
    public var generation: GenerationResult
    /// Prefill of this prompt's own rows (the shared prefix counted apart).
    public var prefillSeconds: Double
}

public struct PromptBatchAnswers: Sendable {
    public var answers: [PromptAnswer]
    /// Rows prefilled once for every prompt.
    public var sharedPrefixRows: Int
    public var sharedPrefixSeconds: Double
}

extension DecoderModel {
    /// Answers every prompt in order, sharing the longest common prefix's prefill;
    /// `onText(p, piece)` streams prompt p's answer (never splitting a UTF-8 character).
    public func answer(prompts: [DecoderPrompt], tokenizer: Tokenizer, generation: GenerationOptions,
                       onText: (Int, String) -> Void = { _, _ in }) throws -> PromptBatchAnswers {
        guard let first = prompts.first else { return PromptBatchAnswers(answers: [], sharedPrefixRows: 0, sharedPrefixSeconds: 0) }
        for (i, p) in prompts.enumerated() {
            guard !p.ids.isEmpty, p.embeddings.rows == p.ids.count, p.positions.map({ $0.count == p.ids.count }) ?? true else {
                throw VLMError.invalidArgument(name: "prompt \(i)", cause: "\(p.ids.count) ids, \(p.embeddings.rows) embedding rows, \(p.positions?.count ?? p.ids.count) positions")
            }
        }
        func position(_ p: DecoderPrompt, _ row: Int) -> MRoPEPosition { p.positions?[row] ?? MRoPEPosition(text: row) }
        var shared = first.ids.count
        for p in prompts.dropFirst() {
            var n = 0
            while n < min(shared, p.ids.count), p.ids[n] == first.ids[n], position(p, n) == position(first, n) { n += 1 }
            shared = n
        }
        // A prompt's own part needs at least one row: its logits start the answer.
        shared = min(shared, prompts.map(\.ids.count).min()! - 1)
        let shape = decoder.shape
        let longest = prompts.map(\.ids.count).max()!
        // The answer is bounded by the context (--max-tokens may be anything up to Int.max).
        guard longest < shape.maxPositions else { throw VLMError.contextOverflow(tokens: longest, context: shape.maxPositions) }
        var generation = generation
        generation.maxNewTokens = min(generation.maxNewTokens, shape.maxPositions - longest)
        let context = min(shape.maxPositions, longest + generation.maxNewTokens + 1)

        func prefill(_ session: DecoderSession, _ p: DecoderPrompt, _ range: Range<Int>) throws {
            try session.prefill(embeddings: p.embeddings.rows(range), positions: range.map { position(p, $0) })
        }
        let prefix = try DecoderSession(model: self, context: context)
        let prefixStart = DispatchTime.now()
        if shared > 0 { try prefill(prefix, first, 0..<shared) }
        let prefixSeconds = seconds(since: prefixStart)

        var answers: [PromptAnswer] = []
        for (i, p) in prompts.enumerated() {
            let session = DecoderSession(model: self, cache: prefix.cache)
            let start = DispatchTime.now()
            try prefill(session, p, shared..<p.ids.count)
            if let next = p.nextPosition { session.cache.nextPosition = next }
            let prefillSeconds = seconds(since: start)
            var detokenizer = StreamingDetokenizer(tokenizer: tokenizer)
            var text = ""
            let result = try session.continueGeneration(history: p.ids, options: generation) { token in
                let piece = detokenizer.append(token)
                if !piece.isEmpty {
                    text += piece
                    onText(i, piece)
                }
                // A cancelled task (a server's client went away) stops between tokens.
                return !Task.isCancelled
            }
            let tail = detokenizer.finish()
            if !tail.isEmpty {
                text += tail
                onText(i, tail)
            }
            answers.append(PromptAnswer(text: text, generation: result, prefillSeconds: prefillSeconds))
        }
        return PromptBatchAnswers(answers: answers, sharedPrefixRows: shared, sharedPrefixSeconds: prefixSeconds)
    }
}
