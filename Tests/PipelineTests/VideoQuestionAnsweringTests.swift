import Foundation
import TestSupport
import XCTest
@testable import Pipeline
@testable import Prune
import Tensor
import Vision
import VLM

/// The whole pruned VLM against transformers (tools/make_vqa_fixtures.py): our encoder and
/// connector, the kept rows placed at the `<image>` positions of our video prompt, our decoder.
final class VideoQuestionAnsweringTests: XCTestCase {
    struct Reference: Decodable {
        struct Frame: Decodable { var time: Double; var width: Int; var height: Int; var rgb: [UInt8]; var kept: [Int] }
        var duration: Double
        var question: String
        var text: String
        var ids: [Int]
        var tokens: [Int]
        var first_logits: [Float]
        var frames: [Frame]
    }

    static let directory = Fixtures.path("smolvlm-vqa")

    func loadReference() throws -> Reference {
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.directory + "/reference.json"))
        return try JSONDecoder().decode(Reference.self, from: data)
    }

    /// Our encoder's features of the fixture frames, pruned to the reference's kept indices.
    func prunedFrames(_ reference: Reference) throws -> [PrunedFrame] {
        let encoder = try SmolVLMVisionModel.load(directory: Self.directory)
        return try reference.frames.enumerated().map { i, frame in
            let encoded = try encoder.encode(width: frame.width, height: frame.height, rgb: frame.rgb, scoreLayers: [])
            var roles = [TokenRole?](repeating: nil, count: encoded.grid.count)
            for k in frame.kept { roles[k] = .kept }
            let selection = Selection(grid: encoded.grid, roleByToken: roles)
            return PrunedFrame(index: i, time: frame.time, selection: selection,
                               features: encoded.features.gathering(rows: selection.indices))
        }
    }

    func testPromptIdsMatchTheReference() throws {
        let reference = try loadReference()
        let answering = try VideoQuestionAnswering.load(directory: Self.directory)
        let (ids, embeddings) = try answering.prompt(frames: try prunedFrames(reference), duration: reference.duration,
                                                     question: reference.question)
        XCTAssertEqual(ids, reference.ids)
        XCTAssertEqual(embeddings.rows, ids.count)
    }

    func testGreedyAnswerIsTokenIdenticalToTransformers() throws {
        let reference = try loadReference()
        let answering = try VideoQuestionAnswering.load(directory: Self.directory)
        let frames = try prunedFrames(reference)
        // No stop token: all 20 reference tokens are compared.
        let options = GenerationOptions(maxNewTokens: reference.tokens.count, stopTokens: [])
        var streamed = ""
        let result = try answering.answer(frames: frames, duration: reference.duration, questions: [reference.question],
                                          generation: options) { _, piece in streamed += piece }
        XCTAssertEqual(result.answers[0].tokens, reference.tokens)
        XCTAssertEqual(streamed, answering.language.tokenizer.decode(reference.tokens, skipSpecialTokens: true))

        // The first answer token's logits, to float32 tolerance.
        let (_, embeddings) = try answering.prompt(frames: frames, duration: reference.duration, question: reference.question)
        let session = try DecoderSession(model: answering.language.model, context: 512)
        try session.prefill(embeddings: embeddings)
        let scale = reference.first_logits.map(abs).max()!
        let worst = zipSameLength(session.logits, reference.first_logits).map { abs($0 - $1) }.max()!
        XCTAssertLessThan(worst / scale, 1e-4)
    }

    func testSharedPrefixGivesTheSameAnswersAsSeparateRuns() throws {
        let reference = try loadReference()
        let answering = try VideoQuestionAnswering.load(directory: Self.directory)
        let frames = try prunedFrames(reference)
        let questions = [reference.question, "Which colour dominates?", "How many frames are there?"]
        let options = GenerationOptions(maxNewTokens: 12, stopTokens: [])
        let together = try answering.answer(frames: frames, duration: reference.duration, questions: questions,
                                            generation: options) { _, _ in }
        XCTAssertGreaterThan(together.sharedPrefixTokens, 40, "the video part of the prompt is shared")
        XCTAssertEqual(together.answers[0].tokens, Array(reference.tokens.prefix(12)))
        for (q, question) in questions.enumerated() {
            let alone = try answering.answer(frames: frames, duration: reference.duration, questions: [question],
                                             generation: options) { _, _ in }
            XCTAssertEqual(together.answers[q].tokens, alone.answers[0].tokens, "question \(q)")
            XCTAssertEqual(together.answers[q].reusedPrefixTokens, together.sharedPrefixTokens)
        }
    }

    func testImageTokenMismatchIsAClearError() throws {
        let reference = try loadReference()
        let answering = try VideoQuestionAnswering.load(directory: Self.directory)
        var frames = try prunedFrames(reference)
        frames[0].views[0].features = frames[0].views[0].features.rows(0..<1)
        XCTAssertThrowsError(try answering.prompt(frames: frames, duration: 1, question: "q")) { error in
            XCTAssertTrue("\(error)".contains("image tokens"), "\(error)")
        }
    }
}
