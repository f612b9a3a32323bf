/// Why a model directory, an option or an output cannot be used; each case names the directory,
/// file, flag or path.
public enum PipelineError: Error, CustomStringConvertible, Sendable {
    case notADirectory(String)
    case unreadableConfiguration(file: String, cause: String)
    case unsupportedModelType(file: String, modelType: String)
    case invalidOption(flag: String, cause: String)
    case output(path: String, cause: String)

    public var description: String {
        switch self {
        case .notADirectory(let path):
            return "\(path): not a model directory (expected config.json and model.safetensors as Hugging Face saves them)"
        case let .unreadableConfiguration(file, cause):
            return "\(file): \(cause)"
        case let .unsupportedModelType(file, modelType):
            return "\(file): model_type '\(modelType)' is not supported (supported: \(ModelRegistry.modelTypes.joined(separator: ", ")))"
        case let .invalidOption(flag, cause):
            return "\(flag): \(cause)"
        case let .output(path, cause):
            return "\(path): \(cause)"
        }
    }
}
