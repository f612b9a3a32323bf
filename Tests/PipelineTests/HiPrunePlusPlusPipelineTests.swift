import Foundation
import TestSupport
import XCTest
@testable import Pipeline
import Prune
import Stream
import Vision
import VLM

/// HiPrune++ through the pipeline against transformers + numpy (tools/make_hiprune_pp_fixtures.py,
/// Tests/Fixtures/hiprune-pp/reference.json, on the smolvlm-vqa model and its three frames): the
/// prompt embedding of each question, the tokens each question keeps, and each question's answer
/// after the flow re-prunes the frames for it.
final class HiPrunePlusPlusPipelineTests: XCTestCase {
    struct Reference: Decodable {
        struct Frame: Decodable { var indices: [Int]; var roles: [String] }
        struct Question: Decodable {
            var question: String
            var ids: [Int]
            var prompt_embedding: [Float]
            var frames: [Frame]
            var tokens: [Int]
        }
        var budget: Int
        var alpha: Double
        var beta: Double
        var object_layer: Int
        var deep_layer: Int
        var times: [Double]
        var duration: Double
        var questions: [Question]
    }

    static let model = Fixtures.path("smolvlm-vqa")

    func reference() throws -> Reference {
        try JSONDecoder().decode(Reference.self, from: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("hiprune-pp", "reference.json"))))
    }

    /// The three frames of the smolvlm-vqa fixture (the ones the reference encoded), as encoded steps.
    func steps(_ reference: Reference, stage: PruningStage) throws -> [FrameAnalysis.Step] {
        let vqa = try Fixtures.json("smolvlm-vqa", "reference.json")
        let frames = try XCTUnwrap(vqa["frames"] as? [[String: Any]])
        XCTAssertEqual(frames.count, reference.times.count)
        let encoder = try SmolVLMVisionModel.load(directory: Self.model)
        return try zip(frames, reference.times).enumerated().map { i, pair in
            let (frame, time) = pair
            let width = try XCTUnwrap(frame["width"] as? Int), height = try XCTUnwrap(frame["height"] as? Int)
            let rgb = try XCTUnwrap(frame["rgb"] as? [Int]).map { UInt8($0) }
            let encoded = try encoder.encode([RGBImage(width: width, height: height, rgb: rgb)], scoreLayers: stage.scoreLayers)
            return FrameAnalysis.Step(index: i, frames: [VideoFrame(index: i, sourceFrameNumber: i, time: time, width: width,
                                                                    height: height, rgb: rgb)],
                                      encoded: encoded, encodeMilliseconds: 0, reusedFrom: nil)
        }
    }

    func stage(_ reference: Reference) throws -> PruningStage {
        let settings = PruneSettings(method: .hiprunePlusPlus, budget: .count(reference.budget), alpha: reference.alpha,
                                     objectLayer: reference.object_layer, deepLayer: reference.deep_layer, beta: reference.beta)
        return try PruningStage(settings: settings, encoder: try SmolVLMVisionModel.load(directory: Self.model))
    }

    /// Our ids and prompt embedding of each question equal transformers' (the embedding to 1e-6
    /// relative: it is a lookup and a mean), and the tokens HiPrune++ keeps on each frame, with
    /// their roles, equal the numpy selection from transformers' attentions and features.
    func testPromptEmbeddingsAndKeptTokensEqualTheReference() throws {
        let reference = try reference()
        XCTAssertEqual(reference.questions.count, 2)
        let answering = try VideoQuestionAnswering.load(directory: Self.model)
        var stage = try stage(reference)
        let steps = try steps(reference, stage: stage)
        for q in reference.questions {
            XCTAssertEqual(answering.language.tokenizer.encode(q.question), q.ids, q.question)
            let embedding = try answering.promptEmbedding(question: q.question)
            XCTAssertLessThan(relativeError(embedding, q.prompt_embedding), 1e-6, q.question)
            XCTAssertEqual(q.frames.count, steps.count)
            stage.reset()
            for (step, expected) in zip(steps, q.frames) {
                let (frame, _) = try stage.prune(step, promptEmbedding: embedding)
                let selection = frame.views[0].selection
                XCTAssertEqual(selection.indices, expected.indices, "\(q.question): frame \(step.index)")
                XCTAssertEqual(selection.roles.map(\.rawValue), expected.roles, "\(q.question): frame \(step.index)")
            }
        }
        XCTAssertTrue(reference.questions[0].frames.flatMap(\.roles).contains("prompt"), "prompt tokens are chosen")
        XCTAssertNotEqual(reference.questions[0].frames.map(\.indices), reference.questions[1].frames.map(\.indices),
                          "the questions keep different tokens")
    }

    /// Two questions under HiPrune++: the flow keeps the encoded frames, prunes them anew for each
    /// question, and each answer is transformers' greedy answer fed that question's kept features.
    func testEachQuestionIsAnsweredOnItsOwnSelection() throws {
        let reference = try reference()
        let answering = try VideoQuestionAnswering.load(directory: Self.model)
        let stage = try stage(reference)
        let steps = try steps(reference, stage: stage)
        var flow = try VideoQuestionFlow(answerer: answering, stage: stage, questions: reference.questions.map(\.question))
        XCTAssertTrue(flow.keepsEncodedFrames)
        let count = reference.questions[0].tokens.count
        let result = try flow.answer(.encoded(steps), duration: reference.duration,
                                     generation: GenerationOptions(maxNewTokens: count, stopTokens: [])) { _, _ in }
        XCTAssertEqual(result.answers.count, reference.questions.count)
        XCTAssertEqual(result.answers.map(\.tokens), reference.questions.map(\.tokens))
        XCTAssertEqual(result.frames.map { $0.views[0].selection.indices }, reference.questions[1].frames.map(\.indices),
                       "the frames reported are the last question's")
    }
}
