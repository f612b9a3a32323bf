import CKernels
import Foundation
import Tensor
import TestSupport
import XCTest

/// BF16 products (the encoder's `--encoder-precision bf16`) against Double: the packed AVX512-BF16
/// kernel (native where the CPU has it; its portable emulation everywhere, which follows the
/// instruction's arithmetic), and the widened-panel F32 GEMM used elsewhere.
final class BF16GemmTests: XCTestCase {
    var rng = SplitMix(seed: 16)
    func values(_ count: Int, scale: Float = 1) -> [Float] { (0..<count).map { _ in rng.nextFloat() * scale } }
    func widen(_ h: UInt16) -> Double { Double(Float(bitPattern: UInt32(h) << 16)) }

    func testRoundingToNearestEven() {
        XCTAssertEqual(Float(1).bf16Rounded, 0x3F80)
        XCTAssertEqual(Float(1 + 1.0 / 256).bf16Rounded, 0x3F80, "a tie rounds to the even neighbour (down)")
        XCTAssertEqual(Float(1 + 3.0 / 256).bf16Rounded, 0x3F82, "a tie rounds to the even neighbour (up)")
        XCTAssertEqual(Float(1 + 1.0 / 256 + 1.0 / 65536).bf16Rounded, 0x3F81, "past the tie rounds up")
        XCTAssertEqual(Float(-2.5).bf16Rounded, 0xC020)
        XCTAssertEqual(Float.infinity.bf16Rounded, 0x7F80)
        XCTAssertTrue(Float(bitPattern: UInt32(Float.nan.bf16Rounded) << 16).isNaN)
    }

    /// y = beta·y + bf16(x)·Wᵀ through the packed kernel, against Double on odd shapes (panel tails,
    /// odd k, row blocks of 6 and 96).
    func checkPackedKernel(forcePortable: Bool, label: String) {
        for (rows, n, k) in [(1, 1, 1), (5, 31, 3), (7, 33, 17), (13, 65, 64), (97, 40, 127), (200, 3, 2)] {
            let x = values(rows * (k + 3), scale: 3), w = values(n * k).map(\.bf16Rounded)
            var packed = [UInt32](repeating: 0xDEAD_BEEF, count: bf16_packed_words(n, k))
            bf16_pack_panels(w, n, k, &packed)
            for beta: Float in [0, 0.5] {
                let start = values(rows * (n + 1))
                var y = start
                bf16_gemm(x, rows, k + 3, packed, n, k, &y, n + 1, beta, forcePortable ? 1 : 0)
                var worst = 0.0
                for r in 0..<rows {
                    for j in 0..<n {
                        var sum = Double(beta) * Double(start[r * (n + 1) + j]), magnitude = abs(sum)
                        for t in 0..<k {
                            let term = widen(x[r * (k + 3) + t].bf16Rounded) * widen(w[j * k + t])
                            sum += term
                            magnitude += abs(term)
                        }
                        worst = max(worst, abs(Double(y[r * (n + 1) + j]) - sum) / (magnitude + 1e-30))
                    }
                    XCTAssertEqual(y[r * (n + 1) + n], start[r * (n + 1) + n], "\(label) wrote past row \(r)")
                }
                XCTAssertLessThanOrEqual(worst, 1e-5, "\(label) \(rows)x\(n)x\(k) beta \(beta)")
            }
        }
    }

    func testPackedKernelPortableEmulation() { checkPackedKernel(forcePortable: true, label: "emulated") }

    func testPackedKernelAVX512BF16() throws {
        try skipUnlessCPU(missing: InstructionSet.avx512.missingFeature ?? (InstructionSet.cpuHas("avx512_bf16") ? nil : "avx512_bf16"),
                          "AVX512-BF16 kernel")
        InstructionSet.with(.avx512) {
            XCTAssertEqual(bf16_gemm_native(), 1)
            checkPackedKernel(forcePortable: false, label: "avx512_bf16")
        }
    }

    /// linear() with a bf16Products matrix: the widened-panel F32 GEMM (two full panels and a short
    /// one), and the emulated BF16 kernel, with bias and accumulation.
    func testLinearWithBF16ProductsAgainstDouble() throws {
        let k = 3001, panel = WeightMatrix.widenedPanelRows(cols: k), rows = 9, n = 2 * panel + 5
        let w = try Matrix(rows: n, cols: k, storage: values(n * k))
        let x = values(rows * k), bias = values(n), start = values(rows * n)
        for emulate in [false, true] {
            let run = { () -> (WeightMatrix, [Float], [Float]) in
                let weight = WeightMatrix(w, bf16Products: true)
                var y = start, plain = [Float](repeating: .nan, count: rows * n), scratch: [Float] = []
                y.withUnsafeMutableBufferPointer { py in
                    linear(x, rows: rows, inputStride: k, weight: weight, bias: bias, into: py.baseAddress!, outputStride: n,
                           accumulate: true, scratch: &scratch)
                }
                plain.withUnsafeMutableBufferPointer { py in
                    linear(x, rows: rows, inputStride: k, weight: weight, into: py.baseAddress!, outputStride: n, scratch: &scratch)
                }
                if !emulate || !weight.usesNativeBF16 {
                    XCTAssertEqual(scratch.count, panel * k, "one panel of widened rows, never the whole matrix")
                }
                return (weight, y, plain)
            }
            let (weight, y, plain) = emulate ? BF16Kernel.emulating(run) : run()
            XCTAssertTrue(weight.isBF16 && weight.bf16Products)
            let nativeNow = InstructionSet.cpuHas("avx512_bf16") && InstructionSet.active >= .avx512
            XCTAssertEqual(emulate ? BF16Kernel.emulating { weight.usesNativeBF16 } : weight.usesNativeBF16, emulate || nativeNow)
            let roundsX = emulate || nativeNow
            var worst = 0.0, worstPlain = 0.0
            for r in 0..<rows {
                for j in 0..<n {
                    var sum = 0.0, magnitude = 0.0
                    for t in 0..<k {
                        let xv = roundsX ? widen(x[r * k + t].bf16Rounded) : Double(x[r * k + t])
                        let term = xv * widen(w[j, t].bf16Rounded)
                        sum += term
                        magnitude += abs(term)
                    }
                    let full = sum + Double(bias[j]) + Double(start[r * n + j])
                    worst = max(worst, abs(Double(y[r * n + j]) - full) / (magnitude + abs(full)))
                    worstPlain = max(worstPlain, abs(Double(plain[r * n + j]) - sum) / magnitude)
                }
            }
            XCTAssertLessThanOrEqual(worst, 1e-5, "emulate \(emulate): with bias, accumulated")
            XCTAssertLessThanOrEqual(worstPlain, 1e-5, "emulate \(emulate)")
        }
    }
}
