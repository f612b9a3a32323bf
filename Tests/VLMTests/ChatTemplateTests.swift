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

    func testChatMLRendersLikeTransformers() throws {
        let template = try ChatTemplate(template: Self.smolLM2, source: "test")
        XCTAssertEqual(template.render([ChatMessage(role: "user", content: "Hi")]),
                       "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
                       + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
        XCTAssertEqual(template.render([ChatMessage(role: "system", content: "Be brief."), ChatMessage(role: "user", content: "Hi")]),
                       "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    }

    func testSmolVLMTemplate() throws {
        let text = try XCTUnwrap(try Fixtures.json("tokenizer", "tokenizer_config.json")["chat_template"] as? String)
        XCTAssertEqual(try ChatTemplate(template: text, source: "t"), .chatML(defaultSystem: "You are a helpful AI assistant named SmolLM, trained by Hugging Face"))
        let smolVLM = "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}: …<end_of_utterance>\\n{% endfor %}"
        let template = try ChatTemplate(template: smolVLM, source: "t")
        XCTAssertEqual(template.render([ChatMessage(role: "user", content: "Describe.")]),
                       "<|im_start|>User: Describe.<end_of_utterance>\nAssistant:")
    }

    func testOtherTemplatesAreRejectedClearly() {
        XCTAssertThrowsError(try ChatTemplate(template: "{{ bos_token }}[INST] {{ messages[0]['content'] }} [/INST]", source: "m.gguf")) { error in
            XCTAssertTrue("\(error)".hasPrefix("m.gguf: unsupported chat template"), "\(error)")
        }
        XCTAssertThrowsError(try ChatTemplate(template: nil, source: "dir")) { error in
            XCTAssertEqual("\(error)", "dir: missing field 'chat_template'")
        }
    }
}
