import Foundation
import TestSupport
import XCTest
import Pipeline
import Prune
import Vision

/// Issue 4: the kept indices that stats reports equal the selection recomputed in Python from
/// transformers' attentions (tools/make_selection_fixtures.py): our encoder + `PruningStage`
/// on the same frames give identical indices and roles, in grid and reference mode.
final class SelectionParityTests: XCTestCase {
    struct Reference: Decodable {
        struct Frame: Decodable { var width: Int; var height: Int; var rgb: [UInt8] }
        struct Kept: Decodable { var indices: [Int]; var roles: [String] }
        struct Case: Decodable {
            var mode: String
            var budget: Int
            var alpha: Double
            var object_layer: Int
            var deep_layer: Int
            var frames: [Kept]
        }
        var grid: String
        var frames: [Frame]
        var cases: [Case]
    }

    static let fixtures = URL(fileURLWithPath: Fixtures.root)

    func testKeptIndicesAndRolesMatchTransformersAttentions() throws {
        let data = try Data(contentsOf: Self.fixtures.appendingPathComponent("selection/reference.json"))
        let reference = try JSONDecoder().decode(Reference.self, from: data)
        let model = Self.fixtures.appendingPathComponent("smolvlm-vqa").path
        let encoder = try ModelFamily.detect(directory: model).loadEncoder(directory: model)
        let encoded = try reference.frames.map { frame in
            try encoder.encode([RGBImage(width: frame.width, height: frame.height, rgb: frame.rgb)],
                               scoreLayers: Set(1...encoder.layerCount))
        }
        XCTAssertEqual(reference.cases.count, 10)
        for test in reference.cases {
            let mode = try XCTUnwrap(HiPrune.Mode(rawValue: test.mode))
            let settings = PruneSettings(method: .hiprune, budget: .count(test.budget), alpha: test.alpha, mode: mode,
                                         objectLayer: test.object_layer, deepLayer: test.deep_layer)
            var stage = try PruningStage(settings: settings, encoder: encoder)
            XCTAssertEqual(encoded.count, test.frames.count)
            for (i, (frame, expected)) in zipSameLength(encoded, test.frames).enumerated() {
                XCTAssertEqual(frame.views.count, 1)
                XCTAssertEqual(frame.views[0].grid.description, reference.grid)
                let (pruned, statistics) = try stage.prune(frame, index: i, time: Double(i), encodeMilliseconds: 0)
                let label = "\(test.mode) budget \(test.budget) alpha \(test.alpha) layers \(test.object_layer)/\(test.deep_layer) frame \(i)"
                let selection = try pruned.singleView(family: "test").selection
                XCTAssertEqual(selection.indices, expected.indices, label)
                XCTAssertEqual(selection.roles.map(\.rawValue), expected.roles, label)
                XCTAssertEqual(statistics.tokensAfter, expected.indices.count, label)
                XCTAssertEqual(statistics.temporalDrops, 0, label)
            }
        }
    }
}
