import Foundation
import Pipeline
import Prune
import Tensor
import Vision
import VLM
import TestSupport
import XCTest

/// The whole pruned LLaVA-1.5 pipeline against transformers (tools/make_llava_fixtures.py): frames
/// through the CLIP tower and projector, HiPrune's kept tokens at the `<image>` rows of the video
/// prompt, 20 greedy tokens.
final class LlavaAnsweringTests: XCTestCase {
    static let directory = Fixtures.path("llava-tiny")

    struct Reference: Decodable {
        struct Frame: Decodable {
            var time: Double
            var width: Int
            var height: Int
            var rgb: [Int]
            var kept: [Int]
        }
        var frames: [Frame]
        var question: String
        var text: String
        var ids: [Int]
        var tokens: [Int]
        var first_logits: [Float]
    }

    func loadReference() throws -> Reference {
        try JSONDecoder().decode(Reference.self, from: Data(contentsOf: URL(fileURLWithPath: Self.directory + "/reference.json")))
    }

    /// Each frame encoded here, its kept rows taken in ascending order.
    func frames(_ reference: Reference) throws -> [LlavaVideoAnswering.Frame] {
        let vision = try LlavaVisionModel.load(directory: Self.directory)
        return try reference.frames.map { f in
            let encoded = try vision.encode(width: f.width, height: f.height, rgb: f.rgb.map { UInt8($0) }, scoreLayers: []).views[0]
            var kept = Matrix(rows: f.kept.count, cols: encoded.features.cols)
            for (r, index) in f.kept.enumerated() {
                kept.storage.replaceSubrange((r * kept.cols)..<((r + 1) * kept.cols), with: encoded.features.row(index))
            }
            return LlavaVideoAnswering.Frame(time: f.time, features: kept)
        }
    }

    func testPromptTextAndIdsMatchTheReference() throws {
        let reference = try loadReference()
        let prompt = LlavaVideoPrompt(layout: .timedImages, frames: reference.frames.map { .init(time: $0.time, tokens: $0.kept.count) })
        XCTAssertEqual(prompt.text(question: reference.question), reference.text)
        let answering = try LlavaVideoAnswering.load(directory: Self.directory)
        let decoderPrompt = try answering.prompt(frames: try frames(reference), question: reference.question)
        XCTAssertEqual(decoderPrompt.ids, reference.ids)
    }

    func testGreedyAnswerIsTokenIdenticalToTransformers() throws {
        let reference = try loadReference()
        let answering = try LlavaVideoAnswering.load(directory: Self.directory)
        let frames = try frames(reference)
        let options = GenerationOptions(maxNewTokens: reference.tokens.count, stopTokens: [])
        let result = try answering.answer(frames: frames, questions: [reference.question], generation: options) { _, _ in }
        XCTAssertEqual(result.answers[0].tokens, reference.tokens)

        let prompt = try answering.prompt(frames: frames, question: reference.question)
        let session = try DecoderSession(model: answering.language.model, context: 512)
        try session.prefill(embeddings: prompt.embeddings)
        let scale = reference.first_logits.map(abs).max()!
        let worst = zipSameLength(session.logits, reference.first_logits).map { abs($0 - $1) }.max()!
        XCTAssertLessThan(worst / scale, 1e-4)
    }

    func testPlaceholderCountMismatchIsAClearError() throws {
        let reference = try loadReference()
        let answering = try LlavaVideoAnswering.load(directory: Self.directory)
        var frames = try frames(reference)
        frames[0].features = frames[0].features.rows(0..<1)
        XCTAssertThrowsError(try answering.prompt(frames: frames, question: "what is <image>?")) { error in
            XCTAssertTrue("\(error)".contains("<image> tokens"), "\(error)")
        }
    }
}
