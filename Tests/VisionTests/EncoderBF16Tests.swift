import Foundation
import Prune
import Tensor
import Vision
import TestSupport
import XCTest

/// `--encoder-precision bf16` against transformers' F32 outputs on the SmolVLM and Qwen2.5-VL
/// fixtures, through both BF16 routes: weights widened for an F32 GEMM (every CPU), and the
/// AVX512-BF16 kernel's arithmetic (activations rounded to BF16 too; emulated where the CPU lacks it).
///
/// The bound, against transformers' F32 outputs: features within 2e-2 (SmolVLM) and 1e-1 (the tiny
/// Qwen2.5-VL) of the largest reference feature; scores within 2e-3 absolute for both (a score is a
/// share of attention). Measured on these fixtures: SmolVLM ≤ 6.5e-3 (widened weights) and ≤ 5.9e-3
/// (BF16 activations too); Qwen ≤ 3.0e-2 and ≤ 6.4e-2 — its random weights amplify the rounding
/// (BF16 keeps 8 significant bits: 2⁻⁹ ≈ 2e-3 per value) through SiLU gates and RMS norms. The
/// kernels themselves are held to 1e-5 against Double in BF16GemmTests; a wrong kernel misses these
/// bounds by O(1). smolvlm-b ships BF16 weights, so its widened route equals F32 (≈ 1e-6).
final class EncoderBF16Tests: XCTestCase {
    static let featureBound: Float = 2e-2
    static let qwenFeatureBound: Float = 1e-1
    static let scoreBound: Float = 2e-3

    /// Runs `body` once per BF16 route this machine can take: "widened" (skipped where the CPU
    /// multiplies BF16 natively: then there is no widening route), "emulated" and, with AVX512-BF16,
    /// "native".
    func onEveryRoute(_ body: (String) throws -> Void) throws {
        if !EncoderPrecision.nativeBF16 { try body("widened") }
        try BF16Kernel.emulating { try body(EncoderPrecision.nativeBF16 ? "native" : "emulated") }
    }

    func checkSmolVLM(_ name: String) throws {
        let directory = Fixtures.path(name)
        let reference = try SafeTensorsFile(path: directory + "/reference.safetensors")
        let rgb = try reference.int32s("input.rgb").map { UInt8($0) }
        try onEveryRoute { route in
            let model = try SmolVLMVisionModel.load(directory: directory, precision: .bf16)
            let side = model.preprocessor.side
            let all = Set(1...model.layerCount)
            let frame = try model.encode(width: side, height: side, rgb: rgb, scoreLayers: all)
            let features = relativeError(frame.features.storage, try reference.floats("features"))
            XCTAssertLessThanOrEqual(features, Self.featureBound, "\(name) \(route) features: \(features)")
            if name != "smolvlm-b" || route != "widened" {
                XCTAssertGreaterThan(features, 1e-4, "\(name) \(route): BF16 must differ from F32 (is it in use?)")
            }
            for l in all {
                let scores = maxAbsDiff(try XCTUnwrap(frame.scores[l]), try reference.floats("scores.\(l)"))
                XCTAssertLessThanOrEqual(scores, Self.scoreBound, "\(name) \(route) scores.\(l): \(scores)")
            }
            print("bf16 \(name) \(route): features \(features)")
        }
    }

    func testSmolVLMABound() throws { try checkSmolVLM("smolvlm-a") }
    func testSmolVLMBBound() throws { try checkSmolVLM("smolvlm-b") }

    func testQwen25VLBound() throws {
        let directory = Qwen25VLParityTests.directory
        let reference = try SafeTensorsFile(path: directory + "/reference.safetensors")
        try onEveryRoute { route in
            let model = try Qwen25VLVisionModel.load(directory: directory, precision: .bf16)
            let blocks = Set(1...model.layerCount)
            for c in Qwen25VLParityTests.cases {
                let clip = (0..<c.frames).map { (width: c.width, height: c.height, rgb: Qwen25VLParityTests.frame(width: c.width, height: c.height, index: $0)) }
                let encoded = try model.encode(clip: clip, scoreLayers: blocks)
                let expected = try reference.floats("\(c.name).features")
                let width = try XCTUnwrap(encoded.first).features.cols
                var offset = 0, worst: Float = 0
                for (tp, patch) in encoded.enumerated() {
                    let count = patch.grid.count * width
                    let features = relativeError(patch.features.storage, Array(expected[offset..<(offset + count)]))
                    worst = max(worst, features)
                    XCTAssertLessThanOrEqual(features, Self.qwenFeatureBound, "\(c.name) \(route) t\(tp) features: \(features)")
                    for l in blocks {
                        let scores = maxAbsDiff(try XCTUnwrap(patch.scores[l]), try reference.floats("\(c.name).scores.\(l).\(tp)"))
                        XCTAssertLessThanOrEqual(scores, Self.scoreBound, "\(c.name) \(route) t\(tp) scores.\(l): \(scores)")
                    }
                    offset += count
                }
                XCTAssertGreaterThan(worst, 1e-4, "\(c.name) \(route): BF16 must differ from F32 (is it in use?)")
                print("bf16 qwen \(c.name) \(route): features \(worst)")
            }
        }
    }
}
