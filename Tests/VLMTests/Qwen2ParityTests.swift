import Foundation
import Prune
import Tensor
import Vision
import VLM
import TestSupport
import XCTest

/// The Qwen2 decoder under M-RoPE, the pruned video prompt and the whole pruned VLM against
/// transformers (tools/make_qwen_fixtures.py: tiny random Qwen2.5-VL, three aspect ratios).
final class Qwen2ParityTests: XCTestCase {
    static let directory = Fixtures.path("qwen25vl-tiny")
    static let cases: [(name: String, width: Int, height: Int, frames: Int)] =
        [("wide", 196, 112, 4), ("classic", 112, 84, 3), ("tall", 112, 196, 2)]

    func positions(_ flat: [Int32]) -> [MRoPEPosition] {
        let n = flat.count / 3
        return (0..<n).map { MRoPEPosition(t: Int(flat[$0]), h: Int(flat[n + $0]), w: Int(flat[2 * n + $0])) }
    }

    /// The fixture script's frame.
    static func frame(width: Int, height: Int, index: Int) -> [UInt8] { syntheticFrame(width: width, height: height, index: index) }

    func testLogitsUnderMRoPEMatchTransformers() throws {
        let model = try Qwen2Model(directory: Self.directory)
        let reference = try SafeTensorsFile(path: Self.directory + "/reference.safetensors")
        XCTAssertEqual(model.configuration.mropeSection, [2, 3, 3])
        for c in Self.cases {
            let ids = try reference.int32s("\(c.name).input_ids").map(Int.init)
            let pos = positions(try reference.int32s("\(c.name).position_ids"))
            XCTAssertTrue(pos.contains { $0.t != $0.h || $0.h != $0.w }, "\(c.name): video rows have 3-D positions")
            let features = try reference.matrix("\(c.name).features")
            let rows = ids.indices.filter { ids[$0] == model.configuration.videoTokenID }
            var embeddings = try model.embed(ids)
            for (i, r) in rows.enumerated() {
                for col in 0..<embeddings.cols { embeddings[r, col] = features[i, col] }
            }
            let session = try DecoderSession(model: model, context: 256)
            let hidden = try session.prefill(embeddings: embeddings, positions: pos, keepHidden: true)
            XCTAssertLessThanOrEqual(relativeError(hidden.storage, try reference.floats("\(c.name).final_hidden")), 1e-4, "\(c.name) hidden")
            let logitRows = try reference.int32s("\(c.name).logit_rows").map(Int.init)
            let all = try session.logits(ofHidden: hidden)
            let picked = logitRows.flatMap { all.row($0) }
            XCTAssertLessThanOrEqual(relativeError(picked, try reference.floats("\(c.name).logits")), 1e-4, "\(c.name) logits")
            XCTAssertLessThanOrEqual(relativeError(session.logits, all.row(ids.count - 1)), 1e-5, "\(c.name) last-row logits")
        }
    }

    func testPromptAndPositionsMatchTheReference() throws {
        let tokenizer = try Tokenizer(directory: Self.directory)
        let config = try Qwen2Configuration(configFile: Self.directory + "/config.json")
        let reference = try SafeTensorsFile(path: Self.directory + "/reference.safetensors")
        for c in Self.cases {
            let grid = try reference.int32s("\(c.name).grid").map(Int.init)
            let rows = grid[1] / 2, cols = grid[2] / 2
            let full = (0..<grid[0]).map { _ in Qwen2VideoPrompt.TemporalPatch(rows: rows, cols: cols, kept: Array(0..<(rows * cols))) }
            let prompt = try Qwen2VideoPrompt(tokenizer: tokenizer, configuration: config, question: "What happens in the video?",
                                              patches: full, secondsPerTemporalPatch: 1.0)
            XCTAssertEqual(prompt.ids, try reference.int32s("\(c.name).input_ids").map(Int.init), c.name)
            XCTAssertEqual(prompt.positions, positions(try reference.int32s("\(c.name).position_ids")), c.name)
            XCTAssertEqual(prompt.fullLength, prompt.ids.count)

            let kept = try (0..<grid[0]).map { try reference.int32s("\(c.name).kept.\($0)").map(Int.init) }
            let pruned = try Qwen2VideoPrompt(tokenizer: tokenizer, configuration: config, question: "What happens in the video?",
                                              patches: kept.map { .init(rows: rows, cols: cols, kept: $0) }, secondsPerTemporalPatch: 1.0)
            XCTAssertEqual(pruned.ids, try reference.int32s("\(c.name).pruned_ids").map(Int.init), c.name)
            XCTAssertEqual(pruned.positions, positions(try reference.int32s("\(c.name).pruned_positions")), "\(c.name): sliced, not recomputed")
            XCTAssertEqual(pruned.videoRows.count, kept.reduce(0) { $0 + $1.count })
            XCTAssertEqual(pruned.nextPosition, prompt.nextPosition, "generation continues after the full video")
            XCTAssertEqual(pruned.fullLength, prompt.ids.count)
        }
    }

    func testWholePrunedVLMGreedyTokensMatch() throws {
        let vision = try Qwen25VLVisionModel.load(directory: Self.directory)
        let model = try Qwen2Model(directory: Self.directory)
        let tokenizer = try Tokenizer(directory: Self.directory)
        let reference = try SafeTensorsFile(path: Self.directory + "/reference.safetensors")
        for c in Self.cases {
            let clip = (0..<c.frames).map { (width: c.width, height: c.height, rgb: Self.frame(width: c.width, height: c.height, index: $0)) }
            let encoded = try vision.encode(clip: clip, scoreLayers: [4])
            var patches: [Qwen2VideoPrompt.TemporalPatch] = []
            var keptRows: [Float] = []
            for (tp, frame) in encoded.enumerated() {
                let kept = try reference.int32s("\(c.name).kept.\(tp)").map(Int.init)
                patches.append(.init(rows: frame.grid.rows, cols: frame.grid.cols, kept: kept))
                for k in kept { keptRows += frame.features.row(k) }
            }
            let features = try Matrix(rows: keptRows.count / model.configuration.hiddenSize, cols: model.configuration.hiddenSize, storage: keptRows)
            let prompt = try Qwen2VideoPrompt(tokenizer: tokenizer, configuration: model.configuration,
                                              question: "What happens in the video?", patches: patches, secondsPerTemporalPatch: 1.0)
            let session = try DecoderSession(model: model, context: 256)
            try session.prefill(prompt: prompt, features: features)
            let result = try session.continueGeneration(history: [], options: GenerationOptions(maxNewTokens: 8))
            XCTAssertEqual(result.tokens, try reference.int32s("\(c.name).greedy").map(Int.init), c.name)
        }
    }

    func testAnsweringDerivesTimingFromPatchTimesAndMatchesGreedy() throws {
        let vision = try Qwen25VLVisionModel.load(directory: Self.directory)
        let answering = try Qwen2VideoAnswering(directory: Self.directory)
        let reference = try SafeTensorsFile(path: Self.directory + "/reference.safetensors")
        XCTAssertTrue(answering.stopTokens.contains(try XCTUnwrap(answering.tokenizer.id(of: "<|im_end|>"))))
        let c = Self.cases[0]
        let clip = (0..<c.frames).map { (width: c.width, height: c.height, rgb: Self.frame(width: c.width, height: c.height, index: $0)) }
        // Frames at 2 fps: temporal patches start 1 s apart (second_per_grid_t = 1).
        let patches = try vision.encode(clip: clip, scoreLayers: []).enumerated().map { (tp, frame) in
            let kept = try reference.int32s("wide.kept.\(tp)").map(Int.init)
            let rows = kept.flatMap { frame.features.row($0) }
            return Qwen2VideoAnswering.Patch(rows: frame.grid.rows, cols: frame.grid.cols, kept: kept,
                                             features: try Matrix(rows: kept.count, cols: frame.features.cols, storage: rows),
                                             time: Double(tp))
        }
        XCTAssertEqual(Qwen2VideoAnswering.secondsPerTemporalPatch([0, 1]), 1)
        let answer = try answering.answer(patches: patches, question: "What happens in the video?",
                                          generation: GenerationOptions(maxNewTokens: 8, stopTokens: answering.stopTokens))
        XCTAssertEqual(answer.tokens, try reference.int32s("wide.greedy").map(Int.init))
        XCTAssertEqual(answer.promptTokens, try reference.int32s("wide.pruned_ids").count)
        XCTAssertEqual(answer.fullPromptTokens, try reference.int32s("wide.input_ids").count)
        XCTAssertFalse(answer.text.isEmpty)

        // Several questions share the prompt up to the end of the video: the reference question's
        // answer stays transformers' greedy tokens, and every answer equals its own separate run.
        let questions = ["What happens in the video?", "Which colours do you see?", "Is it day or night?"]
        let generation = GenerationOptions(maxNewTokens: 8, stopTokens: answering.stopTokens)
        let prompts = try questions.map { try answering.prompt(patches: patches, question: $0).decoderPrompt }
        let together = try answering.model.answer(prompts: prompts, tokenizer: answering.tokenizer, generation: generation)
        let videoEnd = try XCTUnwrap(prompts[0].ids.lastIndex(of: answering.model.configuration.visionEndTokenID))
        XCTAssertGreaterThan(together.sharedPrefixRows, videoEnd, "the whole video is prefilled once")
        XCTAssertEqual(together.answers[0].generation.tokens, try reference.int32s("wide.greedy").map(Int.init))
        for (q, question) in questions.enumerated() {
            let alone = try answering.answer(patches: patches, question: question, generation: generation)
            XCTAssertEqual(together.answers[q].generation.tokens, alone.tokens, question)
        }
    }

    func testBF16WeightsGiveTheSameProducts() throws {
        // Values that BF16 holds exactly (as a BF16 checkpoint's are): holding them as BF16 and
        // expanding per product must give the F32 result bit for bit.
        var m = Matrix(rows: 37, cols: 19)
        for i in 0..<m.storage.count { m.storage[i] = Float(bitPattern: Float(sin(Double(i)) * 3).bitPattern & 0xFFFF_0000) }
        let half = WeightMatrix(m, bf16: true), full = WeightMatrix(m)
        XCTAssertTrue(half.isBF16)
        XCTAssertEqual(half.byteCount * 2, full.byteCount)
        XCTAssertEqual(half.matrix(), m)
        var x = Matrix(rows: 5, cols: 19)
        for i in 0..<x.storage.count { x.storage[i] = Float(i % 7) - 3 }
        var scratch: [Float] = []
        let bias = (0..<37).map { Float($0) / 10 }
        let product = try linear(x, weight: m, bias: bias)
        do {
            // Widened into F32 tiles for sgemm: the F32 result bit for bit.
            WeightMatrix.prefillConversion = .tiles
            defer { WeightMatrix.prefillConversion = .automatic }
            XCTAssertEqual(try linear(x, weight: half, bias: bias, scratch: &scratch), product)
            XCTAssertGreaterThanOrEqual(scratch.count, m.count, "the expansion went to the caller's scratch")
        }
        // The default (bf16w_gemm where it runs: widened inside the product, its own summation order): the
        // F32 result up to F32 rounding of Σ|x·w|.
        let magnitude = try linear(Matrix(rows: 5, cols: 19, storage: x.storage.map(abs)),
                                   weight: Matrix(rows: 37, cols: 19, storage: m.storage.map(abs)))
        let widenedInRegisters = try linear(x, weight: half, bias: bias, scratch: &scratch)
        for i in 0..<product.count {
            XCTAssertEqual(widenedInRegisters.storage[i], product.storage[i], accuracy: 1e-6 * (magnitude.storage[i] + abs(bias[i % 37])))
        }
        // One row (a decode step) widens BF16 on the fly: same values up to summation order.
        let one = x.rows(0..<1)
        let fused = try linear(one, weight: half, bias: bias, scratch: &scratch)
        let reference = try linear(one, weight: m, bias: bias)
        for (a, b) in zipSameLength(fused.storage, reference.storage) { XCTAssertEqual(a, b, accuracy: 1e-4 * max(1, abs(b))) }
    }

    func testBadInputsAreNamed() throws {
        let tokenizer = try Tokenizer(directory: Self.directory)
        let config = try Qwen2Configuration(configFile: Self.directory + "/config.json")
        XCTAssertThrowsError(try Qwen2VideoPrompt(tokenizer: tokenizer, configuration: config, question: "?",
                                                  patches: [.init(rows: 2, cols: 2, kept: [3, 1])], secondsPerTemporalPatch: 1)) {
            XCTAssertTrue("\($0)".contains("ascending"), "\($0)")
        }
        XCTAssertThrowsError(try Qwen2Configuration(configFile: Fixtures.path("lm-tied", "config.json"))) {
            XCTAssertTrue("\($0)".contains("qwen2_5_vl"), "\($0)")
        }
        let model = try Qwen2Model(directory: Self.directory)
        let session = try DecoderSession(model: model, context: 8)
        XCTAssertThrowsError(try session.prefill(embeddings: Matrix(rows: 9, cols: 64), positions: (0..<9).map { MRoPEPosition(text: $0) })) {
            XCTAssertTrue("\($0)".contains("context"), "\($0)")
        }
    }
}
