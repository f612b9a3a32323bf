import Console
import ArgumentParser
import Foundation
import Pipeline
import VLM

/// `hiprune-video inspect MODEL_DIR`: family, shapes, parameters, dtypes and what is missing.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Describe a model directory (family, shapes, parameter count, dtypes, what is missing) or a GGUF file (each tensor's type and bytes, and the bytes held in memory).")

    @Argument(help: ArgumentHelp(ModelRegistry.modelHelp + " Or a language-model .gguf file."))
    var model: String

    @Option(help: ArgumentHelp(ModelRegistry.mmprojHelp + " inspect lists both files and checks that they belong together."))
    var mmproj: String?

    @Option(help: "For a GGUF: how the weights would be held (stored, f32, bf16, q8_0, q4_k); the bytes held are shown for it.")
    var weights = WeightPrecision.stored

    func run() throws {
        if model.hasSuffix(".gguf") || mmproj != nil {
            try inspectGGUF()
            return
        }
        let family = try ModelFamily.detect(directory: model)
        let report = try family.inspect(directory: model)
        func millions(_ n: Int) -> String { String(format: "%.2f M", Double(n) / 1e6) }
        func line(_ label: String, _ text: String) { Console.line(label.padding(toLength: 11, withPad: " ", startingAt: 0) + text) }
        line("model", report.directory)
        line("family", family.name)
        for fact in report.facts { line(fact.label, fact.text) }
        let parts = ["vision", "connector", "text", "lm_head", "other"].compactMap { part in
            report.parameters[part].map { "\(part) \(millions($0))" }
        }
        line("parameters", "\(millions(report.totalParameters)) (\(parts.joined(separator: ", ")))")
        line("dtypes", report.dtypes.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", "))
        if report.missingTensors.isEmpty && report.misshapenTensors.isEmpty {
            line("tensors", "all expected tensors present with their shapes")
        } else {
            for name in report.missingTensors { line("missing", "tensor \(name)") }
            for t in report.misshapenTensors { line("misshapen", "tensor \(t.name): \(t.found), expected \(t.expected)") }
        }
        for file in report.missingFiles { line("missing", "file \(file)") }
    }

    /// A text GGUF, or llama.cpp's text + mmproj pair (resolved as the other commands resolve it,
    /// so a mismatched pair is refused here too).
    private func inspectGGUF() throws {
        var reports = [try GGUFInspection(path: model, precision: weights)]
        var family: String?
        if let mmproj {
            let files = try ModelFiles(model: model, mmproj: mmproj)
            guard case let .gguf(_, projector, _) = files.source else { return }
            family = files.family.name
            reports.append(GGUFInspection(mmproj: projector))
        }
        func megabytes(_ n: Int) -> String { String(format: "%.2f MB", Double(n) / 1e6) }
        func line(_ label: String, _ text: String) { print(label.padding(toLength: 11, withPad: " ", startingAt: 0) + text) }
        if let family { line("family", family) }
        for (index, report) in reports.enumerated() {
            let projector = index > 0
            line(projector ? "mmproj" : "model", report.path)
            line("arch", report.architecture)
            line("types", report.byType.map { "\($0.type) ×\($0.count) \(megabytes($0.bytes))" }.joined(separator: ", "))
            if let held = report.heldBytes {
                line("held", projector
                     ? "\(megabytes(held)) (\(held) bytes) of vision-encoder weights in memory (F32, as the encoder loads them)"
                     : "\(megabytes(held)) (\(held) bytes) of language-model weights in memory with --weights \(weights.rawValue)")
            } else if let problem = report.loadProblem {
                line("held", "not loadable: \(problem)")
            }
            for t in report.tensors {
                line("tensor", "\(t.name)  \(t.type)  \(t.dimensions.map(String.init).joined(separator: "x"))  \(t.bytes) bytes")
            }
        }
    }
}
