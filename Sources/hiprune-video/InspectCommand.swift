import Console
import ArgumentParser
import Foundation
import Pipeline

/// `hiprune-video inspect MODEL_DIR`: family, shapes, parameters, dtypes and what is missing.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Describe a model directory: family, shapes, parameter count, dtypes, and what is missing.")

    @Argument(help: ArgumentHelp(ModelRegistry.modelHelp))
    var model: String

    func run() throws {
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
}
