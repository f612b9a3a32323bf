// What a model directory holds, without loading its weights: the family and its shapes, parameters
// by part, dtypes, and what is missing or misshapen against the very tensor lists the loaders read
// (each encoder's `expectedTensors`, DecoderWeights' for the language model).
import Foundation
import Tensor
import Vision
import VLM

public struct ModelInspection: Sendable {
    public var directory: String
    public var family: ModelFamily
    /// The family's shapes, one labelled line each ("vision", "frames", "text").
    public var facts: [(label: String, text: String)]
    /// Parameters per part: "vision", "connector", "text", "lm_head", "other".
    public var parameters: [String: Int]
    /// Tensor count per stored dtype.
    public var dtypes: [String: Int]
    /// Expected tensors absent from the checkpoint.
    public var missingTensors: [String]
    /// Tensors present with another shape.
    public var misshapenTensors: [(name: String, expected: [Int], found: [Int])]
    /// Files of a complete model directory that are absent.
    public var missingFiles: [String]

    public var totalParameters: Int { parameters.values.reduce(0, +) }
}

extension ModelFamily {
    /// Inspects a model directory; throws only when its configuration or a weights file cannot be read.
    public func inspect(directory: String) throws -> ModelInspection {
        let weights = try WeightStore(directory: directory)
        let family = try inspection(directory, weights)
        var parameters: [String: Int] = [:]
        var dtypes: [String: Int] = [:]
        for name in weights.names {
            guard let entry = weights.entry(name) else { continue }
            parameters[family.part(name), default: 0] += entry.shape.reduce(1, *)
            dtypes[entry.dtype, default: 0] += 1
        }
        var missing: [String] = []
        var misshapen: [(name: String, expected: [Int], found: [Int])] = []
        for (name, shape) in family.expectedTensors {
            guard let entry = weights.entry(name) else { missing.append(name); continue }
            if entry.shape != shape { misshapen.append((name, shape, entry.shape)) }
        }
        let files = ["preprocessor_config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"]
        let missingFiles = files.filter { !FileManager.default.fileExists(atPath: (directory as NSString).appendingPathComponent($0)) }
        return ModelInspection(directory: directory, family: self, facts: family.facts, parameters: parameters, dtypes: dtypes,
                               missingTensors: missing, misshapenTensors: misshapen, missingFiles: missingFiles)
    }
}

extension ModelInspection {
    /// One line of a decoder's shapes, as the families' `text` facts print it.
    public static func describe(_ s: DecoderShape, kind: String, theta: Float) -> String {
        "\(kind): \(s.layers) layers, hidden \(s.hiddenSize), \(s.heads) heads (\(s.kvHeads) kv, head dim \(s.headDimension)), "
            + "intermediate \(s.intermediateSize), vocab \(s.vocabularySize), rope theta \(theta)"
    }
}
