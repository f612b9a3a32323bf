import Foundation
import Tensor
import XCTest
@testable import VLM
import TestSupport

/// Logits and greedy tokens against transformers (tools/make_lm_fixtures.py).
final class LlamaParityTests: XCTestCase {
    struct Expected {
        let promptIDs: [Int]
        let greedy: [Int]
        let logits: Matrix
    }

    private func expected(_ name: String) throws -> Expected {
        let json = try Fixtures.json(name, "expected.json")
        let shape = try XCTUnwrap(json["logits_shape"] as? [Int])
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path(name, "logits.f32")))
        let values = data.withUnsafeBytes { raw in
            (0..<(data.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
        }
        return Expected(promptIDs: try XCTUnwrap(json["prompt_ids"] as? [Int]), greedy: try XCTUnwrap(json["greedy"] as? [Int]),
                        logits: try Matrix(rows: shape[0], cols: shape[1], storage: values))
    }

    /// Every logit within 1e-4 of the reference, relative to the largest |logit| of its row.
    private func assertClose(_ got: Matrix, _ want: Matrix, _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.shape, want.shape, label, file: file, line: line)
        guard got.shape == want.shape else { return }
        var worst: Float = 0
        for r in 0..<want.rows {
            let row = want.row(r)
            let scale = max(1, row.map(abs).max() ?? 1)
            for c in 0..<want.cols { worst = max(worst, abs(got[r, c] - want[r, c]) / scale) }
        }
        XCTAssertLessThan(worst, 1e-4, "\(label): worst relative difference \(worst)", file: file, line: line)
    }

    private func checkDirectory(_ name: String) throws {
        let model = try LlamaModel(directory: Fixtures.path(name))
        let e = try expected(name)
        let session = try DecoderSession(model: model, context: 64)
        assertClose(try session.logitsOfEveryRow(tokens: e.promptIDs), e.logits, name)

        let cached = try DecoderSession(model: model, context: 64)
        let result = try cached.generate(prompt: e.promptIDs, options: GenerationOptions(maxNewTokens: e.greedy.count))
        XCTAssertEqual(result.tokens, e.greedy, "\(name): greedy with KV cache")
        XCTAssertEqual(result.stopReason, .maxTokens)

        // Without the cache: the whole sequence again for every new token.
        var sequence = e.promptIDs
        for _ in 0..<e.greedy.count {
            let fresh = try DecoderSession(model: model, context: 64)
            try fresh.prefill(tokens: sequence)
            sequence.append(argmax(fresh.logits))
        }
        XCTAssertEqual(Array(sequence.dropFirst(e.promptIDs.count)), e.greedy, "\(name): greedy without KV cache")
    }

    func testSmolVLMTextConfigIsReadFromConfigJSON() throws {
        // A SmolVLM config.json made by transformers (smolvlm-b): the decoder lives in text_config.
        let c = try LlamaConfiguration(configFile: Fixtures.path("smolvlm-b", "config.json"))
        XCTAssertEqual([c.hiddenSize, c.layers, c.heads, c.kvHeads, c.headDimension, c.intermediateSize, c.vocabularySize, c.maxPositions],
                       [40, 1, 2, 1, 20, 64, 128, 256])
        XCTAssertEqual(c.ropeTheta, 10000)
        XCTAssertEqual(c.rmsNormEps, 1e-5)
        XCTAssertFalse(c.tieWordEmbeddings)
    }

    func testTiedGQAModelMatchesTransformers() throws { try checkDirectory("lm-tied") }
    func testUntiedLlama3ScaledModelMatchesTransformers() throws { try checkDirectory("lm-untied") }
    func testLinearScaledModelMatchesTransformers() throws { try checkDirectory("lm-linear") }

    func testGGUFWithPermutedQKMatchesTransformers() throws {
        let gguf = try GGUFFile(path: Fixtures.path("lm-gguf", "model.gguf"))
        let model = try LlamaModel(gguf: gguf)
        XCTAssertTrue(model.configuration.tieWordEmbeddings)
        let e = try expected("lm-tied")
        let session = try DecoderSession(model: model, context: 64)
        assertClose(try session.logitsOfEveryRow(tokens: e.promptIDs), e.logits, "GGUF")
        let result = try DecoderSession(model: model, context: 64).generate(prompt: e.promptIDs, options: GenerationOptions(maxNewTokens: 20))
        XCTAssertEqual(result.tokens, e.greedy)
    }

    func testEmbeddingPrefillAndSharedPrefixMatchTokenPrefill() throws {
        let model = try LlamaModel(directory: Fixtures.path("lm-tied"))
        let e = try expected("lm-tied")
        let ids = e.promptIDs
        // Input embeddings in place of ids, split at an arbitrary point, continuing from a copied prefix cache.
        let prefix = try DecoderSession(model: model, context: 64)
        try prefix.prefill(embeddings: model.embed(Array(ids[0..<10])))
        let shared = prefix.cache
        let continued = DecoderSession(model: model, cache: shared)
        try continued.prefill(embeddings: model.embed(Array(ids[10...])))
        let last = e.logits.row(e.logits.rows - 1)
        let scale = max(1, last.map(abs).max() ?? 1)
        for (a, b) in zipSameLength(continued.logits, last) { XCTAssertEqual(a, b, accuracy: 1e-4 * scale) }
        // The copied prefix is untouched by the continuation.
        XCTAssertEqual(prefix.cache.count, 10)
        XCTAssertEqual(continued.cache.count, ids.count)
        // Injection replaces exactly the given rows.
        let features = try Matrix(rows: 2, cols: model.configuration.hiddenSize,
                                  storage: (0..<(2 * model.configuration.hiddenSize)).map { Float($0) })
        let injected = try model.embed(Array(ids[0..<5]), injecting: features, at: [1, 3])
        XCTAssertEqual(injected.row(1), features.row(0))
        XCTAssertEqual(injected.row(3), features.row(1))
        XCTAssertEqual(injected.row(2), try model.embed([ids[2]]).row(0))
    }

    /// A 200-token prefill (several blocks of causal attention rows) gives the logits of feeding
    /// the same tokens one by one through the decode path.
    func testLongPrefillMatchesTokenByTokenDecoding() throws {
        let model = try LlamaModel(directory: Fixtures.path("lm-untied"))
        let ids = (0..<200).map { ($0 * 37 + 11) % model.configuration.vocabularySize }
        let all = try DecoderSession(model: model, context: 256).logitsOfEveryRow(tokens: ids)
        let stepping = try DecoderSession(model: model, context: 256)
        for (r, id) in ids.enumerated() {
            if r == 0 { try stepping.prefill(tokens: [id]) } else { try stepping.step(token: id) }
            let want = all.row(r)
            let scale = max(1, want.map(abs).max() ?? 1)
            let worst = zipSameLength(stepping.logits, want).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThan(worst / scale, 1e-4, "row \(r)")
        }
    }

    func testTokenStreamYieldsTheGreedyTokens() async throws {
        let model = try LlamaModel(directory: Fixtures.path("lm-untied"))
        let e = try expected("lm-untied")
        var got: [Int] = []
        for try await token in model.tokenStream(prompt: e.promptIDs, options: GenerationOptions(maxNewTokens: 20), context: 64) {
            got.append(token)
        }
        XCTAssertEqual(got, e.greedy)
    }

    func testSeededSamplingIsDeterministic() throws {
        let model = try LlamaModel(directory: Fixtures.path("lm-tied"))
        let ids = try expected("lm-tied").promptIDs
        let sampling = SamplingParameters(temperature: 0.9, topP: 0.9, topK: 50, repetitionPenalty: 1.1, seed: 42)
        let run = { () throws -> [Int] in
            try DecoderSession(model: model, context: 64).generate(prompt: ids, options: GenerationOptions(maxNewTokens: 12, sampling: sampling)).tokens
        }
        let first = try run()
        XCTAssertEqual(first, try run())
        XCTAssertEqual(first.count, 12)
        var other = sampling
        other.seed = 43
        let third = try DecoderSession(model: model, context: 64).generate(prompt: ids, options: GenerationOptions(maxNewTokens: 12, sampling: other)).tokens
        XCTAssertNotEqual(first, third)
    }
}

final class LanguageModelErrorTests: XCTestCase {
    private func temporaryCopy(of fixture: String, editConfig: (inout [String: Any]) -> Void, dropping: [String] = []) throws -> URL {
        // Removed when the test ends, however it ends (a failed copy or edit included).
        let dir = try temporaryDirectory("lm").appendingPathComponent("model")
        try FileManager.default.copyItem(atPath: Fixtures.path(fixture), toPath: dir.path)
        var config = try Fixtures.json(fixture, "config.json")
        editConfig(&config)
        try JSONSerialization.data(withJSONObject: config).write(to: dir.appendingPathComponent("config.json"))
        for name in dropping { try FileManager.default.removeItem(at: dir.appendingPathComponent(name)) }
        return dir
    }

    func testUnknownModelTypeIsNamed() throws {
        let dir = try temporaryCopy(of: "lm-tied", editConfig: { $0["model_type"] = "bert" })
        defer { try? FileManager.default.removeItem(at: dir) }
        XCTAssertThrowsError(try LanguageModel(path: dir.path)) { error in
            XCTAssertTrue("\(error)".contains("model_type 'bert'") && "\(error)".contains("config.json"), "\(error)")
        }
    }

    func testMissingTokenizerIsNamed() throws {
        let dir = try temporaryCopy(of: "lm-tied", editConfig: { _ in }, dropping: ["tokenizer.json"])
        defer { try? FileManager.default.removeItem(at: dir) }
        XCTAssertThrowsError(try LanguageModel(path: dir.path)) { error in
            XCTAssertTrue("\(error)".contains("tokenizer.json"), "\(error)")
        }
    }

    func testPromptLongerThanContextIsATypedError() throws {
        let model = try LlamaModel(directory: Fixtures.path("lm-tied"))
        let session = try DecoderSession(model: model, context: 8)
        XCTAssertThrowsError(try session.prefill(tokens: Array(repeating: 5, count: 9))) { error in
            XCTAssertEqual(error as? VLMError, .contextOverflow(tokens: 9, context: 8))
            XCTAssertEqual("\(error)", "prompt of 9 tokens does not fit the context of 8 tokens")
        }
        XCTAssertThrowsError(try DecoderSession(model: model, context: 1000)) { error in
            XCTAssertTrue("\(error)".contains("context"), "\(error)")
        }
    }

    func testCacheOfAnotherModelIsRejected() throws {
        let tied = try LlamaModel(directory: Fixtures.path("lm-tied"))
        let untied = try LlamaModel(directory: Fixtures.path("lm-untied"))
        let session = DecoderSession(model: untied, cache: try KVCache(shape: tied.configuration.decoderShape, capacity: 32))
        XCTAssertThrowsError(try session.prefill(tokens: [1, 2, 3])) { error in
            XCTAssertTrue("\(error)".hasPrefix("KV cache:"), "\(error)")
        }
    }

    func testUnsupportedGGUFTensorTypeFailsTheLoad() throws {
        XCTAssertThrowsError(try LlamaModel(gguf: GGUFFile(path: Fixtures.path("lm-gguf", "unsupported.gguf")))) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("unsupported.gguf") && text.contains("Q2_K") && text.contains("blk.0.attn_q.weight"), text)
        }
    }
}
