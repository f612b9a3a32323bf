import CKernels
import Foundation
import Tensor
import TestSupport
import XCTest

/// BF16 products (the encoder's `--encoder-precision bf16`) against Double: the packed AVX512-BF16
/// kernel (native where the CPU has it; its portable emulation everywhere, which follows the
/// instruction's arithmetic), bf16w_gemm (F32 activations, BF16 weights widened inside the product: BF16
/// checkpoints' prefill), and the widened-panel F32 GEMM.
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

    /// bf16w_gemm (F32 activations × BF16 weights as stored) on `isa`, against Double: odd shapes
    /// (AVX2: row tiles of 1–6 rows, panels of 16 outputs with tails, spans of up to 2048 columns,
    /// chunks of rows by x's size, weight rows 2 KB apart (copied before the transpose) and not;
    /// AVX-512: row tiles of 32,
    /// micro-panels of 12, units of 96 outputs with tails; k below, at and past the 256-column blocks,
    /// k = 1), row strides past the row's end, beta 0 and 0.5; the same bits with the team (packing
    /// and product) and on one thread.
    func checkWideKernel(_ isa: InstructionSet) throws {
        XCTAssertEqual(bf16w_gemm_supported(), 1)
        let shapes = [(1, 1, 1, 2), (2, 7, 3, 4), (17, 97, 256, 257), (33, 13, 257, 258), (300, 200, 70, 71), (5, 193, 600, 601),
                      (70, 100, 1100, 1101), (7, 40, 2048, 2048), (13, 33, 1024, 1024), (70, 35, 2048, 2048),
                      (9, 20, 2500, 2501), (97, 5, 22000, 22000)]
        for (rows, n, k, wStride) in shapes {
            let xStride = k + 3, yStride = n + 1
            let x = values(rows * xStride, scale: 3), w = values(n * wStride).map(\.bf16Rounded)
            var scratch = [Float](repeating: .nan, count: bf16w_gemm_scratch_floats(rows, k))
            for beta: Float in [0, 0.5] {
                let start = values(rows * yStride)
                var y = start, alone = start
                XCTAssertEqual(bf16w_gemm(x, rows, xStride, w, n, k, wStride, &y, yStride, beta, &scratch), 0)
                DecodeTeam.with(team: false) {
                    _ = bf16w_gemm(x, rows, xStride, w, n, k, wStride, &alone, yStride, beta, &scratch)
                }
                XCTAssertEqual(y, alone, "\(isa) \(rows)x\(n)x\(k): the split changed bits")
                var worst = 0.0
                for r in 0..<rows {
                    for j in 0..<n {
                        var sum = Double(beta) * Double(start[r * yStride + j]), magnitude = abs(sum)
                        for t in 0..<k {
                            let term = Double(x[r * xStride + t]) * widen(w[j * wStride + t])
                            sum += term
                            magnitude += abs(term)
                        }
                        worst = max(worst, abs(Double(y[r * yStride + j]) - sum) / (magnitude + 1e-30))
                    }
                    XCTAssertEqual(y[r * yStride + n], start[r * yStride + n], "\(isa) wrote past row \(r)")
                }
                XCTAssertLessThanOrEqual(worst, 1e-5, "\(isa) \(rows)x\(n)x\(k) beta \(beta)")
            }
        }
    }

    func testWideKernelAVX2() throws { try onPath(.avx2) { try checkWideKernel($0) } }
    func testWideKernelAVX512() throws { try onPath(.avx512) { try checkWideKernel($0) } }
    func testWideKernelNotOnThePortablePath() throws {
        try onPath(.portable) { _ in
            XCTAssertEqual(bf16w_gemm_supported(), 0)
            var y: [Float] = [7]
            XCTAssertEqual(bf16w_gemm([1], 1, 1, [Float(1).bf16Rounded], 1, 1, 1, &y, 1, 0, nil), -1)
            XCTAssertEqual(y, [7], "nothing written")
        }
    }

    /// linear() with a bf16Products matrix: bf16w_gemm (the default where it runs), the widened-panel
    /// F32 GEMM (two full panels and a short one), and the emulated BF16 kernel, with bias and
    /// accumulation.
    func testLinearWithBF16ProductsAgainstDouble() throws {
        let k = 3001, panel = WeightMatrix.widenedPanelRows(cols: k), rows = 9, n = 2 * panel + 5
        let w = try Matrix(rows: n, cols: k, storage: values(n * k))
        let x = values(rows * k), bias = values(n), start = values(rows * n)
        defer { WeightMatrix.prefillConversion = .automatic }
        for (emulate, conversion) in [(false, WeightMatrix.PrefillConversion.automatic), (false, .tiles), (true, .automatic)] {
            WeightMatrix.prefillConversion = conversion
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
                    // bf16w_gemm's packed rows, or one panel of widened rows: never the whole matrix.
                    let wide = conversion == .automatic && bf16w_gemm_supported() != 0
                    XCTAssertEqual(scratch.count, wide ? bf16w_gemm_scratch_floats(rows, k) : panel * k, "\(conversion)")
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
            XCTAssertLessThanOrEqual(worst, 1e-5, "emulate \(emulate), \(conversion): with bias, accumulated")
            XCTAssertLessThanOrEqual(worstPlain, 1e-5, "emulate \(emulate), \(conversion)")
        }
    }
}
