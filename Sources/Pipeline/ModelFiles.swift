import Foundation
import Tensor
import Vision
import VLM

/// What `--model` (with `--mmproj`) names: a Hugging Face model directory, or llama.cpp's pair of
/// GGUFs — a text model and its vision projector — as llama-mtmd-cli takes them. Commands load
/// through this; the family comes from config.json's `model_type` or the mmproj's
/// `clip.projector_type`, and nothing here learns a family's name.
public struct ModelFiles: Sendable {
    public enum Source: Sendable {
        case directory(String)
        case gguf(text: String, mmproj: MmprojFile, reader: MmprojSupport)
    }

    public let family: ModelFamily
    public let source: Source

    /// Resolves `--model` and `--mmproj`, refusing a pair that cannot belong together with one line
    /// naming the file and the field: a projector of a type no family reads, a text model of another
    /// architecture, or widths that differ (the text and mmproj of different models).
    public init(model: String, mmproj: String?) throws {
        var isDirectory: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: model, isDirectory: &isDirectory)
        guard let mmproj else {
            if exists && !isDirectory.boolValue && model.hasSuffix(".gguf") {
                throw PipelineError.invalidOption(flag: "--model", cause: "\(model) is a GGUF text model: give its vision projector with --mmproj MMPROJ.gguf (llama.cpp's projector file)")
            }
            family = try ModelFamily.detect(directory: model)
            source = .directory(model)
            return
        }
        if exists && isDirectory.boolValue {
            throw PipelineError.invalidOption(flag: "--mmproj", cause: "goes with a text-model .gguf as --model, and \(model) is a model directory")
        }
        let projector = try MmprojFile(path: mmproj)
        guard let family = ModelRegistry.family(mmproj: projector), let support = family.mmproj else {
            let known = ModelRegistry.projectorTypes.joined(separator: ", ")
            throw VLMError.unsupported(file: mmproj, feature: "clip.projector_type '\(projector.projectorType)' (supported: \(known))")
        }
        let text = try GGUFFile(path: model)
        let architecture = text.string("general.architecture") ?? "(none)"
        guard support.textArchitectures.contains(architecture) else {
            throw VLMError.unsupported(
                file: model, feature: "general.architecture '\(architecture)' beside \(mmproj)'s \(projector.projectorType) projector (\(family.name) pairs it with \(support.textArchitectures.joined(separator: ", ")); text and mmproj of different models?)")
        }
        let widthKey = "\(architecture).embedding_length"
        guard let width = text.int(widthKey) else { throw VLMError.missingField(file: model, field: widthKey) }
        let (projection, field) = try support.outputWidth(projector)
        guard projection == width else {
            throw VLMError.malformed(file: mmproj, cause: "\(field) \(projection) differs from \(model)'s \(widthKey) \(width): the text model and the projector are of different models")
        }
        self.family = family
        source = .gguf(text: model, mmproj: projector, reader: support)
    }

    /// The model directory, or the text GGUF (for messages and served model ids).
    public var path: String {
        switch source {
        case let .directory(directory): return directory
        case let .gguf(text, _, _): return text
        }
    }

    /// The family's frame encoder, its weights held as `precision` says.
    public func loadEncoder(precision: EncoderPrecision = .f32) throws -> any FrameEncoder {
        switch source {
        case let .directory(directory): return try family.loadEncoder(directory: directory, precision: precision)
        case let .gguf(_, mmproj, reader): return try reader.encoder(mmproj, precision)
        }
    }

    /// The family's language side, its weights held as `precision` says.
    public func loadAnswerer(precision: WeightPrecision = .stored) throws -> any VideoAnswerer {
        switch source {
        case let .directory(directory): return try family.loadAnswerer(directory: directory, precision: precision)
        case let .gguf(text, mmproj, reader): return try reader.answerer(text, mmproj, precision)
        }
    }

    /// The language model's shapes, for FLOP estimates and the context budget.
    public func languageModelShape() throws -> DecoderShape {
        switch source {
        case let .directory(directory): return try family.languageModelShape(directory: directory)
        case let .gguf(text, _, reader): return try reader.decoderShape(try GGUFFile(path: text))
        }
    }
}
