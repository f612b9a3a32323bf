import Foundation
import Pipeline
import Prune
import Tensor
import Vision
import TestSupport
import XCTest

/// `--encoder-precision bf16` keeps HiPrune's choice: over every case of the selection fixtures
/// (tools/make_selection_fixtures.py: budgets, alphas, layers, both buffer modes), the tokens kept
/// with the BF16 encoder agree with the F32 encoder's on at least 95 % of the kept tokens, through
/// both BF16 routes (widened weights; the AVX512-BF16 kernel's arithmetic, emulated where the CPU
/// lacks it).
final class EncoderBF16SelectionTests: XCTestCase {
    func testSelectionAgreesWithF32OnNinetyFivePercentOfKeptTokens() throws {
        let data = try Data(contentsOf: SelectionParityTests.fixtures.appendingPathComponent("selection/reference.json"))
        let reference = try JSONDecoder().decode(SelectionParityTests.Reference.self, from: data)
        let model = SelectionParityTests.fixtures.appendingPathComponent("smolvlm-vqa").path
        let family = try ModelFamily.detect(directory: model)
        func selections(_ precision: EncoderPrecision) throws -> [[Int]] {
            let encoder = try family.loadEncoder(directory: model, precision: precision)
            let encoded = try reference.frames.map { frame in
                try encoder.encode([RGBImage(width: frame.width, height: frame.height, rgb: frame.rgb)],
                                   scoreLayers: Set(1...encoder.layerCount))
            }
            var kept: [[Int]] = []
            for test in reference.cases {
                let settings = PruneSettings(method: .hiprune, budget: .count(test.budget), alpha: test.alpha,
                                             mode: try XCTUnwrap(HiPrune.Mode(rawValue: test.mode)),
                                             objectLayer: test.object_layer, deepLayer: test.deep_layer)
                var stage = try PruningStage(settings: settings, encoder: encoder)
                for (i, frame) in encoded.enumerated() {
                    kept.append(try stage.prune(frame, index: i, time: Double(i), encodeMilliseconds: 0).0.views.flatMap(\.selection.indices))
                }
            }
            return kept
        }
        let f32 = try selections(.f32)
        func agreement(_ bf16: [[Int]]) -> Double {
            let same = zipSameLength(f32, bf16).reduce(0) { $0 + Set($1.0).intersection($1.1).count }
            return Double(same) / Double(f32.reduce(0) { $0 + $1.count })
        }
        let widened = agreement(try selections(.bf16))
        let emulated = agreement(try BF16Kernel.emulating { try selections(.bf16) })
        XCTAssertGreaterThanOrEqual(widened, 0.95, "widened BF16 weights: \(widened)")
        XCTAssertGreaterThanOrEqual(emulated, 0.95, "BF16 products: \(emulated)")
        XCTAssertGreaterThan(f32.reduce(0) { $0 + $1.count }, 50, "enough kept tokens for a share to mean something")
        print("bf16 selection agreement: widened \(widened), bf16 products \(emulated)")
    }
}
