import Foundation
import Pipeline
import Prune
import Tensor
import Vision
import VLM
import TestSupport
import XCTest

/// LLaVA-NeXT-Video against transformers on tools/make_llava_fixtures.py's llava-next-video-tiny
/// (llava-hf's `vision_tower.vision_model.*` layout): the 24 × 24 CLIP grid pooled 2 × 2 before the
/// projector, scores pooled by mean, HiPrune's published selection on the pooled grid, and the
/// `<video>` prompt's greedy answer.
final class LlavaNextVideoTests: XCTestCase {
    static let directory = Fixtures.path("llava-next-video-tiny")

    struct Reference: Decodable {
        struct Frame: Decodable {
            var time: Double
            var width: Int
            var height: Int
            var kept: [Int]
        }
        var object_layer: Int
        var deep_layer: Int
        var question: String
        var text: String
        var ids: [Int]
        var tokens: [Int]
        var first_logits: [Float]
        var frames: [Frame]
    }

    func loadReference() throws -> Reference {
        try JSONDecoder().decode(Reference.self, from: Data(contentsOf: URL(fileURLWithPath: Self.directory + "/reference.json")))
    }


    /// Each reference frame encoded here: its one view.
    func views() throws -> [EncodedView] {
        let reference = try loadReference()
        let model = try LlavaNextVideoVisionModel.load(directory: Self.directory)
        let file = try SafeTensorsFile(path: Self.directory + "/reference.safetensors")
        return try reference.frames.indices.map { i in
            let rgb = try file.int32s("input.\(i)").map { UInt8($0) }
            let frame = try model.encode([RGBImage(width: 48, height: 48, rgb: rgb)],
                                         scoreLayers: [reference.object_layer, reference.deep_layer])
            XCTAssertEqual(frame.views.count, 1)
            return frame.views[0]
        }
    }

    func testPooledFeaturesAndScoresMatchTransformers() throws {
        let reference = try loadReference()
        let file = try SafeTensorsFile(path: Self.directory + "/reference.safetensors")
        for (i, view) in try views().enumerated() {
            XCTAssertEqual(view.grid, TokenGrid(rows: 12, cols: 12))
            XCTAssertEqual(view.place, .frame)
            XCTAssertLessThanOrEqual(relativeError(view.features.storage, try file.floats("pooled.\(i)")), 1e-4, "frame \(i)")
            for layer in [reference.object_layer, reference.deep_layer] {
                let mine = try XCTUnwrap(view.scores[layer]), theirs = try file.floats("scores.\(i).\(layer)")
                XCTAssertLessThanOrEqual(zipSameLength(mine, theirs).map { abs($0 - $1) }.max()!, 1e-5, "frame \(i) layer \(layer)")
            }
        }
    }

    func testSelectionAndGreedyAnswerMatchTransformers() throws {
        let reference = try loadReference()
        let answering = try LlavaVideoAnswering.load(directory: Self.directory)
        XCTAssertEqual(answering.videoPrompt.layout, .video)
        var frames: [LlavaVideoAnswering.Frame] = []
        for (view, f) in zipSameLength(try views(), reference.frames) {
            let selection = try HiPrune(alpha: 1.0, mode: .reference)
                .select(objectScores: try XCTUnwrap(view.scores[reference.object_layer]),
                        deepScores: try XCTUnwrap(view.scores[reference.deep_layer]), grid: view.grid, budget: .count(48))
            XCTAssertEqual(selection.indices, f.kept)
            var kept = Matrix(rows: f.kept.count, cols: view.features.cols)
            for (r, k) in f.kept.enumerated() { kept.storage.replaceSubrange((r * kept.cols)..<((r + 1) * kept.cols), with: view.features.row(k)) }
            frames.append(LlavaVideoAnswering.Frame(time: f.time, features: kept))
        }
        XCTAssertEqual(try answering.videoPrompt.text(frameTokens: frames.map(\.features.rows), question: reference.question),
                       reference.text)
        let prompt = try answering.prompt(frames: frames, question: reference.question)
        XCTAssertEqual(prompt.ids, reference.ids)
        try assertAnswerMatchesTransformers(answering, frames: frames, question: reference.question,
                                            tokens: reference.tokens, firstLogits: reference.first_logits)
    }
}
