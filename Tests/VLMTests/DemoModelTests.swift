import Foundation
import Tensor
import XCTest
@testable import VLM
import TestSupport

/// The embedded demo model (models/demo-smolvlm2): its text side loads from the SmolVLM layout
/// (`model.text_model.*`, `lm_head.*`, text_config) and matches transformers.
final class DemoModelTests: XCTestCase {
    static let directory = (Fixtures.repository as NSString).appendingPathComponent("models/demo-smolvlm2")

    func testDemoTextModelMatchesTransformers() throws {
        let language = try LanguageModel(path: Self.directory)
        XCTAssertEqual(language.template, .smolVLM)
        let eou = try XCTUnwrap(language.tokenizer.id(of: "<end_of_utterance>"))
        XCTAssertTrue(language.stopTokens.contains(eou))
        XCTAssertFalse(language.model.configuration.tieWordEmbeddings)

        let json = try Fixtures.json("lm-smolvlm-text", "expected.json")
        let ids = try XCTUnwrap(json["prompt_ids"] as? [Int])
        let prompt = try XCTUnwrap(json["prompt"] as? String)
        // The chat template renders the same text the fixture was made from.
        XCTAssertEqual(try language.chatPrompt([ChatMessage(role: "user", content: "What happens in this video?")]), ids)
        XCTAssertEqual(language.tokenizer.encode(prompt), ids)

        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("lm-smolvlm-text", "logits.f32")))
        let want = data.withUnsafeBytes { raw in
            (0..<(data.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
        }
        let got = try DecoderSession(model: language.model, context: 128).logitsOfEveryRow(tokens: ids)
        XCTAssertEqual(got.count, want.count)
        let vocab = got.cols
        for r in 0..<got.rows {
            let row = Array(want[(r * vocab)..<((r + 1) * vocab)])
            let scale = max(1, row.map(abs).max() ?? 1)
            for c in 0..<vocab { XCTAssertEqual(got[r, c], row[c], accuracy: 1e-4 * scale, "row \(r) col \(c)") }
        }
        let result = try DecoderSession(model: language.model, context: 128)
            .generate(prompt: ids, options: GenerationOptions(maxNewTokens: 20))
        XCTAssertEqual(result.tokens, try XCTUnwrap(json["greedy"] as? [Int]))
    }

    func testDemoDirectoryShipsTheSmolVLM2Files() {
        for name in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "chat_template.json",
                     "preprocessor_config.json", "processor_config.json", "generation_config.json", "README.md"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: (Self.directory as NSString).appendingPathComponent(name)), name)
        }
    }
}
