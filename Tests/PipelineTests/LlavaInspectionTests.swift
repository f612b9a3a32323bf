import Foundation
import Pipeline
import Tensor
import TestSupport
import XCTest

/// `inspect` on the LLaVA families' fixtures: every tensor the loaders read is checked under the
/// layout each checkpoint uses (transformers 5's save, its module names, llava-hf's).
final class LlavaInspectionTests: XCTestCase {
    func testEveryLlavaFixtureHasItsTensorsAndShapes() throws {
        for (name, family, kind) in [("llava-tiny", ModelFamily.llava, "llama"), ("llava-next-tiny", .llavaNext, "mistral"),
                                     ("llava-next-video-tiny", .llavaNextVideo, "llama")] {
            XCTAssertEqual(try ModelFamily.detect(directory: Fixtures.path(name)).name, family.name)
            let report = try family.inspect(directory: Fixtures.path(name))
            XCTAssertEqual(report.missingTensors, [], name)
            XCTAssertTrue(report.misshapenTensors.isEmpty, name)
            XCTAssertEqual(report.dtypes.keys.sorted(), ["BF16"], name)
            let text = try XCTUnwrap(report.facts.first { $0.label == "text" }?.text)
            XCTAssertTrue(text.hasPrefix(kind + ":"), text)
            // Projector: linear_1 (32 × 32 + 32), linear_2 (32 × 32 + 32); LLaVA-NeXT(-Video) add image_newline (32).
            XCTAssertEqual(report.parameters["connector"], 2 * (32 * 32 + 32) + (name == "llava-tiny" ? 0 : 32), name)
        }
        let frames = try XCTUnwrap(try ModelFamily.llavaNextVideo.inspect(directory: Fixtures.path("llava-next-video-tiny"))
            .facts.first { $0.label == "frames" }?.text)
        XCTAssertTrue(frames.contains("24x24 → average pool ×2 → 12x12 tokens"), frames)
    }

    func testADroppedAndAReshapedTensorAreReported() throws {
        let source = Fixtures.path("llava-tiny")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("inspect-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.copyItem(atPath: source + "/config.json", toPath: directory + "/config.json")
        let file = try SafeTensorsFile(path: source + "/model.safetensors")
        let dropped = "multi_modal_projector.linear_2.bias", reshaped = "vision_tower.embeddings.class_embedding"
        var writer = SafeTensorsWriter()
        for name in file.entries.keys.sorted() where name != dropped {
            let values = try file.floats(name)
            if name == reshaped {
                try writer.add(name, floats: values + [0], shape: [values.count + 1])
            } else {
                try writer.add(name, floats: values, shape: try XCTUnwrap(file.entries[name]).shape)
            }
        }
        try writer.write(to: directory + "/model.safetensors")
        let report = try ModelFamily.llava.inspect(directory: directory)
        XCTAssertEqual(report.missingTensors, [dropped])
        XCTAssertEqual(report.misshapenTensors.map(\.name), [reshaped])
    }
}
