import ArgumentParser
import Foundation
import Vision

/// `hiprune-video inspect MODEL_DIR`: family, shapes, parameters, dtypes and what is missing.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Describe a model directory: family, shapes, parameter count, dtypes, and what is missing.")

    @Argument(help: "A Hugging Face model directory (SmolVLM2 / SmolVLM).")
    var model: String

    func run() throws {
        let report = try SmolVLMVisionModel.inspect(directory: model)
        let c = report.configuration, v = c.visionConfig, t = c.textConfig
        func millions(_ n: Int) -> String { String(format: "%.2f M", Double(n) / 1e6) }
        print("model      \(report.directory)")
        print("family     SmolVLM (model_type \(c.modelType))")
        print("vision     SigLIP: \(v.numHiddenLayers) layers, hidden \(v.hiddenSize), \(v.numAttentionHeads) heads, "
              + "intermediate \(v.intermediateSize), image \(v.imageSize), patch \(v.patchSize), \(v.hiddenAct)")
        print("frames     \(report.frameSide)x\(report.frameSide) → \((report.frameSide / v.patchSize) * (report.frameSide / v.patchSize)) patches "
              + "→ pixel shuffle ×\(c.scaleFactor) → \(report.grid) tokens of \(t.hiddenSize)")
        print("text       \(t.modelType): \(t.numHiddenLayers) layers, hidden \(t.hiddenSize), \(t.numAttentionHeads) heads "
              + "(\(t.keyValueHeads) kv, head dim \(t.headDimension)), intermediate \(t.intermediateSize), vocab \(t.vocabSize), "
              + "rope theta \(t.ropeTheta)")
        let parts = ["vision", "connector", "text", "lm_head", "other"].compactMap { part in
            report.parameters[part].map { "\(part) \(millions($0))" }
        }
        print("parameters \(millions(report.totalParameters)) (\(parts.joined(separator: ", ")))")
        print("dtypes     " + report.dtypes.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", "))
        if report.missingTensors.isEmpty && report.misshapenTensors.isEmpty {
            print("tensors    all expected tensors present with their shapes")
        } else {
            for name in report.missingTensors { print("missing    tensor \(name)") }
            for t in report.misshapenTensors { print("misshapen  tensor \(t.name): \(t.found), expected \(t.expected)") }
        }
        for file in report.missingFiles { print("missing    file \(file)") }
    }
}
