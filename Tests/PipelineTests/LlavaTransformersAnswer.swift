import Pipeline
import TestSupport
import VLM
import XCTest

extension XCTestCase {
    /// The LLaVA families' end-to-end check against transformers fed the same kept features: the
    /// greedy answer to `question` on `frames` is token-identical to `tokens`, and the prompt's
    /// first logits are within 1e-4 (relative to the largest) of `firstLogits`.
    func assertAnswerMatchesTransformers(_ answering: LlavaVideoAnswering, frames: [LlavaVideoAnswering.Frame], question: String,
                                         tokens: [Int], firstLogits: [Float],
                                         file: StaticString = #filePath, line: UInt = #line) throws {
        let options = GenerationOptions(maxNewTokens: tokens.count, stopTokens: [])
        let result = try answering.answer(frames: frames, questions: [question], generation: options) { _, _ in }
        XCTAssertEqual(result.answers.first?.tokens, tokens, "greedy tokens", file: file, line: line)
        let prompt = try answering.prompt(frames: frames, question: question)
        let session = try DecoderSession(model: answering.language.model, context: 512)
        try session.prefill(embeddings: prompt.embeddings)
        let scale = try XCTUnwrap(firstLogits.map(abs).max(), file: file, line: line)
        let worst = try XCTUnwrap(zipSameLength(session.logits, firstLogits).map { abs($0 - $1) }.max(), file: file, line: line)
        XCTAssertLessThan(worst / scale, 1e-4, "first logits", file: file, line: line)
    }
}
