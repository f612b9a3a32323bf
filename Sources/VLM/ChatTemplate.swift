// Chat prompts for the templates SmolLM2 and SmolVLM2 ship. A Jinja engine is out of scope: the
// shipped template text is recognised and its format reproduced exactly.
//   ChatML (SmolLM2-Instruct):  <|im_start|>{role}\n{content}<|im_end|>\n … <|im_start|>assistant\n
//     with the template's default system message when the conversation starts without one.
//   SmolVLM:  <|im_start|>{Role}: {content}<end_of_utterance>\n … Assistant:
// Anything else is an error that says so.

public struct ChatMessage: Sendable, Equatable {
    public var role: String
    public var content: String
    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

public enum ChatTemplate: Sendable, Equatable {
    case chatML(defaultSystem: String?)
    case smolVLM

    /// Recognises a shipped template; `source` names the file for the error.
    public init(template: String?, source: String) throws(VLMError) {
        guard let template else {
            throw .missingField(file: source, field: "chat_template")
        }
        if template.contains("<|im_start|>"), template.contains("<|im_end|>"), template.contains("message['role']") {
            self = .chatML(defaultSystem: Self.defaultSystem(in: template))
        } else if template.contains("<end_of_utterance>"), template.contains("capitalize") {
            self = .smolVLM
        } else {
            throw .unsupported(file: source, feature: "chat template (only ChatML-style <|im_start|>…<|im_end|> and SmolVLM templates are understood)")
        }
    }

    /// The literal system message a ChatML template inserts when the first message is not one.
    private static func defaultSystem(in template: String) -> String? {
        guard template.contains("messages[0]['role'] != 'system'") else { return nil }
        for marker in ["<|im_start|>system\n", "<|im_start|>system\\n"] {
            guard let start = template.range(of: marker),
                  let end = template.range(of: "<|im_end|>", range: start.upperBound..<template.endIndex) else { continue }
            return String(template[start.upperBound..<end.lowerBound]).replacingOccurrences(of: "\\n", with: "\n")
        }
        return nil
    }

    /// The prompt text for `messages`, ending with the assistant's turn when `addGenerationPrompt`.
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool = true) -> String {
        var out = ""
        switch self {
        case let .chatML(defaultSystem):
            if let defaultSystem, messages.first?.role != "system" {
                out += "<|im_start|>system\n\(defaultSystem)<|im_end|>\n"
            }
            for m in messages { out += "<|im_start|>\(m.role)\n\(m.content)<|im_end|>\n" }
            if addGenerationPrompt { out += "<|im_start|>assistant\n" }
        case .smolVLM:
            out = "<|im_start|>"
            for m in messages {
                out += "\(m.role.prefix(1).uppercased())\(m.role.dropFirst().lowercased()): \(m.content)<end_of_utterance>\n"
            }
            if addGenerationPrompt { out += "Assistant:" }
        }
        return out
    }
}

private extension String {
    func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
