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
        struct Answer: Decodable {
            var text: String
            var ids: [Int]
            var tokens: [Int]
            var first_logits: [Float]
        }
        /// The same question with vision_feature_select_strategy "full" (CLS row ahead of each frame's kept rows).
        var full: Answer
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

    /// transformers' LlavaProcessor: the checkpoint's chat_template.json rendered for one image part
    /// per frame and the question, each `<image>` expanded to the frame's kept count, BOS first.
    func testPromptTextAndIdsMatchTheProcessor() throws {
        let reference = try loadReference()
        let answering = try LlavaVideoAnswering.load(directory: Self.directory)
        let prompt = answering.videoPrompt
        XCTAssertEqual(prompt.layout, .images)
        XCTAssertEqual(try prompt.chat(frames: 2, question: "Why?"), "USER: <image>\n<image>\nWhy? ASSISTANT:")
        XCTAssertEqual(try prompt.text(frameTokens: reference.frames.map(\.kept.count), question: reference.question), reference.text)
        XCTAssertEqual(reference.ids.first, answering.language.tokenizer.bosID)
        let decoderPrompt = try answering.prompt(frames: try frames(reference), question: reference.question)
        XCTAssertEqual(decoderPrompt.ids, reference.ids)
    }

    func testGreedyAnswerIsTokenIdenticalToTransformers() throws {
        let reference = try loadReference()
        let answering = try LlavaVideoAnswering.load(directory: Self.directory)
        try assertAnswerMatchesTransformers(answering, frames: try frames(reference), question: reference.question,
                                            tokens: reference.tokens, firstLogits: reference.first_logits)
    }

    /// vision_feature_select_strategy "full": the CLS row stays (never pruned), ahead of each frame's
    /// kept rows, as transformers feeds it; features, prompt ids and greedy tokens match.
    func testFullStrategyKeepsTheCLSRowLikeTransformers() throws {
        let reference = try loadReference()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("llava-full-\(UUID().uuidString)")
        try FileManager.default.copyItem(atPath: Self.directory, toPath: directory.path)
        defer { try? FileManager.default.removeItem(at: directory) }
        let configFile = directory.appendingPathComponent("config.json")
        var config = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: configFile)) as? [String: Any])
        config["vision_feature_select_strategy"] = "full"
        try JSONSerialization.data(withJSONObject: config).write(to: configFile)

        let vision = try LlavaVisionModel.load(directory: directory.path)
        let file = try SafeTensorsFile(path: Self.directory + "/reference.safetensors")
        let rgb = try file.int32s("input.rgb").map { UInt8($0) }
        let view = try vision.encode(width: 48, height: 48, rgb: rgb, scoreLayers: []).views[0]
        XCTAssertEqual(view.grid, TokenGrid(rows: 24, cols: 24))
        XCTAssertEqual(view.features.rows, 576, "the grid's rows are the patches")
        let cls = try XCTUnwrap(view.leading)
        XCTAssertEqual(cls.rows, 1)
        XCTAssertLessThanOrEqual(relativeError(cls.storage + view.features.storage, try file.floats("features_full")), 1e-4)

        let answering = try LlavaVideoAnswering.load(directory: directory.path)
        let frames = try reference.frames.map { f -> LlavaVideoAnswering.Frame in
            let v = try vision.encode(width: f.width, height: f.height, rgb: f.rgb.map { UInt8($0) }, scoreLayers: [1, 2]).views[0]
            let selection = try HiPrune(alpha: 0.1, mode: .reference)
                .select(objectScores: try XCTUnwrap(v.scores[1]), deepScores: try XCTUnwrap(v.scores[2]), grid: v.grid,
                        budget: .count(f.kept.count))
            XCTAssertEqual(selection.indices, f.kept)
            let pruned = PrunedFrame(index: 0, time: f.time, views: [PrunedView(place: .frame, selection: selection,
                                                                                features: v.features.gathering(rows: f.kept), leading: v.leading)])
            return try answering.packed(pruned)
        }
        XCTAssertEqual(frames.map(\.features.rows), reference.frames.map { $0.kept.count + 1 })
        let prompt = try answering.prompt(frames: frames, question: reference.question)
        XCTAssertEqual(prompt.ids, reference.full.ids)
        try assertAnswerMatchesTransformers(answering, frames: frames, question: reference.question,
                                            tokens: reference.full.tokens, firstLogits: reference.full.first_logits)
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
