import Foundation
import XCTest
@testable import VLM
import TestSupport

/// Parity with `tokenizers` on a tokenizer built exactly like Qwen2.5-VL's (tools/make_qwen_tokenizer.py).
final class QwenTokenizerTests: XCTestCase {
    private func expected() throws -> [String: Any] { try Fixtures.json("qwen-tokenizer", "expected.json") }

    private func tokenizer() throws -> Tokenizer { try Tokenizer(directory: Fixtures.path("qwen-tokenizer")) }

    private func cases() throws -> [(text: String, ids: [Int], decoded: String, decodedSkip: String)] {
        let list = try XCTUnwrap(try expected()["cases"] as? [[String: Any]])
        return try list.map {
            (try XCTUnwrap($0["text"] as? String), try XCTUnwrap($0["ids"] as? [Int]),
             try XCTUnwrap($0["decoded"] as? String), try XCTUnwrap($0["decoded_skip_special"] as? String))
        }
    }

    func testLoadsTheQwen2Structure() throws {
        let tokenizer = try tokenizer()
        XCTAssertEqual(tokenizer.count, try expected()["vocab_size"] as? Int)
        XCTAssertEqual(tokenizer.normalizers, [.nfc])
        XCTAssertEqual(tokenizer.preTokenizers, [.split(pattern: .gpt4Words(digitRun: 1), behavior: .isolated, invert: false),
                                                 .byteLevel(addPrefixSpace: false, useRegex: false)])
        XCTAssertEqual(tokenizer.addedTokens.count, 22)
        XCTAssertEqual(tokenizer.addedTokens.filter(\.special).count, 14)
        XCTAssertTrue(tokenizer.addedTokens.allSatisfy { !$0.normalized && !$0.lstrip && !$0.rstrip })
        XCTAssertEqual(tokenizer.eosID, tokenizer.id(of: "<|im_end|>"))
        XCTAssertNil(tokenizer.bosID)
        XCTAssertTrue(try XCTUnwrap(tokenizer.chatTemplate).contains("<|vision_start|><|video_pad|><|vision_end|>"))
    }

    func testEncodeAndDecodeMatchTokenizers() throws {
        let tokenizer = try tokenizer()
        for c in try cases() {
            let ids = tokenizer.encode(c.text)
            XCTAssertEqual(ids, c.ids, "encode \(c.text.debugDescription)")
            XCTAssertEqual(tokenizer.decode(ids), c.decoded, "decode(encode) \(c.text.debugDescription)")
            XCTAssertEqual(tokenizer.decode(c.ids, skipSpecialTokens: true), c.decodedSkip, "decode without specials \(c.text.debugDescription)")
        }
    }

    func testStreamingDetokenizerEqualsDecode() throws {
        let tokenizer = try tokenizer()
        for c in try cases() {
            for skip in [false, true] {
                var stream = StreamingDetokenizer(tokenizer: tokenizer, skipSpecialTokens: skip)
                var pieces = c.ids.map { stream.append($0) }
                pieces.append(stream.finish())
                XCTAssertEqual(pieces.joined(), skip ? c.decodedSkip : c.decoded, "stream \(c.text.debugDescription) skip \(skip)")
                for piece in pieces where !c.decoded.unicodeScalars.contains("\u{FFFD}") {
                    XCTAssertFalse(piece.unicodeScalars.contains("\u{FFFD}"), "split character in \(piece.debugDescription)")
                }
            }
        }
    }

    func testNormalFormsMatchTokenizers() throws {
        let list = try XCTUnwrap(try expected()["normalized"] as? [[String: Any]])
        let forms: [(String, Normalizer)] = [("NFC", .nfc), ("NFD", .nfd), ("NFKC", .nfkc), ("NFKD", .nfkd)]
        var changed = 0
        for c in list {
            let text = try XCTUnwrap(c["text"] as? String)
            for (name, form) in forms {
                let want = try XCTUnwrap(c[name] as? String)
                let got = [form].apply(Array(text.unicodeScalars)[...])
                XCTAssertEqual(String(String.UnicodeScalarView(got)).unicodeScalars.map(\.value), want.unicodeScalars.map(\.value),
                               "\(name) of \(text.debugDescription)")
                if name == "NFC", want.unicodeScalars.count != text.unicodeScalars.count { changed += 1 }
            }
        }
        XCTAssertGreaterThan(changed, 1, "the corpus must hold text that NFC changes")
    }

    func testSplitPreTokenizersMatchTokenizers() throws {
        let corpus = try XCTUnwrap(try expected()["corpus"] as? [String])
        let splits = try XCTUnwrap(try expected()["splits"] as? [[String: Any]])
        XCTAssertGreaterThanOrEqual(splits.count, 10)
        for split in splits {
            let config = try XCTUnwrap(split["pre_tokenizer"] as? [String: Any])
            let pieces = try XCTUnwrap(split["pieces"] as? [[String]])
            let steps = try PreTokenizer.parse(config, file: "expected.json")
            XCTAssertEqual(steps.count, 1)
            for (text, want) in zipSameLength(corpus, pieces) {
                var got = [Array(text.unicodeScalars)]
                for step in steps { got = step.split(got) }
                XCTAssertEqual(got.map { String(String.UnicodeScalarView($0)) }, want, "\(config) on \(text.debugDescription)")
            }
        }
    }

    /// The ids Qwen2_5_VLProcessor gives a video chat prompt (chat template + <|video_pad|> expansion)
    /// equal Qwen2VideoPrompt's with every token kept.
    func testVideoPromptMatchesProcessor() throws {
        let prompt = try XCTUnwrap(try expected()["prompt"] as? [String: Any], "processor prompt missing from the fixture")
        let tokenizer = try tokenizer()
        let grid = try XCTUnwrap(prompt["video_grid_thw"] as? [Int])
        var configuration = Qwen2Configuration()
        configuration.videoTokenID = try XCTUnwrap(prompt["video_token_id"] as? Int)
        configuration.visionStartTokenID = try XCTUnwrap(prompt["vision_start_token_id"] as? Int)
        configuration.visionEndTokenID = try XCTUnwrap(prompt["vision_end_token_id"] as? Int)
        let rows = grid[1] / configuration.spatialMergeSize, cols = grid[2] / configuration.spatialMergeSize
        let patches = (0..<grid[0]).map { _ in Qwen2VideoPrompt.TemporalPatch(rows: rows, cols: cols, kept: Array(0..<(rows * cols))) }
        let built = try Qwen2VideoPrompt(tokenizer: tokenizer, configuration: configuration,
                                         question: try XCTUnwrap(prompt["question"] as? String), patches: patches,
                                         secondsPerTemporalPatch: try XCTUnwrap(prompt["second_per_grid_t"] as? Double))
        let want = try XCTUnwrap(prompt["ids"] as? [Int])
        XCTAssertEqual(built.ids, want)
        XCTAssertEqual(built.fullLength, want.count)
        // The chat text itself (one <|video_pad|> before expansion) encodes as the processor's text does.
        let text = try XCTUnwrap(prompt["text"] as? String)
        let pad = configuration.videoTokenID
        var collapsed: [Int] = []
        for id in want where !(id == pad && collapsed.last == pad) { collapsed.append(id) }
        XCTAssertEqual(tokenizer.encode(text), collapsed)
    }

    func testUnsupportedFeaturesAreOneLineNamingTheFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qwen-tok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let original = try Fixtures.json("qwen-tokenizer", "tokenizer.json")
        let file = dir.appendingPathComponent("tokenizer.json")

        func split(_ object: [String: Any]) -> [String: Any] {
            var root = original
            var pre = root["pre_tokenizer"] as? [String: Any] ?? [:]
            var steps = pre["pretokenizers"] as? [Any] ?? []
            var first = steps.first as? [String: Any] ?? [:]
            for (k, v) in object { first[k] = v }
            steps[0] = first
            pre["pretokenizers"] = steps
            root["pre_tokenizer"] = pre
            return root
        }
        var dropout = original
        var model = original["model"] as? [String: Any] ?? [:]
        model["dropout"] = 0.1
        dropout["model"] = model
        var lowercase = original
        lowercase["normalizer"] = ["type": "Lowercase"]
        let variants: [([String: Any], String)] = [
            (split(["behavior": "Shuffled"]), "Split behavior 'Shuffled'"),
            (split(["pattern": ["Regex": "\\w+|\\s+\n"]]), "Split regex"),
            (split(["pattern": ["String": ""]]), "empty String pattern"),
            (lowercase, "normalizer 'Lowercase'"),
            (dropout, "BPE dropout"),
        ]
        for (root, feature) in variants {
            try JSONSerialization.data(withJSONObject: root).write(to: file)
            XCTAssertThrowsError(try Tokenizer(directory: dir.path)) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains(file.path), text)
                XCTAssertTrue(text.contains(feature), text)
                XCTAssertFalse(text.contains("\n"), "one line: \(text.debugDescription)")
                guard case .unsupported = error as? VLMError else { return XCTFail("not .unsupported: \(text)") }
            }
        }
        // The untouched file loads (the variants fail for their own reason).
        try JSONSerialization.data(withJSONObject: original).write(to: file)
        XCTAssertNoThrow(try Tokenizer(directory: dir.path))
    }
}

extension QwenTokenizerTests {
    /// Options the real file leaves off (normalized / lstrip / rstrip added tokens, unk_token with
    /// fuse_unk, the Llama 3 split with ignore_merges), each a patch of the fixture's tokenizer.json
    /// applied as tools/make_qwen_tokenizer.py applies it.
    func testVariantsMatchTokenizers() throws {
        let variants = try XCTUnwrap(try expected()["variants"] as? [[String: Any]])
        XCTAssertEqual(variants.count, 3)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qwen-variant-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("tokenizer.json")
        for variant in variants {
            let name = try XCTUnwrap(variant["name"] as? String)
            var root = try Fixtures.json("qwen-tokenizer", "tokenizer.json")
            for (k, v) in variant["root"] as? [String: Any] ?? [:] { root[k] = v }
            var model = try XCTUnwrap(root["model"] as? [String: Any])
            for (k, v) in variant["model"] as? [String: Any] ?? [:] { model[k] = v }
            var vocab = try XCTUnwrap(model["vocab"] as? [String: Any])
            for token in variant["remove_vocab"] as? [String] ?? [] { XCTAssertNotNil(vocab.removeValue(forKey: token), name) }
            model["vocab"] = vocab
            root["model"] = model
            root["added_tokens"] = (root["added_tokens"] as? [Any] ?? []) + (variant["added_tokens"] as? [Any] ?? [])
            try JSONSerialization.data(withJSONObject: root).write(to: file)
            let tokenizer = try Tokenizer(tokenizerJSON: file.path)
            for c in try XCTUnwrap(variant["cases"] as? [[String: Any]]) {
                let text = try XCTUnwrap(c["text"] as? String)
                let ids = try XCTUnwrap(c["ids"] as? [Int])
                XCTAssertEqual(tokenizer.encode(text), ids, "\(name): encode \(text.debugDescription)")
                XCTAssertEqual(tokenizer.decode(ids), c["decoded"] as? String, "\(name): decode \(text.debugDescription)")
            }
        }
    }
}
