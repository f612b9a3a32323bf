import Foundation
import XCTest
@testable import VLM
import TestSupport

final class ChatTemplateTests: XCTestCase {
    /// SmolLM2-Instruct's template text, as its tokenizer_config.json / GGUF ship it.
    static let smolLM2 = """
    {% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system
    You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>
    ' }}{% endif %}{{'<|im_start|>' + message['role'] + '
    ' + message['content'] + '<|im_end|>' + '
    '}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant
    ' }}{% endif %}
    """

    // MARK: parity with transformers (Tests/Fixtures/chat-templates/cases.json, tools/make_chat_template_fixtures.py)

    private struct Reference: Decodable {
        struct Case: Decodable {
            var template: String
            var conversation: String
            var add_generation_prompt: Bool
            var expected: String?
            var error: String?
        }
        var bos_token: String
        var eos_token: String
        /// Extra names passed to every rendering (date_string).
        var variables: [String: String]
        /// The local time the generator pinned strftime_now() to (ISO 8601 without a zone).
        var now: String
        var instant: Date {
            get throws {
                let format = DateFormatter()
                format.locale = Locale(identifier: "en_US_POSIX")
                format.timeZone = .current
                format.dateFormat = "yyyy-MM-dd'T'HH:mm:ss"
                return try XCTUnwrap(format.date(from: now), "fixture's now: \(now)")
            }
        }
        struct Snippet: Decodable {
            var template: String
            var expected: String
        }
        var templates: [String: String]
        var cases: [Case]
        var snippets: [Snippet]
    }

    private func reference() throws -> (Reference, [String: [ChatMessage]]) {
        let path = Fixtures.path("chat-templates", "cases.json")
        let data = try XCTUnwrap(FileManager.default.contents(atPath: path), "missing fixture \(path)")
        let reference = try JSONDecoder().decode(Reference.self, from: data)
        // The conversations as ChatMessages (content: a string, or parts of type text/image/video).
        let raw = try XCTUnwrap(try Fixtures.json("chat-templates", "cases.json")["conversations"] as? [String: [[String: Any]]])
        var conversations: [String: [ChatMessage]] = [:]
        for (name, messages) in raw {
            conversations[name] = try messages.map { m in
                let role = try XCTUnwrap(m["role"] as? String)
                if let text = m["content"] as? String { return ChatMessage(role: role, content: text) }
                let parts = try XCTUnwrap(m["content"] as? [[String: Any]]).map { p -> ChatContentPart in
                    switch p["type"] as? String {
                    case "image": return .image
                    case "video": return .video
                    default: return .text(p["text"] as? String ?? "")
                    }
                }
                return ChatMessage(role: role, parts: parts)
            }
        }
        return (reference, conversations)
    }

    func testShippedTemplatesRenderAsTransformersDoes() throws {
        let (reference, conversations) = try reference()
        for name in ["smollm2", "smolvlm2", "qwen25vl", "llava-1.5", "llava-v1.6-vicuna", "llava-v1.6-mistral"] {
            XCTAssertNotNil(reference.templates[name], "fixture lacks \(name)")
        }
        let now = try reference.instant
        var rendered = 0, refused = 0
        for c in reference.cases {
            let label = "\(c.template) / \(c.conversation) / generation \(c.add_generation_prompt)"
            let template = try ChatTemplate(text: try XCTUnwrap(reference.templates[c.template]), source: c.template)
            let messages = try XCTUnwrap(conversations[c.conversation])
            let render = { () throws(VLMError) -> String in
                try template.render(messages: messages, addGenerationPrompt: c.add_generation_prompt,
                                    bosToken: reference.bos_token, eosToken: reference.eos_token,
                                    variables: reference.variables.mapValues { .string($0) }, now: now)
            }
            if let expected = c.expected {
                XCTAssertEqual(try render(), expected, label)
                rendered += 1
            } else {
                XCTAssertThrowsError(try render(), "\(label): transformers refused it (\(c.error ?? ""))") { error in
                    XCTAssertTrue("\(error)".hasPrefix("\(c.template): "), "\(error)")
                    XCTAssertFalse("\(error)".contains("\n"), "\(error)")
                }
                refused += 1
            }
        }
        XCTAssertGreaterThanOrEqual(rendered, 140)
        XCTAssertGreaterThanOrEqual(refused, 10)
    }

    func testSmolLM2TemplateAddsItsSystemMessage() throws {
        let template = try ChatTemplate(text: Self.smolLM2, source: "test")
        XCTAssertEqual(try template.render(messages: [ChatMessage(role: "user", content: "Hi")]),
                       "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
                       + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
        XCTAssertEqual(try template.render(messages: [ChatMessage(role: "system", content: "Be brief."), ChatMessage(role: "user", content: "Hi")]),
                       "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    }

    /// SmolVLMVideoPrompt renders transformers' processor video template; the text around <video> is
    /// the template's (the expansion is SmolVLMVideoPromptTests' business).
    func testSmolVLMVideoPromptRendersTheProcessorsTemplate() throws {
        let (reference, _) = try reference()
        XCTAssertEqual(reference.templates["smolvlm-processor-video"], SmolVLMVideoPrompt.videoChatTemplate)
        let prompt = SmolVLMVideoPrompt(frames: [.init(time: 0, imageTokens: 1)], duration: 1)
        XCTAssertEqual(try prompt.text(question: "Why?"), "<|im_start|>User: " + prompt.videoText + "Why?<end_of_utterance>\nAssistant:")
    }

    /// Small templates rendered by transformers: jinja2's whitespace rules (trim_blocks,
    /// lstrip_blocks, `-`, `+`, comments, trailing newline) and Python value semantics (repr,
    /// floor division, slicing, methods, filters, tests, loop scoping, namespace, tojson).
    func testSnippetsRenderAsTransformersDoes() throws {
        let (reference, conversations) = try reference()
        let messages = try XCTUnwrap(conversations["turns"])
        XCTAssertGreaterThanOrEqual(reference.snippets.count, 20)
        for snippet in reference.snippets {
            let template = try ChatTemplate(text: snippet.template, source: "snippet")
            XCTAssertEqual(try template.render(messages: messages, addGenerationPrompt: true, bosToken: reference.bos_token,
                                               eosToken: reference.eos_token, variables: reference.variables.mapValues { .string($0) },
                                               now: try reference.instant),
                           snippet.expected, snippet.template)
        }
    }

    // MARK: errors: one line naming the template's file

    func testUnknownFilterIsRefusedAtLoadNamingTheFile() {
        XCTAssertThrowsError(try ChatTemplate(text: "{{ 'a' }}\n{{ messages | wordwrap }}", source: "dir/chat_template.jinja")) { error in
            XCTAssertEqual("\(error)", "dir/chat_template.jinja: chat template line 2: unsupported Jinja filter 'wordwrap'")
            guard case let .chatTemplate(e)? = error as? VLMError else { return XCTFail("\(error)") }
            XCTAssertEqual(e.kind, .unsupported)
        }
        XCTAssertThrowsError(try ChatTemplate(text: "{% include 'other.jinja' %}", source: "t.json")) { error in
            XCTAssertEqual("\(error)", "t.json: chat template line 1: unsupported Jinja statement {% include %}")
        }
    }

    func testUnclosedBlockNamesTheFileAndTheOpeningLine() {
        XCTAssertThrowsError(try ChatTemplate(text: "a\n{% for m in messages %}{% if m %}x{% endif %}", source: "m/tokenizer_config.json")) { error in
            XCTAssertEqual("\(error)", "m/tokenizer_config.json: chat template line 2: unclosed {% for %} (no {% else / endfor %} before the end of the template)")
        }
        XCTAssertThrowsError(try ChatTemplate(text: "{{ 'a' ", source: "x.jinja")) { error in
            XCTAssertEqual("\(error)", "x.jinja: chat template line 1: unclosed {{ … }}")
        }
    }

    func testRaiseExceptionIsOneLineWithTheTemplatesMessage() throws {
        let (reference, _) = try reference()
        let template = try ChatTemplate(text: try XCTUnwrap(reference.templates["llava-v1.6-mistral"]), source: "llava/chat_template.json")
        // Line 6: the template text holds newlines inside its string literals before the raise.
        XCTAssertThrowsError(try template.render(messages: [ChatMessage(role: "tool", parts: [.text("{}")])])) { error in
            XCTAssertEqual("\(error)", "llava/chat_template.json: the chat template refused the conversation (line 6): Only user and assistant roles are supported!")
            guard case let .chatTemplate(e)? = error as? VLMError else { return XCTFail("\(error)") }
            XCTAssertEqual(e.kind, .raised)
        }
    }

    func testRuntimeErrorsNameTheFileAndLineAndBoundAllocation() throws {
        let template = try ChatTemplate(text: "ok\n{{ 'ab' * 100000000 }}", source: "big.jinja")
        XCTAssertThrowsError(try template.render(messages: [])) { error in
            XCTAssertEqual("\(error)", "big.jinja: chat template line 2: repetition of 2 items 100000000 times exceeds 16 Mi items")
        }
        let undefined = try ChatTemplate(text: "{% if x %}{% endif %}\n{{ messages[3].role }}", source: "u.json")
        XCTAssertThrowsError(try undefined.render(messages: [])) { error in
            XCTAssertEqual("\(error)", "u.json: chat template line 2: 'role' of an undefined value")
        }
    }

    // MARK: where templates come from

    func testLoaderOrderAndFileNames() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("chat-template-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func write(_ name: String, _ text: String) throws {
            try text.write(toFile: (dir as NSString).appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        XCTAssertThrowsError(try ChatTemplate.load(directory: dir)) { error in
            XCTAssertTrue("\(error)".hasPrefix("\(dir): missing field 'chat_template"), "\(error)")
        }
        try write("tokenizer_config.json", #"{"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "C{{ 1 }}"}]}"#)
        var template = try ChatTemplate.load(directory: dir)
        XCTAssertEqual(template.source, (dir as NSString).appendingPathComponent("tokenizer_config.json"))
        XCTAssertEqual(try template.render(messages: []), "C1")
        try write("chat_template.json", #"{"chat_template": "J"}"#)
        template = try ChatTemplate.load(directory: dir)
        XCTAssertEqual(template.source, (dir as NSString).appendingPathComponent("chat_template.json"))
        XCTAssertEqual(try template.render(messages: []), "J")
        try write("chat_template.jinja", "{% if add_generation_prompt %}G{% endif %}\n")
        template = try ChatTemplate.load(directory: dir)
        XCTAssertEqual(template.source, (dir as NSString).appendingPathComponent("chat_template.jinja"))
        XCTAssertEqual(try template.render(messages: [], addGenerationPrompt: true), "G")
        try write("chat_template.json", #"{"template": "J"}"#)
        XCTAssertThrowsError(try ChatTemplate.load(directory: dir)) { error in
            XCTAssertEqual("\(error)", (dir as NSString).appendingPathComponent("chat_template.json") + ": chat_template is missing or not a string")
        }
    }

    func testGGUFTemplateNamesTheFile() throws {
        let path = Fixtures.path("lm-gguf", "model.gguf")
        let gguf = try GGUFFile(path: path)
        let template = try ChatTemplate(gguf: gguf)
        XCTAssertEqual(template.source, "\(path) (tokenizer.chat_template)")
        XCTAssertTrue(try template.render(messages: [ChatMessage(role: "user", content: "Hi")]).hasSuffix("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"))
        let tokenizer = try Tokenizer(gguf: gguf)
        XCTAssertEqual(try ChatTemplate(tokenizer: tokenizer).source, template.source)
    }
}
