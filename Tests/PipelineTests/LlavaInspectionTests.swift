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
        let dropped = "multi_modal_projector.linear_2.bias", reshaped = "vision_tower.embeddings.class_embedding"
        let report = try inspectWithout(dropped, reshaping: reshaped, of: Fixtures.path("llava-tiny"), family: .llava)
        XCTAssertEqual(report.missingTensors, [dropped])
        XCTAssertEqual(report.misshapenTensors.map(\.name), [reshaped])
    }
}
