import Foundation
import XCTest
@testable import VLM
import TestSupport

/// Llama's SentencePiece-style tokenizer.json (BPE + byte_fallback, as llava-hf ships it) against
/// `tokenizers` (tools/make_llama_tokenizer.py): the legacy normalizer pair and the Metaspace form.
final class LlamaTokenizerTests: XCTestCase {
    private func variant(_ name: String) throws -> (Tokenizer, [[String: Any]]) {
        let tokenizer = try Tokenizer(directory: Fixtures.path("llama-tokenizer", name))
        let expected = try XCTUnwrap(try Fixtures.json("llama-tokenizer", "expected.json")[name] as? [String: Any])
        XCTAssertEqual(tokenizer.count, expected["vocab_size"] as? Int)
        return (tokenizer, try XCTUnwrap(expected["cases"] as? [[String: Any]]))
    }

    private func checkParity(_ name: String) throws {
        let (tokenizer, cases) = try variant(name)
        XCTAssertEqual(tokenizer.bosID, 1)
        XCTAssertEqual(tokenizer.eosID, 2)
        XCTAssertEqual(tokenizer.postProcessor.prefix, [1])
        for c in cases {
            let text = try XCTUnwrap(c["text"] as? String)
            let ids = try XCTUnwrap(c["ids"] as? [Int])
            XCTAssertEqual(tokenizer.encode(text), ids, "\(name): encode \(text.debugDescription)")
            XCTAssertEqual(tokenizer.encode(text, addSpecialTokens: true), c["ids_with_special"] as? [Int],
                           "\(name): encode with BOS \(text.debugDescription)")
            XCTAssertEqual(tokenizer.decode(ids), c["decoded"] as? String, "\(name): decode \(text.debugDescription)")
            let skipped = try XCTUnwrap(c["decoded_skip_special"] as? String)
            XCTAssertEqual(tokenizer.decode(ids, skipSpecialTokens: true), skipped, "\(name): decode without specials \(text.debugDescription)")
            // Streaming gives the same text as decoding all at once, and never half a character.
            var stream = StreamingDetokenizer(tokenizer: tokenizer)
            var pieces = ids.map { stream.append($0) }
            pieces.append(stream.finish())
            XCTAssertEqual(pieces.joined(), skipped, "\(name): streamed \(text.debugDescription)")
            for piece in pieces { XCTAssertFalse(piece.unicodeScalars.contains("\u{FFFD}"), "\(name): split character in \(piece.debugDescription)") }
        }
    }

    func testLegacyNormalizerFileMatchesTokenizers() throws {
        try checkParity("legacy")
        let (tokenizer, _) = try variant("legacy")
        XCTAssertEqual(tokenizer.normalizers, [.prepend("▁"), .replace(pattern: " ", content: "▁")])
        XCTAssertEqual(tokenizer.preTokenizers, [])
    }

    func testMetaspaceFileMatchesTokenizers() throws {
        try checkParity("metaspace")
        let (tokenizer, _) = try variant("metaspace")
        XCTAssertEqual(tokenizer.preTokenizers, [.metaspace(replacement: "▁", prependScheme: .first, split: false)])
    }

    func testCharactersOutsideTheVocabularyFallBackToBytes() throws {
        let (tokenizer, _) = try variant("metaspace")
        // "東" is not a piece: its three UTF-8 bytes are <0xE6> <0x9D> <0xB1> (ids 3 + byte).
        XCTAssertNil(tokenizer.id(of: "東"))
        XCTAssertEqual(Array(tokenizer.encode("東").suffix(3)), [0xE6, 0x9D, 0xB1].map { 3 + $0 })
        // A newline is byte 0x0A as in Llama's vocabulary; "<0x0A>" typed as text is not a byte.
        XCTAssertEqual(tokenizer.encode("\n").last, 3 + 0x0A)
        XCTAssertEqual(tokenizer.decode([3 + 0xE6, 3 + 0x9D]), "\u{FFFD}\u{FFFD}", "one U+FFFD per byte of an invalid run")
        XCTAssertEqual(tokenizer.decode([3 + 0xE6, 3 + 0x9D, 3 + 0xB1]), "東")
    }

    func testMetaspaceDecoderDropsTheFirstReplacement() throws {
        var root = try Fixtures.json("llama-tokenizer", "metaspace", "tokenizer.json")
        root["decoder"] = ["type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false]
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("llama-tok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try JSONSerialization.data(withJSONObject: root).write(to: dir.appendingPathComponent("tokenizer.json"))
        let tokenizer = try Tokenizer(tokenizerJSON: dir.appendingPathComponent("tokenizer.json").path)
        let ids = tokenizer.encode("Hello world again")
        XCTAssertEqual(tokenizer.decode(ids), "Hello world again")
        var stream = StreamingDetokenizer(tokenizer: tokenizer)
        XCTAssertEqual(ids.map { stream.append($0) }.joined() + stream.finish(), "Hello world again")
    }

    func testUnsupportedDecoderAndPostProcessorNameTheFile() throws {
        for (key, value) in [("decoder", ["type": "WordPiece"]), ("post_processor", ["type": "BertProcessing"])] {
            var root = try Fixtures.json("llama-tokenizer", "legacy", "tokenizer.json")
            root[key] = value
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("llama-tok-\(UUID().uuidString).json")
            defer { try? FileManager.default.removeItem(at: file) }
            try JSONSerialization.data(withJSONObject: root).write(to: file)
            XCTAssertThrowsError(try Tokenizer(tokenizerJSON: file.path)) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains(file.path) && text.contains(value["type"]!), text)
            }
        }
    }
}
