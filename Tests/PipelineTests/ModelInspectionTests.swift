import Foundation
import Pipeline
import Tensor
import XCTest

/// `inspect` checks a directory against the tensor lists the loaders read, for every family.
final class ModelInspectionTests: XCTestCase {
    static let fixtures = SelectionParityTests.fixtures

    func testSmolVLMShapesParametersAndMissingFiles() throws {
        let directory = Self.fixtures.appendingPathComponent("smolvlm-b").path
        let report = try ModelFamily.smolVLM.inspect(directory: directory)
        XCTAssertEqual(report.missingTensors, [])
        XCTAssertTrue(report.misshapenTensors.isEmpty)
        XCTAssertEqual(report.dtypes.keys.sorted(), ["BF16"])
        let frames = try XCTUnwrap(report.facts.first { $0.label == "frames" }?.text)
        XCTAssertTrue(frames.hasPrefix("96x96 → 256 patches → pixel shuffle ×4") && frames.contains("4x4 tokens of 40"), frames)
        // vision: patch 48·3·6·6 + 48, positions 256·48, 3 layers of (4·(48·48 + 48) + 4·48 + 80·48 + 80 + 48·80 + 48), post norm 96.
        let layer = 4 * (48 * 48 + 48) + 4 * 48 + 80 * 48 + 80 + 48 * 80 + 48
        XCTAssertEqual(report.parameters["vision"], 48 * 3 * 36 + 48 + 256 * 48 + 3 * layer + 96)
        XCTAssertEqual(report.parameters["connector"], 40 * 48 * 16)
        XCTAssertTrue(report.missingFiles.contains("tokenizer.json"))
    }

    func testQwenGridFollowsTheAspectAndEveryTensorIsChecked() throws {
        let directory = Self.fixtures.appendingPathComponent("qwen25vl-tiny").path
        let report = try ModelFamily.qwen25VL.inspect(directory: directory)
        XCTAssertEqual(report.missingTensors, [])
        XCTAssertTrue(report.misshapenTensors.isEmpty)
        let config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory + "/config.json"))) as? [String: Any])
        let vision = try XCTUnwrap(config["vision_config"] as? [String: Any])
        let d = try XCTUnwrap(vision["hidden_size"] as? Int), out = try XCTUnwrap(vision["out_hidden_size"] as? Int)
        // The merger: ln_q (d), mlp.0 (4d × 4d + 4d), mlp.2 (out × 4d + out).
        XCTAssertEqual(report.parameters["connector"], d + 16 * d * d + 4 * d + out * 4 * d + out)
        // The decoder, from config.json by hand: embeddings, per layer q/k/v (+ biases), o, gate/up/down
        // and two norms, the final norm; the head is tied.
        let text = (config["text_config"] as? [String: Any]) ?? config
        func int(_ key: String) throws -> Int { try XCTUnwrap((text[key] ?? config[key]) as? Int, key) }
        let h = try int("hidden_size"), layers = try int("num_hidden_layers"), heads = try int("num_attention_heads")
        let kv = try int("num_key_value_heads"), inter = try int("intermediate_size"), vocab = try int("vocab_size")
        let hd = h / heads
        let layer = h * heads * hd + heads * hd + 2 * (h * kv * hd + kv * hd) + heads * hd * h + 3 * h * inter + 2 * h
        XCTAssertEqual(report.parameters["text"], vocab * h + layers * layer + h)
        XCTAssertNil(report.parameters["lm_head"], "tie_word_embeddings: no separate head")
        XCTAssertNil(report.parameters["other"])
        let frames = try XCTUnwrap(report.facts.first { $0.label == "frames" }?.text)
        // max_pixels 50176 here: 448x252 shrinks by √(112896 / 50176) = 1.5 to 298.7x168, floored to
        // multiples of 28: 280x168, a 6x10 merged grid (wider than tall, as the clip).
        XCTAssertTrue(frames.contains("448x252 → 280x168 → 6x10 tokens"), frames)
    }

    func testADroppedAndAReshapedTensorAreReported() throws {
        let dropped = "model.text_model.layers.0.mlp.up_proj.weight", reshaped = "model.text_model.norm.weight"
        let report = try inspectWithout(dropped, reshaping: reshaped, of: Self.fixtures.appendingPathComponent("smolvlm-a").path,
                                        family: .smolVLM)
        XCTAssertEqual(report.missingTensors, [dropped])
        XCTAssertEqual(report.misshapenTensors.map(\.name), [reshaped])
        XCTAssertEqual(report.dtypes.keys.sorted(), ["F32"])
        XCTAssertTrue(report.missingFiles.contains("preprocessor_config.json"))
    }
}

extension XCTestCase {
    /// `inspect` of a copy of the checkpoint in `source` (its config.json and weights only) without
    /// the tensor `dropped` and with `reshaped` one value longer: what each family must report by name.
    func inspectWithout(_ dropped: String, reshaping reshaped: String, of source: String,
                        family: ModelFamily) throws -> ModelInspection {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("inspect-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.copyItem(atPath: source + "/config.json", toPath: directory + "/config.json")
        let file = try SafeTensorsFile(path: source + "/model.safetensors")
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
        return try family.inspect(directory: directory)
    }
}
