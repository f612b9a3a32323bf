import Foundation
@testable import Pipeline
import Prune
import Tensor
import Vision
import VLM
import TestSupport
import XCTest

/// LLaVA-NeXT (AnyRes) against transformers on tools/make_llava_fixtures.py's llava-next-tiny: a
/// Mistral decoder with tied embeddings under transformers 5's module names, 32-px crops in 4-px
/// patches, pinpoints 1×2, 2×1 and 2×2 crops.
final class LlavaNextTests: XCTestCase {
    static let directory = Fixtures.path("llava-next-tiny")

    struct Reference: Decodable {
        struct View: Decodable {
            var place: Place
            var rows: [Int]
            var cols: [Int]
        }
        /// "base" or [row, col].
        enum Place: Decodable, Equatable {
            case base
            case crop(Int, Int)
            init(from decoder: Decoder) throws {
                let c = try decoder.singleValueContainer()
                if let s = try? c.decode(String.self), s == "base" { self = .base; return }
                let rc = try c.decode([Int].self)
                self = .crop(rc[0], rc[1])
            }
        }
        struct Frame: Decodable {
            var width: Int
            var height: Int
            var views: [View]
        }
        struct Question: Decodable {
            var frame: Int
            var time: Double
            var kept: [[Int]]
            var question: String
            var text: String
            var ids: [Int]
            var tokens: [Int]
            var first_logits: [Float]
        }
        var frames: [Frame]
        var question: Question
    }

    func loadReference() throws -> Reference {
        try JSONDecoder().decode(Reference.self, from: Data(contentsOf: URL(fileURLWithPath: Self.directory + "/reference.json")))
    }


    /// Frame i's views from the reference's pixel values (transformers' processor), so that features
    /// compare at 1e-4; our own preprocessing is compared with those pixels apart.
    func views(frame i: Int, _ model: LlavaNextVisionModel) throws -> [LlavaNextVisionModel.View] {
        let reference = try loadReference()
        let file = try SafeTensorsFile(path: Self.directory + "/reference.safetensors")
        let rgb = try file.int32s("input.\(i)").map { UInt8($0) }
        let (layout, mine) = try model.pixelValues(width: reference.frames[i].width, height: reference.frames[i].height, rgb: rgb)
        let theirs = try file.floats("pixels.\(i)")
        let plane = theirs.count / mine.count
        let views = (0..<mine.count).map { Array(theirs[($0 * plane)..<(($0 + 1) * plane)]) }
        // One uint8 level at most (torch's uint8 kernel rounds with fixed-point weights): 1 / (255 · std).
        for (a, b) in zipSameLength(mine, views) {
            XCTAssertEqual(a.count, b.count)
            XCTAssertLessThanOrEqual(zipSameLength(a, b).map { abs($0 - $1) }.max() ?? 0, 0.0153, "frame \(i) pixels")
        }
        return try model.encodeViews(layout: layout, pixelValues: views, scoreLayers: [1, 2])
    }

    /// Views as Swift cuts them: the base, then the unpadded part of every crop, for a wide, a tall
    /// and a near-square frame.
    func testViewsFollowTheUnpaddedCropMap() throws {
        let reference = try loadReference()
        let model = try LlavaNextVisionModel.load(directory: Self.directory)
        XCTAssertEqual(model.configuration.modelType, "llava_next")
        XCTAssertEqual(reference.frames.count, 3)
        for (i, frame) in reference.frames.enumerated() {
            let views = try views(frame: i, model)
            XCTAssertEqual(views.count, frame.views.count, "frame \(i)")
            for (v, expected) in zipSameLength(views, frame.views) {
                let place: Reference.Place = v.crop.map { .crop($0.row, $0.col) } ?? .base
                XCTAssertEqual(place, expected.place, "frame \(i)")
                let rows = v.crop?.rows ?? 0..<8, cols = v.crop?.cols ?? 0..<8
                XCTAssertEqual([rows.lowerBound, rows.upperBound], expected.rows, "frame \(i) \(place)")
                XCTAssertEqual([cols.lowerBound, cols.upperBound], expected.cols, "frame \(i) \(place)")
                XCTAssertEqual(v.grid.count, rows.count * cols.count)
                XCTAssertEqual(v.features.rows, v.grid.count)
                for layer in [1, 2] { XCTAssertEqual(v.scores[layer]?.count, v.grid.count) }
                if let crop = v.crop {
                    XCTAssertTrue(crop.rect.width > 0 && crop.rect.height > 0 && crop.rect.x + crop.rect.width <= frame.width
                                  && crop.rect.y + crop.rect.height <= frame.height, "\(crop.rect)")
                }
            }
        }
    }

    /// Nothing pruned, the packing equals transformers' pack_image_features (newlines included).
    func testPackedFeaturesMatchTransformersForThreeAspectRatios() throws {
        let model = try LlavaNextVisionModel.load(directory: Self.directory)
        let answering = try LlavaVideoAnswering.load(directory: Self.directory)
        let newline = try XCTUnwrap(answering.imageNewline)
        let reference = try SafeTensorsFile(path: Self.directory + "/reference.safetensors")
        for i in 0..<3 {
            let views = try views(frame: i, model).map {
                AnyResPacking.View(crop: $0.crop.map { ($0.row, $0.col) }, grid: $0.grid, kept: Array(0..<$0.grid.count), features: $0.features)
            }
            let packed = try AnyResPacking.pack(views, newline: newline)
            let expected = try reference.floats("packed.\(i)")
            XCTAssertEqual(packed.count, expected.count, "frame \(i)")
            XCTAssertLessThanOrEqual(relativeError(packed.storage, expected), 1e-4, "frame \(i)")
        }
    }

    /// The reference question's frame pruned as reference.json keeps it (each view a third of its
    /// tokens), its views encoded by `model` and packed with `answering`'s image_newline.
    func prunedQuestionFrames(_ model: LlavaNextVisionModel, _ answering: LlavaVideoAnswering) throws -> [LlavaVideoAnswering.Frame] {
        let q = try loadReference().question
        let views = try views(frame: q.frame, model)
        XCTAssertEqual(views.count, q.kept.count)
        let pruned = zipSameLength(views, q.kept).map { v, kept in
            var rows = Matrix(rows: kept.count, cols: v.features.cols)
            for (r, k) in kept.enumerated() { rows.storage.replaceSubrange((r * rows.cols)..<((r + 1) * rows.cols), with: v.features.row(k)) }
            return AnyResPacking.View(crop: v.crop.map { ($0.row, $0.col) }, grid: v.grid, kept: kept, features: rows)
        }
        let packed = try AnyResPacking.pack(pruned, newline: try XCTUnwrap(answering.imageNewline))
        return [LlavaVideoAnswering.Frame(time: q.time, features: packed)]
    }

    /// A pruned frame (each view keeps a third of its tokens): the packed rows at the `<image>`
    /// positions of the Mistral prompt give transformers' 20 greedy tokens.
    func testPrunedFrameGreedyAnswerIsTokenIdenticalToTransformers() throws {
        let q = try loadReference().question
        let model = try LlavaNextVisionModel.load(directory: Self.directory)
        let answering = try LlavaVideoAnswering.load(directory: Self.directory)
        XCTAssertEqual(answering.videoPrompt.layout, .images)
        XCTAssertTrue(answering.videoPrompt.template.source.hasSuffix("chat_template.json"))
        let frames = try prunedQuestionFrames(model, answering)
        XCTAssertEqual(try answering.videoPrompt.text(frameTokens: [frames[0].features.rows], question: q.question), q.text)
        let prompt = try answering.prompt(frames: frames, question: q.question)
        XCTAssertEqual(prompt.ids, q.ids)
        try assertAnswerMatchesTransformers(answering, frames: frames, question: q.question, tokens: q.tokens, firstLogits: q.first_logits)
    }

    /// The same question on the GGUF pair llama.cpp's legacy scripts made of this directory
    /// (Tests/Fixtures/mmproj-llava-next): the pair's tokenizer gives llama.cpp's own ids for the
    /// prompt (llama-tokenize's, one "▁" more after the <image> run than the directory's Metaspace
    /// tokenizer), and those ids with the mmproj encoder's packed rows give transformers' greedy
    /// tokens and first logits for the same ids (tools/make_llava_next_gguf_question.py).
    func testPrunedFrameOnTheGGUFPairAnswersAsTransformersOnLlamaCppsIds() throws {
        struct LlamaCppQuestion: Decodable {
            var text: String
            var ids: [Int]
            var tokens: [Int]
            var first_logits: [Float]
        }
        let q = try loadReference().question
        let folder = Fixtures.path("mmproj-llava-next")
        let expected = try JSONDecoder().decode(LlamaCppQuestion.self,
                                                from: Data(contentsOf: URL(fileURLWithPath: folder + "/question-llama-cpp.json")))
        XCTAssertEqual(expected.text, q.text)
        XCTAssertNotEqual(expected.ids, q.ids, "llama.cpp's ids should differ from the directory's here")
        let mmproj = try MmprojFile(path: folder + "/mmproj-f32.gguf")
        let model = try LlavaNextVisionModel.load(mmproj: mmproj, precision: .f32)
        let answering = try LlavaVideoAnswering.load(text: folder + "/text-f32.gguf", mmproj: mmproj, precision: .stored)
        let frames = try prunedQuestionFrames(model, answering)
        let prompt = try answering.prompt(frames: frames, question: q.question)
        XCTAssertEqual(prompt.ids, expected.ids)
        try assertAnswerMatchesTransformers(answering, frames: frames, question: q.question, tokens: expected.tokens,
                                            firstLogits: expected.first_logits)
    }

    func testBestResolutionFollowsTransformers() {
        let pinpoints = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]
        // A 16:9 frame fits 672 × 672 best (most pixels kept); a 3:1 panorama the 336 × 1008.
        XCTAssertEqual(AnyResLayout.bestResolution(width: 1920, height: 1080, pinpoints: pinpoints)?.height, 672)
        XCTAssertEqual(AnyResLayout.bestResolution(width: 1920, height: 1080, pinpoints: pinpoints)?.width, 672)
        XCTAssertEqual(AnyResLayout.bestResolution(width: 1500, height: 500, pinpoints: pinpoints)?.width, 1008)
        XCTAssertEqual(AnyResLayout.bestResolution(width: 1500, height: 500, pinpoints: pinpoints)?.height, 336)
    }
}
