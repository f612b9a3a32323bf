import Foundation
import TestSupport
import XCTest

/// `hiprune-video chat` as a user runs it, against transformers on the same weights
/// (Tests/Fixtures/chat-cli/smollm2.json, made by tools/make_chat_cli_fixtures.py from the GGUF that
/// `make models` fetches): the chat template with its default system prompt or `--system`, greedy
/// tokens identical with `--weights f32` (what transformers computes with), the answer ending at
/// `<|im_end|>` or at `--max-tokens`; and a bad model is one line on stderr, nothing on stdout.
final class ChatCLITests: XCTestCase {
    struct Case {
        var name: String
        var system: String?
        var user: String
        var maxTokens: Int
        var promptTokens: Int
        var tokens: [Int]
        var text: String
        var stopped: Bool
    }

    static func cases() throws -> [Case] {
        let root = try Fixtures.json("chat-cli", "smollm2.json")
        return try XCTUnwrap(root["cases"] as? [[String: Any]]).map { c in
            Case(name: try XCTUnwrap(c["name"] as? String), system: c["system"] as? String,
                 user: try XCTUnwrap(c["user"] as? String), maxTokens: try XCTUnwrap(c["max_tokens"] as? Int),
                 promptTokens: try XCTUnwrap(c["prompt_tokens"] as? Int), tokens: try XCTUnwrap(c["tokens"] as? [Int]),
                 text: try XCTUnwrap(c["text"] as? String), stopped: try XCTUnwrap(c["stopped"] as? Bool))
        }
    }

    /// "prompt P tokens … generated G tokens" of chat's summary line on stderr.
    static func counts(_ stderr: String) throws -> (prompt: Int, generated: Int) {
        func number(after word: String) throws -> Int {
            let range = try XCTUnwrap(stderr.range(of: word + " "), "no '\(word)' in \(stderr)")
            return try XCTUnwrap(Int(stderr[range.upperBound...].prefix { $0.isNumber }), stderr)
        }
        return (try number(after: "prompt"), try number(after: "generated"))
    }

    func run(_ c: Case) throws -> CLI.Result {
        var arguments = ["chat", "--model", try Fixtures.smolLM2(), "--weights", "f32", "--max-tokens", String(c.maxTokens), c.user]
        if let system = c.system { arguments += ["--system", system] }
        return try CLI.run(arguments)
    }

    func check(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let c = try XCTUnwrap(try Self.cases().first { $0.name == name }, "no fixture case \(name)", file: file, line: line)
        let result = try run(c)
        XCTAssertEqual(result.status, 0, result.stderr, file: file, line: line)
        // The rendered template's length: the default system prompt, or --system instead of it.
        let counts = try Self.counts(result.stderr)
        XCTAssertEqual(counts.prompt, c.promptTokens, "\(name): prompt tokens", file: file, line: line)
        XCTAssertEqual(counts.generated, c.tokens.count, "\(name): generated tokens", file: file, line: line)
        XCTAssertEqual(result.stdout, c.text + "\n", "\(name): the answer", file: file, line: line)
        // The summary line, then the resident-memory line (weights, KV cache, library pages).
        XCTAssertEqual(result.stderrLines.count, 2, "\(name): summary and memory lines: \(result.stderr)", file: file, line: line)
        XCTAssertTrue(result.stderrLines.last?.hasPrefix("memory: resident ") ?? false, result.stderr, file: file, line: line)
    }

    /// The template's default system prompt; <|im_end|> ends the answer well before --max-tokens.
    func testTemplateAndStopToken() throws {
        let c = try XCTUnwrap(try Self.cases().first { $0.name == "template-default-system" })
        XCTAssertTrue(c.stopped && c.tokens.count < c.maxTokens, "the fixture's answer ends at <|im_end|>")
        try check("template-default-system")
    }

    /// --system replaces the template's default system message.
    func testSystemFlag() throws {
        let cases = try Self.cases()
        let own = try XCTUnwrap(cases.first { $0.name == "system-flag" })
        XCTAssertNotNil(own.system)
        try check("system-flag")
        // Without --system the same question renders the default system prompt: another length.
        var plain = own
        plain.system = nil
        let result = try run(plain)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertNotEqual(try Self.counts(result.stderr).prompt, own.promptTokens, "--system changed nothing")
    }

    /// An answer that would go on is cut at --max-tokens exactly.
    func testMaxTokensCutsTheAnswer() throws {
        let c = try XCTUnwrap(try Self.cases().first { $0.name == "cut-by-max-tokens" })
        XCTAssertFalse(c.stopped)
        XCTAssertEqual(c.tokens.count, c.maxTokens)
        try check("cut-by-max-tokens")
    }

    /// A model that is missing, not a model, or in a format chat cannot read: one line naming it on
    /// stderr, a non-zero exit, nothing on stdout.
    func testBadModelIsOneLine() throws {
        let folder = try temporaryDirectory("chat-bad-model")
        let text = folder.appendingPathComponent("notes.gguf").path
        try Data("not a gguf file\n".utf8).write(to: URL(fileURLWithPath: text))
        for model in [folder.appendingPathComponent("missing.gguf").path, text, folder.path,
                      CLI.path("Tests/Fixtures/lm-gguf/unsupported.gguf")] {
            let result = try CLI.run(["chat", "--model", model, "Hi", "--max-tokens", "2"])
            XCTAssertNotEqual(result.status, 0, model)
            XCTAssertEqual(result.stdout, "", "\(model): nothing on stdout")
            XCTAssertEqual(result.stderrLines.count, 1, "\(model): one line: \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(model), "\(model): names it: \(result.stderr)")
        }
    }
}
