import Foundation
import Vision
import VLM

/// Why a model directory cannot be used; each case names the directory or file.
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
            let known = ModelFamily.allCases.flatMap(\.modelTypes).sorted().joined(separator: ", ")
            return "\(file): model_type '\(modelType)' is not supported (supported: \(known))"
        case let .invalidOption(flag, cause):
            return "\(flag): \(cause)"
        case let .output(path, cause):
            return "\(path): \(cause)"
        }
    }
}

/// The model families the pipeline knows, chosen from `config.json`'s `model_type`.
public enum ModelFamily: String, Sendable, CaseIterable {
    case smolVLM = "smolvlm"
    case qwen25VL = "qwen2_5_vl"

    public var displayName: String {
        switch self {
        case .smolVLM: return "SmolVLM"
        case .qwen25VL: return "Qwen2.5-VL"
        }
    }

    public var modelTypes: [String] {
        switch self {
        case .smolVLM: return ["smolvlm", "idefics3"]
        case .qwen25VL: return ["qwen2_5_vl"]
        }
    }

    /// Reads `model_type` from `directory/config.json`.
    public static func detect(directory: String) throws(PipelineError) -> ModelFamily {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw .notADirectory(directory)
        }
        let file = (directory as NSString).appendingPathComponent("config.json")
        guard let data = FileManager.default.contents(atPath: file) else {
            throw .unreadableConfiguration(file: file, cause: "missing or unreadable")
        }
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: data) } catch {
            throw .unreadableConfiguration(file: file, cause: "malformed JSON")
        }
        guard let fields = object as? [String: Any], let modelType = fields["model_type"] as? String else {
            throw .unreadableConfiguration(file: file, cause: "no model_type field")
        }
        guard let family = allCases.first(where: { $0.modelTypes.contains(modelType) }) else {
            throw .unsupportedModelType(file: file, modelType: modelType)
        }
        return family
    }

    /// The family's frame encoder, loaded from the directory.
    public func loadEncoder(directory: String, precision: EncoderPrecision = .f32) throws -> any FrameEncoder {
        switch self {
        case .smolVLM: return try SmolVLMVisionModel.load(directory: directory, precision: precision)
        case .qwen25VL: return try Qwen25VLVisionModel.load(directory: directory, precision: precision)
        }
    }

    /// The language model's shapes, for FLOP estimates.
    public func languageModelShape(directory: String) throws -> DecoderShape {
        let config = (directory as NSString).appendingPathComponent("config.json")
        switch self {
        case .smolVLM: return try LlamaConfiguration(configFile: config).decoderShape
        case .qwen25VL: return try Qwen2Configuration(configFile: config).decoderShape
        }
    }
}

extension DecoderShape {
    /// FLOPs (2 per multiply-add) of prefilling `tokens` tokens: the projections and the gated MLP
    /// for every token, causal attention (query i reads i + 1 keys), and the logits of the last token.
    public func prefillFLOPs(tokens: Int) -> Double {
        let n = Double(tokens), d = Double(hiddenSize)
        let qo = 2 * d * Double(heads * headDimension)
        let kv = 2 * d * Double(kvHeads * headDimension)
        let mlp = 3 * d * Double(intermediateSize)
        let projections = 2 * n * (qo + kv + mlp)
        let attentionPairs = n * (n + 1) / 2
        let attention = 2 * 2 * attentionPairs * Double(heads * headDimension)
        let logits = tokens > 0 ? 2 * d * Double(vocabularySize) : 0
        return Double(layers) * (projections + attention) + logits
    }
}
