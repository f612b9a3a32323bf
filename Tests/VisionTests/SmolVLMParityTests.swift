import Foundation
import Prune
import Tensor
import Vision
import TestSupport
import XCTest

/// Parity with transformers on the tiny random-weight fixtures made by tools/make_vision_fixtures.py.
final class SmolVLMParityTests: XCTestCase {
    func fixture(_ name: String) -> String { Fixtures.path(name) }

    func checkParity(_ name: String, expectedLayers: Int, expectedGrid: String) throws {
        let model = try SmolVLMVisionModel.load(directory: fixture(name))
        XCTAssertEqual(model.layerCount, expectedLayers)
        let reference = try SafeTensorsFile(path: fixture(name) + "/reference.safetensors")
        let rgb = try reference.int32s("input.rgb").map { UInt8($0) }
        let side = model.preprocessor.side

        let pixels = try model.preprocessor.pixelValues(width: side, height: side, rgb: rgb)
        XCTAssertLessThanOrEqual(maxAbsDiff(pixels, try reference.floats("pixel_values")), 1e-6, "\(name) pixel_values")

        let all = Set(1...model.layerCount)
        let output = try model.forward(pixelValues: pixels, height: side, width: side, scoreLayers: all, keepHiddenStates: true)
        XCTAssertEqual(output.hiddenStates.count, expectedLayers + 1)
        for (l, h) in output.hiddenStates.enumerated() {
            XCTAssertLessThanOrEqual(relativeError(h.storage, try reference.floats("hidden.\(l)")), 1e-4, "\(name) hidden.\(l)")
        }
        XCTAssertLessThanOrEqual(relativeError(output.lastHiddenState.storage, try reference.floats("last_hidden_state")), 1e-4)
        for l in all {
            let s = try XCTUnwrap(output.patchScores[l])
            XCTAssertLessThanOrEqual(maxAbsDiff(s, try reference.floats("patch_scores.\(l)")), 1e-5, "\(name) patch_scores.\(l)")
        }

        let frame = try model.encode(width: side, height: side, rgb: rgb, scoreLayers: all)
        XCTAssertEqual(frame.grid.description, expectedGrid)
        XCTAssertEqual(frame.grid.description, reference.metadata["grid"])
        XCTAssertEqual(frame.features.rows, frame.grid.count)
        XCTAssertLessThanOrEqual(relativeError(frame.features.storage, try reference.floats("features")), 1e-4, "\(name) features")
        XCTAssertEqual(Set(frame.scores.keys), all)
        for l in all {
            XCTAssertLessThanOrEqual(maxAbsDiff(try XCTUnwrap(frame.scores[l]), try reference.floats("scores.\(l)")), 1e-5, "\(name) scores.\(l)")
        }
        // Only the layers asked for are captured.
        let one = try model.encode(width: side, height: side, rgb: rgb, scoreLayers: [expectedLayers])
        XCTAssertEqual(Array(one.scores.keys), [expectedLayers])
        XCTAssertEqual(one.features, frame.features)
    }

    func testParitySmolVLMA() throws { try checkParity("smolvlm-a", expectedLayers: 2, expectedGrid: "4x4") }

    /// The encoder loaded under each F32 GEMM kernel (EncoderPaths.gemmKernel, read at load: packed
    /// weights with the bias, residual and GELU in the epilogue, or cblas_sgemm) meets the same bounds.
    func testParitySmolVLMAOnEachGEMMKernel() throws {
        let previous = EncoderPaths.current
        defer { EncoderPaths.current = previous }
        for kernel in [EncoderPaths.GEMMKernel.openBLAS, .packed] {
            EncoderPaths.current.gemmKernel = kernel
            try checkParity("smolvlm-a", expectedLayers: 2, expectedGrid: "4x4")
        }
    }

    func testParitySmolVLMBShardedBF16() throws { try checkParity("smolvlm-b", expectedLayers: 3, expectedGrid: "4x4") }

    func testConfigurationMirrorsJSON() throws {
        let config = try SmolVLMConfiguration.load(directory: fixture("smolvlm-b"))
        XCTAssertEqual(config.modelType, "smolvlm")
        XCTAssertEqual(config.scaleFactor, 4)
        XCTAssertEqual(config.imageTokenId, 127)
        XCTAssertEqual(config.visionConfig.hiddenSize, 48)
        XCTAssertEqual(config.visionConfig.patchSize, 6)
        XCTAssertEqual(config.textConfig.hiddenSize, 40)
        let pre = try XCTUnwrap(SmolVLMPreprocessorConfiguration.load(directory: fixture("smolvlm-b")))
        XCTAssertEqual(pre.frameSide, 96)
        // Defaults are transformers' when a field is absent.
        let empty = try JSONDecoder().decode(SmolVLMConfiguration.self, from: Data("{\"model_type\":\"idefics3\"}".utf8))
        XCTAssertEqual(empty.visionConfig.hiddenSize, 1152)
        XCTAssertEqual(empty.visionConfig.patchSize, 32)
        XCTAssertEqual(empty.scaleFactor, 2)
        XCTAssertEqual(empty.textConfig.hiddenSize, 4096)
    }

    func testPixelShuffleMapMatchesLayout() {
        // The 4×4 example drawn in PixelShuffle.swift.
        let shuffle = PixelShuffle(side: 4, scale: 2)
        XCTAssertEqual((0..<4).map { shuffle.patch(token: 0, chunk: $0) }, [0, 1, 4, 5])
        XCTAssertEqual((0..<4).map { shuffle.patch(token: 3, chunk: $0) }, [10, 11, 14, 15])
        XCTAssertEqual(shuffle.grid, TokenGrid(rows: 2, cols: 2))
    }

    func testResizesOtherFrameSizesToTheSquare() throws {
        let model = try SmolVLMVisionModel.load(directory: fixture("smolvlm-a"))
        // A uniform frame stays uniform whatever the resize: every value is (200 − 127.5) / 127.5.
        let rgb = [UInt8](repeating: 200, count: 40 * 30 * 3)
        let pixels = try model.preprocessor.pixelValues(width: 40, height: 30, rgb: rgb)
        XCTAssertEqual(pixels.count, 3 * 64 * 64)
        for p in pixels { XCTAssertEqual(p, (200 - 127.5) / 127.5, accuracy: 1e-6) }
        XCTAssertThrowsError(try model.preprocessor.pixelValues(width: 40, height: 30, rgb: [1, 2, 3])) { error in
            XCTAssertTrue("\(error)".contains("40x30"), "\(error)")
        }
    }
}
