// A checkpoint's own chat template, rendered as transformers renders it: the Jinja text shipped
// with the model, run by a small interpreter of the Jinja subset chat templates use
// (JinjaSyntax.swift parses, JinjaRuntime.swift evaluates, JinjaValue.swift holds Python's value
// semantics), with jinja2's settings in transformers (trim_blocks, lstrip_blocks, loop controls,
// `{% generation %}`, `raise_exception`, `strftime_now`, a JSON `tojson`).
//
// API (for families and the CLI):
//   let template = try ChatTemplate.load(directory: dir)          // or ChatTemplate(gguf:), ChatTemplate(tokenizer:),
//                                                                  // ChatTemplate(text:source:)
//   let text = try template.render(messages: [ChatMessage(role: "user", parts: [.video, .text("Why?")])],
//                                  addGenerationPrompt: true, bosToken: "<s>", eosToken: "</s>")
// Messages' content is a string or a list of parts ({"type": "text", "text": …}, {"type": "image"},
// {"type": "video"}), as transformers passes them; `tools` and `documents` are none, as when
// apply_chat_template gets neither; `variables` adds or overrides any other name.
//
// Where a directory's template comes from (ChatTemplate.locate): tokenizer_config.json's
// `chat_template` (a string, or the entry named "default" of a list), then chat_template.json's
// `chat_template`, then chat_template.jinja — a later file wins, as a processor's template wins over
// its tokenizer's in transformers. A GGUF carries it as `tokenizer.chat_template`.
//
// Every failure is one line naming the template's file: a syntax error or a construct this engine
// lacks (unknown filter, test or statement — found when the template is loaded), a runtime error
// with the template line, or the template's own raise_exception message.
import Foundation

/// One part of a message's content, as transformers' processors take it.
public enum ChatContentPart: Sendable, Equatable {
    case text(String)
    case image
    case video
}

public enum ChatContent: Sendable, Equatable {
    case text(String)
    case parts([ChatContentPart])
}

public struct ChatMessage: Sendable, Equatable {
    public var role: String
    public var content: ChatContent

    /// The message with string content as a single text part.
    public var withTypedContent: ChatMessage {
        guard case let .text(t) = content else { return self }
        return ChatMessage(role: role, parts: [.text(t)])
    }

    public init(role: String, content: String) {
        self.role = role
        self.content = .text(content)
    }

    public init(role: String, parts: [ChatContentPart]) {
        self.role = role
        self.content = .parts(parts)
    }

    /// The message as the template sees it: {"role": …, "content": str | [{"type": …, "text": …}]}.
    var value: JinjaValue {
        let content: JinjaValue
        switch self.content {
        case let .text(t): content = .string(t)
        case let .parts(parts):
            content = .array(parts.map { part in
                switch part {
                case let .text(t): return .object(JinjaObject([("type", .string("text")), ("text", .string(t))]))
                case .image: return .object(JinjaObject([("type", .string("image"))]))
                case .video: return .object(JinjaObject([("type", .string("video"))]))
                }
            })
        }
        return .object(JinjaObject([("role", .string(role)), ("content", content)]))
    }
}

/// A chat template that failed to load or render; the description is one line naming the file.
public struct ChatTemplateError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// Not valid Jinja (unclosed block, stray tag, bad expression).
        case syntax
        /// Valid Jinja this engine does not implement (the message names the construct).
        case unsupported
        /// The template called raise_exception (the message is the template's).
        case raised
        /// Evaluation failed (undefined attribute, bad operand …).
        case runtime
    }

    public var file: String
    public var line: Int
    public var kind: Kind
    public var message: String

    public var description: String {
        let oneLine = message.replacingAll("\n", with: "\\n")
        switch kind {
        case .syntax: return "\(file): chat template line \(line): \(oneLine)"
        case .unsupported: return "\(file): chat template line \(line): unsupported Jinja \(oneLine)"
        case .raised: return "\(file): the chat template refused the conversation (line \(line)): \(oneLine)"
        case .runtime: return "\(file): chat template line \(line): \(oneLine)"
        }
    }
}

public struct ChatTemplate: Sendable {
    /// The template text.
    public let text: String
    /// The file it came from (named by every error).
    public let source: String
    private let program: [JinjaNode]
    /// True when the template drops a message's content given as a string but renders it given as
    /// a text part (processor templates such as SmolVLM's iterate the content's parts). Callers
    /// with plain text (the `chat` command) then pass it as one text part — llama.cpp's minja
    /// probes its templates the same way ("requires typed content").
    public let requiresTypedContent: Bool

    /// Parses `text`; `source` names the file for errors.
    public init(text: String, source: String) throws(VLMError) {
        self.text = text
        self.source = source
        let program: [JinjaNode]
        do {
            program = try JinjaParser.parse(text)
        } catch {
            throw .chatTemplate(ChatTemplateError(file: source, line: error.line, kind: error.unsupported ? .unsupported : .syntax,
                                                  message: error.message))
        }
        let probe = "\u{2}probe\u{3}"
        func renders(_ message: ChatMessage) -> Bool {
            let names: [String: JinjaValue] = ["messages": .array([message.value]), "add_generation_prompt": .bool(true),
                                               "tools": .none, "documents": .none]
            return (try? JinjaRuntime.render(program, variables: names))?.contains(probe) ?? false
        }
        self.program = program
        requiresTypedContent = !renders(ChatMessage(role: "user", content: probe)) && renders(ChatMessage(role: "user", parts: [.text(probe)]))
    }

    /// The template of a model directory (see the file header for the order); errors name the file.
    public static func load(directory: String) throws(VLMError) -> ChatTemplate {
        guard let found = try locate(directory: directory) else {
            throw .missingField(file: directory, field: "chat_template (in tokenizer_config.json, chat_template.json or chat_template.jinja)")
        }
        return try ChatTemplate(text: found.text, source: found.file)
    }

    /// The template a GGUF carries in `tokenizer.chat_template`.
    public init(gguf: GGUFFile) throws(VLMError) {
        guard let text = gguf.string("tokenizer.chat_template") else {
            throw .missingField(file: gguf.path, field: "tokenizer.chat_template")
        }
        try self.init(text: text, source: Self.ggufSource(gguf.path))
    }

    /// The template the tokenizer was loaded with (its directory's or its GGUF's).
    public init(tokenizer: Tokenizer) throws(VLMError) {
        guard let text = tokenizer.chatTemplate else {
            throw .missingField(file: tokenizer.chatTemplateFile ?? "tokenizer", field: "chat_template")
        }
        try self.init(text: text, source: tokenizer.chatTemplateFile ?? "tokenizer")
    }

    static func ggufSource(_ path: String) -> String { "\(path) (tokenizer.chat_template)" }

    /// The template text of a directory and the file holding it, or nil when no file has one.
    public static func locate(directory: String) throws(VLMError) -> (text: String, file: String)? {
        func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }
        var found: (text: String, file: String)?
        let config = path("tokenizer_config.json")
        if FileManager.default.fileExists(atPath: config) {
            switch try readJSONObject(config)["chat_template"] {
            case nil, is NSNull: break
            case let text as String: found = (text, config)
            case let named as [[String: Any]]:
                // Several named templates: transformers' apply_chat_template takes "default".
                guard let text = named.first(where: { $0["name"] as? String == "default" })?["template"] as? String else {
                    throw .malformed(file: config, cause: "chat_template lists named templates but none named 'default'")
                }
                found = (text, config)
            default: throw .malformed(file: config, cause: "chat_template is neither a string nor a list of named templates")
            }
        }
        let json = path("chat_template.json")
        if FileManager.default.fileExists(atPath: json) {
            guard let text = try readJSONObject(json)["chat_template"] as? String else {
                throw .malformed(file: json, cause: "chat_template is missing or not a string")
            }
            found = (text, json)
        }
        let jinja = path("chat_template.jinja")
        if FileManager.default.fileExists(atPath: jinja) {
            guard let data = FileManager.default.contents(atPath: jinja), let text = String(data: data, encoding: .utf8) else {
                throw .unreadable(file: jinja, cause: "not readable as UTF-8 text")
            }
            found = (text, jinja)
        }
        return found
    }

    /// The prompt text for `messages`, with the assistant's turn opened when `addGenerationPrompt`.
    /// `now` is the instant `strftime_now()` formats (templates such as SmolLM3's and Llama 3's print
    /// today's date); nil is the current time, as transformers renders it.
    public func render(messages: [ChatMessage], addGenerationPrompt: Bool = true, bosToken: String? = nil,
                       eosToken: String? = nil, variables: [String: JinjaValue] = [:], now: Date? = nil) throws(VLMError) -> String {
        var names: [String: JinjaValue] = [
            "messages": .array(messages.map(\.value)),
            "add_generation_prompt": .bool(addGenerationPrompt),
            "tools": .none,
            "documents": .none,
        ]
        if let bosToken { names["bos_token"] = .string(bosToken) }
        if let eosToken { names["eos_token"] = .string(eosToken) }
        names.merge(variables) { $1 }
        do {
            return try JinjaRuntime.render(program, variables: names, now: now.map { time_t($0.timeIntervalSince1970) } ?? time(nil))
        } catch {
            throw .chatTemplate(ChatTemplateError(file: source, line: error.line, kind: error.raised ? .raised : .runtime,
                                                  message: error.message))
        }
    }
}
