import Foundation
import Prune
import Tensor
import Vision
import TestSupport
import XCTest

/// Parity of the CLIP tower and LLaVA-1.5's vision side with transformers, on the tiny random-weight
/// fixture made by tools/make_llava_fixtures.py (a 3-layer CLIP on 48-px images in 2-px patches:
/// the 24 × 24 grid of ViT-L/14-336).
final class LlavaParityTests: XCTestCase {
    static let directory = Fixtures.path("llava-tiny")



    func reference() throws -> SafeTensorsFile { try SafeTensorsFile(path: Self.directory + "/reference.safetensors") }

    func testCLIPTowerHiddenStatesAndScoresMatchTransformers() throws {
        let config = try LlavaConfiguration.load(directory: Self.directory)
        let weights = try WeightStore(directory: Self.directory)
        let prefix = LlavaVisionModel.prefixes(of: weights).tower
        XCTAssertEqual(prefix, "vision_tower.")  // what transformers 5 saves
        // The whole tower (LLaVA itself stops at the feature layer).
        let tower = try CLIPVisionModel(configuration: config.visionConfig, prefix: prefix, layers: 3) { name, shape throws(WeightsError) in
            try weights.matrix(name, shape: shape)
        }
        let model = try LlavaVisionModel.load(directory: Self.directory)
        let ref = try reference()
        let rgb = try ref.int32s("input.rgb").map { UInt8($0) }
        let pixels = try model.preprocessor.pixelValues(width: 48, height: 48, rgb: rgb)
        XCTAssertLessThanOrEqual(maxAbsDiff(pixels, try ref.floats("pixel_values")), 1e-5)

        let out = try tower.forward(pixelValues: pixels, scoreLayers: [1, 2, 3], keepHiddenStates: true)
        XCTAssertEqual(out.hiddenStates.count, 4)
        for l in [0, 2, 3] {
            XCTAssertLessThanOrEqual(relativeError(out.hiddenStates[l].storage, try ref.floats("hidden.\(l)")), 1e-4, "hidden.\(l)")
        }
        XCTAssertEqual(out.lastHiddenState, out.hiddenStates[3])
        for l in 1...3 {
            let s = try XCTUnwrap(out.patchScores[l])
            XCTAssertEqual(s.count, 576, "the CLS column is dropped")
            XCTAssertLessThanOrEqual(maxAbsDiff(s, try ref.floats("patch_scores.\(l)")), 1e-5, "patch_scores.\(l)")
        }
    }

    func testProjectedFeaturesAndFrameMatchTransformers() throws {
        let model = try LlavaVisionModel.load(directory: Self.directory)
        XCTAssertEqual(model.family, "llava")
        XCTAssertEqual(model.layerCount, 2, "vision_feature_layer −2 of 3: the tower runs 2 layers")
        XCTAssertEqual(model.defaultObjectLayer, 1)  // round(9 · 3 / 24)
        XCTAssertEqual(model.defaultDeepLayer, 2)
        let ref = try reference()
        XCTAssertEqual(ref.metadata["feature_layer"], "2")
        let rgb = try ref.int32s("input.rgb").map { UInt8($0) }
        let frame = try XCTUnwrap(model.encode([RGBImage(width: 48, height: 48, rgb: rgb)], scoreLayers: [1, 2]).views.first)
        XCTAssertEqual(frame.grid, TokenGrid(rows: 24, cols: 24))
        XCTAssertEqual(frame.grid.description, ref.metadata["grid"])
        XCTAssertEqual(frame.features.rows, 576)
        XCTAssertEqual(frame.features.cols, model.featureWidth)
        XCTAssertLessThanOrEqual(relativeError(frame.features.storage, try ref.floats("features")), 1e-4)
        for l in 1...2 {
            XCTAssertLessThanOrEqual(maxAbsDiff(try XCTUnwrap(frame.scores[l]), try ref.floats("patch_scores.\(l)")), 1e-5)
        }
        XCTAssertThrowsError(try model.encode([RGBImage(width: 48, height: 48, rgb: rgb)], scoreLayers: [3])) { error in
            XCTAssertTrue("\(error)".contains("1...2"), "\(error)")
        }
    }

    /// HiPrune's `reference` mode on the CLIP scores of a 24 × 24 grid keeps exactly what the
    /// published arithmetic keeps (tools/prune_reference.py) at the paper's 192 / 128 / 64 tokens.
    func testReferenceSelectionOnCLIPScoresMatchesThePublishedArithmetic() throws {
        struct Reference: Decodable {
            var kept: [String: [Int]]
            var object_layer: Int
            var deep_layer: Int
        }
        let expected = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: URL(fileURLWithPath: Self.directory + "/reference.json")))
        let model = try LlavaVisionModel.load(directory: Self.directory)
        let rgb = try reference().int32s("input.rgb").map { UInt8($0) }
        let frame = try XCTUnwrap(model.encode(width: 48, height: 48, rgb: rgb, scoreLayers: [expected.object_layer, expected.deep_layer]).views.first)
        let object = try XCTUnwrap(frame.scores[expected.object_layer]), deep = try XCTUnwrap(frame.scores[expected.deep_layer])
        XCTAssertEqual(Set(expected.kept.keys), ["192", "128", "64"])
        for (budget, kept) in expected.kept {
            let selection = try HiPrune(alpha: 0.1, mode: .reference)
                .select(objectScores: object, deepScores: deep, grid: frame.grid, budget: .count(Int(budget)!))
            XCTAssertEqual(selection.indices, kept, "budget \(budget)")
        }
    }

    func testResizeAndCropFollowTheCLIPProcessor() throws {
        let model = try LlavaVisionModel.load(directory: Self.directory)
        XCTAssertEqual(model.preprocessor.resizedSize(width: 80, height: 60).width, 64)
        XCTAssertEqual(model.preprocessor.resizedSize(width: 80, height: 60).height, 48)
        XCTAssertEqual(model.preprocessor.resizedSize(width: 30, height: 100).height, 160)  // int(48 · 100 / 30)
        let ref = try reference()
        let rgb = try ref.int32s("resize.rgb").map { UInt8($0) }
        let pixels = try model.preprocessor.pixelValues(width: 80, height: 60, rgb: rgb)
        let expected = try ref.floats("resize.pixel_values")
        // Resized values are whole numbers 0...255 on both sides; torch's uint8 kernel uses fixed-point
        // weights, which round the odd value the other way: one level at most (1 / (255 · std) ≈ 0.0152).
        XCTAssertLessThanOrEqual(maxAbsDiff(pixels, expected), 0.0153)
        let differing = zipSameLength(pixels, expected).filter { abs($0 - $1) > 1e-4 }.count
        XCTAssertLessThan(differing, expected.count / 100, "\(differing) of \(expected.count) values differ")
    }

    func testPadToSquareCentresTheFrameOnTheMeanColour() throws {
        let model = try LlavaVisionModel.load(directory: Self.directory)
        var pre = model.preprocessor
        pre.padToSquare = true
        XCTAssertEqual(pre.inputSize(sourceWidth: 96, sourceHeight: 48).width, 48)
        // A white 96 × 48 frame padded to 96 × 96: the top and bottom quarters are the mean colour,
        // which normalises to (int(mean · 255) − 255 · mean) / (255 · std), close to 0.
        let pixels = try pre.pixelValues(width: 96, height: 48, rgb: [UInt8](repeating: 255, count: 96 * 48 * 3))
        let white = (255 - 255 * 0.48145466) / (255 * 0.26862954) as Float
        XCTAssertEqual(pixels[0], (Float(Int(0.48145466 * 255)) - 255 * 0.48145466) / (255 * 0.26862954), accuracy: 1e-4)
        XCTAssertEqual(pixels[24 * 48 + 24], white, accuracy: 1e-4)
    }

    func testListOfFeatureLayersIsAClearError() throws {
        XCTAssertThrowsError(try LlavaConfiguration(json: ["model_type": "llava", "vision_feature_layer": [-2, -5]], file: "config.json")) { error in
            XCTAssertTrue("\(error)".contains("vision_feature_layer"), "\(error)")
        }
        XCTAssertThrowsError(try LlavaConfiguration(json: ["model_type": "llava", "vision_feature_layer": 30], file: "config.json")) { error in
            XCTAssertTrue("\(error)".contains("vision_feature_layer"), "\(error)")
        }
        // Defaults: LlavaConfig's CLIP ViT-L/14-336 and layer −2 → 23 layers run.
        let defaults = try LlavaConfiguration(json: ["model_type": "llava"], file: "config.json")
        XCTAssertEqual(defaults.featureLayerIndex, 23)
        XCTAssertEqual(defaults.visionConfig.gridSide, 24)
    }
}
