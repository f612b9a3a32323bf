import Foundation
import Tensor
import Vision
import TestSupport
import XCTest

/// Broken model directories, made at test time from fixture a, each give their typed error.
final class ModelDirectoryErrorTests: XCTestCase {
    var directory = ""

    override func setUpWithError() throws {
        let source = URL(fileURLWithPath: Fixtures.path("smolvlm-a"))
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("hiprune-vision-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for file in ["config.json", "preprocessor_config.json", "model.safetensors"] {
            try FileManager.default.copyItem(atPath: source.appendingPathComponent(file).path, toPath: directory + "/" + file)
        }
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: directory) }

    var modelFile: String { directory + "/model.safetensors" }

    /// Rewrites model.safetensors through `edit` (name → (values, shape)).
    func rewriteWeights(_ edit: (inout [String: ([Float], [Int])]) -> Void) throws {
        let file = try SafeTensorsFile(path: modelFile)
        var tensors: [String: ([Float], [Int])] = [:]
        for (name, entry) in file.entries { tensors[name] = (try file.floats(name), entry.shape) }
        edit(&tensors)
        var writer = SafeTensorsWriter()
        for (name, t) in tensors.sorted(by: { $0.key < $1.key }) { try writer.add(name, floats: t.0, shape: t.1) }
        try writer.write(to: modelFile)
    }

    func expectLoadError(_ check: (VisionError) -> Bool, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try SmolVLMVisionModel.load(directory: directory), file: file, line: line) { error in
            guard let error = error as? VisionError else { return XCTFail("not a VisionError: \(error)", file: file, line: line) }
            XCTAssertTrue(check(error), "unexpected: \(error)", file: file, line: line)
        }
    }

    func testIntactCopyLoads() throws {
        XCTAssertNoThrow(try SmolVLMVisionModel.load(directory: directory))
    }

    func testMissingTensorIsNamed() throws {
        let name = "model.vision_model.encoder.layers.1.mlp.fc2.weight"
        try rewriteWeights { $0[name] = nil }
        expectLoadError {
            guard case let .weights(.missingTensor(missing, _)) = $0 else { return false }
            return missing == name && "\($0)".contains(name)
        }
    }

    func testWrongShapeIsNamed() throws {
        let name = "model.vision_model.encoder.layers.0.self_attn.k_proj.weight"
        try rewriteWeights { $0[name] = ([Float](repeating: 0, count: 32 * 16), [16, 32]) }
        expectLoadError {
            guard case let .weights(.wrongShape(n, expected, found)) = $0 else { return false }
            return n == name && expected == [32, 32] && found == [16, 32]
        }
    }

    func testTruncatedSafetensors() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: modelFile))
        try data.prefix(data.count - 1000).write(to: URL(fileURLWithPath: modelFile))
        expectLoadError {
            guard case let .weights(.malformed(file, cause)) = $0 else { return false }
            return file == self.modelFile && cause.contains("beyond the file")
        }
    }

    func testHeaderLengthBeyondFile() throws {
        var data = try Data(contentsOf: URL(fileURLWithPath: modelFile))
        data.replaceSubrange(0..<8, with: [0xFF, 0xFF, 0xFF, 0x7F, 0, 0, 0, 0])
        try data.write(to: URL(fileURLWithPath: modelFile))
        expectLoadError {
            guard case let .weights(.malformed(file, cause)) = $0 else { return false }
            return file == self.modelFile && cause.contains("header length")
        }
    }

    func testUnsupportedDTypeIsNamed() throws {
        var writer = SafeTensorsWriter()
        try writer.add("x", int32s: [1, 2], shape: [2])
        try writer.write(to: directory + "/ints.safetensors")
        let file = try SafeTensorsFile(path: directory + "/ints.safetensors")
        XCTAssertThrowsError(try file.floats("x")) { error in
            XCTAssertEqual(error as? WeightsError, .unsupportedDType(name: "x", dtype: "I32"))
        }
    }

    func testMalformedJSON() throws {
        try Data("{\"model_type\": \"smolvlm\", ".utf8).write(to: URL(fileURLWithPath: directory + "/config.json"))
        expectLoadError {
            guard case let .malformedJSON(file, _) = $0 else { return false }
            return file.hasSuffix("config.json")
        }
    }

    func testWrongFieldTypeNamesTheField() throws {
        try Data("{\"model_type\": \"smolvlm\", \"vision_config\": {\"hidden_size\": \"big\"}}".utf8)
            .write(to: URL(fileURLWithPath: directory + "/config.json"))
        expectLoadError {
            guard case let .invalidConfiguration(_, field, _) = $0 else { return false }
            return field.contains("hidden_size")
        }
    }

    func testUnknownModelType() throws {
        let url = URL(fileURLWithPath: directory + "/config.json")
        let text = try String(contentsOf: url, encoding: .utf8).replacingOccurrences(of: "\"model_type\": \"smolvlm\"", with: "\"model_type\": \"qwen9_vl\"")
        try Data(text.utf8).write(to: url)
        expectLoadError {
            guard case let .unknownModelType(file, type) = $0 else { return false }
            return file.hasSuffix("config.json") && type == "qwen9_vl"
        }
    }

    func testMissingConfig() throws {
        try FileManager.default.removeItem(atPath: directory + "/config.json")
        expectLoadError {
            guard case let .missingFile(file) = $0 else { return false }
            return file.hasSuffix("config.json")
        }
    }
}
