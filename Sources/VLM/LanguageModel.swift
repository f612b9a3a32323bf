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
        var stops: Set<Int> = []
        if isDirectory.boolValue {
            tokenizer = try Tokenizer(directory: path)
            model = try LlamaModel(directory: path, precision: precision)
            let generation = (path as NSString).appendingPathComponent("generation_config.json")
            if let config = try? readJSONObject(generation) {
                if let ids = config["eos_token_id"] as? [Int] { stops.formUnion(ids) } else if let id = config["eos_token_id"] as? Int { stops.insert(id) }
            }
        } else {
            // A device or a fifo (/dev/zero) is neither: say so rather than what mapping it says.
            guard (try? FileManager.default.attributesOfItem(atPath: path)[.type] as? FileAttributeType) == .typeRegular else {
                throw .unreadable(file: path, cause: "not a regular file (a .gguf file or a model directory is expected)")
            }
            let gguf = try GGUFFile(path: path)
            tokenizer = try Tokenizer(gguf: gguf)
            model = try LlamaModel(gguf: gguf, precision: precision)
        }
        guard tokenizer.count <= model.configuration.vocabularySize else {
            throw .malformed(file: path, cause: "tokenizer has \(tokenizer.count) tokens, the model's vocabulary \(model.configuration.vocabularySize)")
        }
        stops.formUnion(model.configuration.eosTokenIDs)
        if let eos = tokenizer.eosID { stops.insert(eos) }
        for name in ["<end_of_utterance>", "<|im_end|>", "<|endoftext|>"] {
            if let id = tokenizer.id(of: name) { stops.insert(id) }
        }
        stopTokens = stops
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
