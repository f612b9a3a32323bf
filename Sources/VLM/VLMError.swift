// Errors of the language side. Every case names the input (file, tensor, field, token) and the
// cause, so the CLI can print the description as the whole message.

import Tensor

public enum VLMError: Error, CustomStringConvertible, Equatable {
    /// A safetensors problem (the inner error names file and tensor).
    case weights(WeightsError)
    /// A file that cannot be opened or read.
    case unreadable(file: String, cause: String)
    /// A file that was read but does not have the expected structure.
    case malformed(file: String, cause: String)
    /// A feature of a file that this implementation does not support (pre-tokenizer, tensor type …).
    case unsupported(file: String, feature: String)
    /// A required field missing from a configuration or metadata.
    case missingField(file: String, field: String)
    /// A tensor whose name, type or shape is wrong.
    case badTensor(file: String, tensor: String, cause: String)
    /// A prompt (plus generation) that does not fit the model's context.
    case contextOverflow(tokens: Int, context: Int)
    /// A token id outside the vocabulary.
    case tokenOutOfRange(id: Int, vocabulary: Int)
    /// An argument outside its domain (temperature, top-p, embedding shape …).
    case invalidArgument(name: String, cause: String)
    /// A chat template that cannot be loaded or rendered (names the template's file).
    case chatTemplate(ChatTemplateError)

    public var description: String {
        switch self {
        case let .weights(error): return error.description
        case let .unreadable(file, cause): return "\(file): cannot read: \(cause)"
        case let .malformed(file, cause): return "\(file): \(cause)"
        case let .unsupported(file, feature): return "\(file): unsupported \(feature)"
        case let .missingField(file, field): return "\(file): missing field '\(field)'"
        case let .badTensor(file, tensor, cause): return "\(file): tensor '\(tensor)': \(cause)"
        case let .contextOverflow(tokens, context):
            return "prompt of \(tokens) tokens does not fit the context of \(context) tokens"
        case let .tokenOutOfRange(id, vocabulary): return "token id \(id) is outside the vocabulary of \(vocabulary)"
        case let .invalidArgument(name, cause): return "\(name): \(cause)"
        case let .chatTemplate(error): return error.description
        }
    }
}
