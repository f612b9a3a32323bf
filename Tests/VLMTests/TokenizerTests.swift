import Foundation
import XCTest
@testable import VLM
import TestSupport

final class TokenizerTests: XCTestCase {
    private func cases(_ file: String) throws -> [[String: Any]] {
        try XCTUnwrap(try Fixtures.json("tokenizer", file)["cases"] as? [[String: Any]])
    }

    private func checkParity(_ tokenizer: Tokenizer, _ file: String) throws {
        for c in try cases(file) {
            let text = try XCTUnwrap(c["text"] as? String)
            let ids = try XCTUnwrap(c["ids"] as? [Int])
            XCTAssertEqual(tokenizer.encode(text), ids, "encode \(text.debugDescription)")
            XCTAssertEqual(tokenizer.decode(ids), c["decoded"] as? String, "decode \(text.debugDescription)")
            XCTAssertEqual(tokenizer.decode(ids, skipSpecialTokens: true), c["decoded_skip_special"] as? String,
                           "decode without specials \(text.debugDescription)")
        }
    }

    func testToyTokenizerMatchesTokenizers() throws {
        let tokenizer = try Tokenizer(directory: Fixtures.path("tokenizer"))
        XCTAssertEqual(tokenizer.count, try Fixtures.json("tokenizer", "expected.json")["vocab_size"] as? Int)
        XCTAssertEqual(tokenizer.preTokenizers, [.digits(individual: true), .byteLevel(addPrefixSpace: false, useRegex: true)])
        XCTAssertEqual(tokenizer.bosID, tokenizer.id(of: "<|im_start|>"))
        XCTAssertNotNil(tokenizer.chatTemplate)
        try checkParity(tokenizer, "expected.json")
    }

    func testGGUFTokenizerOfTinyModelMatchesTokenizers() throws {
        let tokenizer = try Tokenizer(gguf: GGUFFile(path: Fixtures.path("lm-gguf", "model.gguf")))
        try checkParity(tokenizer, "expected.json")
        XCTAssertEqual(tokenizer.eosID, 2)
    }

    func testRealSmolLM2TokenizerFromGGUF() throws {
        let tokenizer = try Tokenizer(gguf: GGUFFile(path: try Fixtures.smolLM2()))
        XCTAssertEqual(tokenizer.count, 49152)
        try checkParity(tokenizer, "smollm2-expected.json")
    }

    func testRoundTripAndStreamingNeverSplitsCharacters() throws {
        let tokenizer = try Tokenizer(directory: Fixtures.path("tokenizer"))
        for c in try cases("expected.json") {
            let text = try XCTUnwrap(c["text"] as? String)
            let ids = tokenizer.encode(text)
            XCTAssertEqual(tokenizer.decode(ids), text, "round trip")
            var stream = StreamingDetokenizer(tokenizer: tokenizer, skipSpecialTokens: false)
            var pieces: [String] = []
            for id in ids { pieces.append(stream.append(id)) }
            pieces.append(stream.finish())
            XCTAssertEqual(pieces.joined(), text)
            for piece in pieces { XCTAssertFalse(piece.unicodeScalars.contains("\u{FFFD}"), "split character in \(piece.debugDescription)") }
        }
        // Emoji and CJK come out of byte tokens one byte at a time: nothing before the last byte.
        var stream = StreamingDetokenizer(tokenizer: tokenizer)
        let bytes = Array("😀".utf8).map { b in tokenizer.id(of: String(ByteLevelAlphabet.characters[Int(b)]))! }
        XCTAssertEqual(bytes.dropLast().map { stream.append($0) }, ["", "", ""])
        XCTAssertEqual(stream.append(bytes.last!), "😀")
    }

    func testMissingTokenizerJSONIsATypedError() {
        XCTAssertThrowsError(try Tokenizer(directory: "/nonexistent-model")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("/nonexistent-model/tokenizer.json"), text)
        }
    }

    func testUnsupportedPreTokenizerIsRejected() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var root = try Fixtures.json("tokenizer", "tokenizer.json")
        root["pre_tokenizer"] = ["type": "BertPreTokenizer"]
        try JSONSerialization.data(withJSONObject: root).write(to: dir.appendingPathComponent("tokenizer.json"))
        XCTAssertThrowsError(try Tokenizer(directory: dir.path)) { error in
            XCTAssertTrue("\(error)".contains("pre_tokenizer 'BertPreTokenizer'"), "\(error)")
        }
    }
}
