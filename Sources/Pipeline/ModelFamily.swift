import Foundation
import Stream
import Tensor
import Vision
import VLM

/// A model family as the pipeline sees it: which `config.json` `model_type`s it claims, how it
/// loads its encoder and its answerer, how `ask` samples a clip by default, and what `inspect`
/// checks. A family is one value of this type, declared in its own file under `Families/`, and
/// one line in `ModelRegistry.families`; nothing else in the pipeline or the CLI learns its name
/// (docs/ADDING_A_FAMILY.md). HiPrune's default object and deep layers are the encoder's
/// (`FrameEncoder.defaultObjectLayer` / `defaultDeepLayer`): they depend on the loaded depth.
public struct ModelFamily: Sendable {
    /// The name users know the family by ("SmolVLM2", "LLaVA-1.5").
    public let name: String
    /// `config.json` `model_type` values the family claims.
    public let modelTypes: [String]
    /// How `ask` samples a file when no flag says.
    public let defaultSampling: FrameSampling
    let encoder: @Sendable (_ directory: String, _ precision: EncoderPrecision) throws -> any FrameEncoder
    let answerer: @Sendable (_ directory: String, _ precision: WeightPrecision) throws -> any VideoAnswerer
    let decoderShape: @Sendable (_ directory: String) throws -> DecoderShape
    let inspection: @Sendable (_ directory: String, _ weights: WeightStore) throws -> FamilyInspection
    /// How the family reads llama.cpp's text + mmproj GGUF pair; nil when it does not.
    public let mmproj: MmprojSupport?

    public init(name: String, modelTypes: [String], defaultSampling: FrameSampling,
                encoder: @escaping @Sendable (_ directory: String, _ precision: EncoderPrecision) throws -> any FrameEncoder,
                answerer: @escaping @Sendable (_ directory: String, _ precision: WeightPrecision) throws -> any VideoAnswerer,
                decoderShape: @escaping @Sendable (_ directory: String) throws -> DecoderShape,
                inspection: @escaping @Sendable (_ directory: String, _ weights: WeightStore) throws -> FamilyInspection,
                mmproj: MmprojSupport? = nil) {
        self.name = name
        self.modelTypes = modelTypes
        self.defaultSampling = defaultSampling
        self.encoder = encoder
        self.answerer = answerer
        self.decoderShape = decoderShape
        self.inspection = inspection
        self.mmproj = mmproj
    }

    /// The family's frame encoder, loaded from the directory with its weights held as `precision` says.
    public func loadEncoder(directory: String, precision: EncoderPrecision = .f32) throws -> any FrameEncoder {
        try encoder(directory, precision)
    }

    /// The family's language side, loaded with its weights held as `precision` says.
    public func loadAnswerer(directory: String, precision: WeightPrecision = .stored) throws -> any VideoAnswerer {
        try answerer(directory, precision)
    }

    /// The language model's shapes, for FLOP estimates.
    public func languageModelShape(directory: String) throws -> DecoderShape { try decoderShape(directory) }

    /// The family of the model directory, from `config.json`'s `model_type`.
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
        guard let family = ModelRegistry.family(modelType: modelType) else {
            throw .unsupportedModelType(file: file, modelType: modelType)
        }
        return family
    }
}

/// What a family tells `inspect` about a directory, read from its configuration without loading weights.
public struct FamilyInspection: Sendable {
    /// The family's shapes, one labelled line each ("vision", "frames", "text").
    public var facts: [(label: String, text: String)]
    /// Every tensor the family's loaders read, with its shape.
    public var expectedTensors: [(name: String, shape: [Int])]
    /// The part a tensor belongs to: "vision", "connector", "text", "lm_head" or "other".
    public var part: @Sendable (String) -> String

    public init(facts: [(label: String, text: String)], expectedTensors: [(name: String, shape: [Int])],
                part: @escaping @Sendable (String) -> String) {
        self.facts = facts
        self.expectedTensors = expectedTensors
        self.part = part
    }
}
