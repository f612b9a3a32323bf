// A text model ready to chat: decoder, tokenizer, chat template and stop tokens, loaded from a
// GGUF file or a Hugging Face directory (LlamaForCausalLM, or the text side of SmolVLM2).
import Foundation

public struct LanguageModel: Sendable {
    public let model: LlamaModel
    public let tokenizer: Tokenizer
    /// nil when the files ship no chat template.
    public let template: ChatTemplate?
    /// The reason there is no template (for the error a chat request gets), if any.
    public let templateProblem: VLMError?
    public let stopTokens: Set<Int>
    public let source: String

    /// Loads `path`: a .gguf file or a model directory.
    public init(path: String, precision: WeightPrecision = .stored) throws(VLMError) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw .unreadable(file: path, cause: "no such file or directory")
        }
        source = path
        if isDirectory.boolValue {
            tokenizer = try Tokenizer(directory: path)
            model = try LlamaModel(directory: path, precision: precision)
        } else {
            let gguf = try GGUFFile(path: path)
            tokenizer = try Tokenizer(gguf: gguf)
            model = try LlamaModel(gguf: gguf, precision: precision)
        }
        guard tokenizer.count <= model.configuration.vocabularySize else {
            throw .malformed(file: path, cause: "tokenizer has \(tokenizer.count) tokens, the model's vocabulary \(model.configuration.vocabularySize)")
        }
        stopTokens = StopTokens.read(directory: isDirectory.boolValue ? path : nil,
                                     configured: model.configuration.eosTokenIDs, tokenizer: tokenizer)
        do {
            template = try ChatTemplate(template: tokenizer.chatTemplate, source: path)
            templateProblem = nil
        } catch {
            template = nil
            templateProblem = error
        }
    }

    /// The token ids of a chat prompt in the model's own template.
    public func chatPrompt(_ messages: [ChatMessage]) throws(VLMError) -> [Int] {
        guard let template else { throw templateProblem ?? .missingField(file: source, field: "chat_template") }
        return tokenizer.encode(template.render(messages))
    }
}
