import Foundation
import Tensor
import TestSupport
import XCTest

/// Kernels against naive loops (computed in Double) on random shapes, odd sizes included.
final class KernelTests: XCTestCase {
    var rng = SplitMix(seed: 42)

    func random(_ rows: Int, _ cols: Int, scale: Float = 1) -> Matrix {
        try! Matrix(rows: rows, cols: cols, storage: (0..<(rows * cols)).map { _ in rng.nextFloat() * scale })
    }

    func assertClose(_ a: [Float], _ b: [Double], tolerance: Double, _ message: String = "", line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, message, line: line)
        let worst = zipSameLength(a, b).map { abs(Double($0.0) - $0.1) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, tolerance, message, line: line)
    }

    let shapes = [(1, 1, 1), (1, 7, 5), (3, 17, 9), (13, 31, 64), (64, 33, 7), (100, 65, 129)]

    func testLinearAgainstNaive() throws {
        for (m, k, n) in shapes {
            let x = random(m, k), w = random(n, k)
            let bias = (0..<n).map { _ in rng.nextFloat() }
            for b in [nil, bias] {
                let y = try linear(x, weight: w, bias: b)
                var expected = [Double](repeating: 0, count: m * n)
                for i in 0..<m {
                    for j in 0..<n {
                        var s = Double(b?[j] ?? 0)
                        for t in 0..<k { s += Double(x[i, t]) * Double(w[j, t]) }
                        expected[i * n + j] = s
                    }
                }
                XCTAssertEqual(y.shape, [m, n])
                assertClose(y.storage, expected, tolerance: 1e-4, "linear \(m)x\(k)x\(n)")
            }
        }
        XCTAssertThrowsError(try linear(random(2, 3), weight: random(4, 5)))
        XCTAssertThrowsError(try linear(random(2, 3), weight: random(4, 3), bias: [1]))
    }

    /// A product large enough to split into column slices (one single-threaded sgemm per core) and the
    /// same on OpenBLAS's threads, against Double: strided input and output, a bias, accumulation onto
    /// y, and a width that is no multiple of 16 (the last slice takes the rest).
    func testLargeProductBothThreadingsAgainstNaive() throws {
        let m = 70, k = 260, n = 1030, inputStride = k + 3, outputStride = n + 5
        let x = (0..<(m * inputStride)).map { _ in rng.nextFloat() }, w = random(n, k, scale: 0.1)
        let bias = (0..<n).map { _ in rng.nextFloat() }, start = (0..<(m * outputStride)).map { _ in rng.nextFloat() }
        let weight = WeightMatrix(w)
        var expected = [Double](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var s = Double(start[i * outputStride + j]) + Double(bias[j])
                for t in 0..<k { s += Double(x[i * inputStride + t]) * Double(w[j, t]) }
                expected[i * n + j] = s
            }
        }
        let previous = EncoderPaths.current
        defer { EncoderPaths.current = previous }
        for threading in [EncoderPaths.GEMMThreading.slices, .openBLAS] {
            EncoderPaths.current.gemmThreading = threading
            var y = start, scratch: [Float] = []
            x.withUnsafeBufferPointer { px in
                y.withUnsafeMutableBufferPointer { py in
                    linear(px.baseAddress!, rows: m, inputStride: inputStride, weight: weight, bias: bias, into: py.baseAddress!,
                           outputStride: outputStride, accumulate: true, scratch: &scratch)
                }
            }
            let got = (0..<m).flatMap { i in y[(i * outputStride)..<(i * outputStride + n)] }
            assertClose(got, expected, tolerance: 1e-4, "\(threading) \(m)x\(n)x\(k)")
            for i in 0..<m {
                XCTAssertEqual(Array(y[(i * outputStride + n)..<((i + 1) * outputStride)]),
                               Array(start[(i * outputStride + n)..<((i + 1) * outputStride)]), "\(threading) wrote past row \(i)")
            }
        }
    }

    /// packedLinear (weights packed once, x packed per chunk of rows, columns over the cores) against
    /// Double, with the bias in each epilogue.
    func testPackedLinearAgainstNaive() throws {
        // Split over the cores; then rows in three chunks (k so long that a chunk holds 48 rows) and
        // k in eleven spans of partial sums.
        for (m, n, k) in [(70, 520, 600), (50, 20, 44_000)] { try packedLinearAgainstNaive(m: m, n: n, k: k) }
    }

    func packedLinearAgainstNaive(m: Int, n: Int, k: Int) throws {
        let inputStride = k + 2, outputStride = n + 3
        // Long sums get weights of 1/√k, so that the F32 sums' rounding stays within the tolerance.
        let x = (0..<(m * inputStride)).map { _ in rng.nextFloat() }, w = random(n, k, scale: k > 10_000 ? 1 / Float(k).squareRoot() : 1)
        let bias = (0..<n).map { _ in rng.nextFloat() }, start = (0..<(m * outputStride)).map { _ in rng.nextFloat() }
        let weight = PackedWeights(w)
        XCTAssertEqual(weight.count, n * k)
        for epilogue in [PackedEpilogue.store, .accumulate, .geluTanh] {
            var y = start
            x.withUnsafeBufferPointer { px in
                y.withUnsafeMutableBufferPointer { py in
                    var scratch: [Float] = []
                    packedLinear(px.baseAddress!, rows: m, inputStride: inputStride, weight: weight, bias: bias, epilogue: epilogue,
                                 into: py.baseAddress!, outputStride: outputStride, scratch: &scratch)
                }
            }
            var expected = [Double](repeating: 0, count: m * n)
            for i in 0..<m {
                for j in 0..<n {
                    var s = Double(bias[j])
                    for t in 0..<k { s += Double(x[i * inputStride + t]) * Double(w[j, t]) }
                    switch epilogue {
                    case .store: break
                    case .accumulate: s += Double(start[i * outputStride + j])
                    case .geluTanh: s = 0.5 * s * (1 + tanh(0.7978845608028654 * (s + 0.044715 * s * s * s)))
                    }
                    expected[i * n + j] = s
                }
                XCTAssertEqual(Array(y[(i * outputStride + n)..<((i + 1) * outputStride)]),
                               Array(start[(i * outputStride + n)..<((i + 1) * outputStride)]), "\(epilogue) wrote past row \(i)")
            }
            let got = (0..<m).flatMap { i in y[(i * outputStride)..<(i * outputStride + n)] }
            assertClose(got, expected, tolerance: 1e-4, "\(epilogue) \(m)x\(n)x\(k)")
        }
    }

    func testMatmulAgainstNaive() throws {
        for (m, k, n) in shapes {
            let a = random(m, k), b = random(k, n)
            let c = try matmul(a, b)
            let ct = try matmul(a, b.transposed(), transposeB: true)
            var expected = [Double](repeating: 0, count: m * n)
            for i in 0..<m { for j in 0..<n { for t in 0..<k { expected[i * n + j] += Double(a[i, t]) * Double(b[t, j]) } } }
            assertClose(c.storage, expected, tolerance: 1e-4)
            assertClose(ct.storage, expected, tolerance: 1e-4)
        }
    }

    func testNormsAgainstNaive() throws {
        for cols in [1, 5, 8, 17, 768] {
            let x = random(3, cols, scale: 3)
            let w = (0..<cols).map { _ in rng.nextFloat() }, b = (0..<cols).map { _ in rng.nextFloat() }
            let ln = try layerNorm(x, weight: w, bias: b, eps: 1e-6)
            let rms = try rmsNorm(x, weight: w, eps: 1e-5)
            var eLN = [Double](), eRMS = [Double]()
            for r in 0..<3 {
                let row = x.row(r).map(Double.init)
                let mean = row.reduce(0, +) / Double(cols)
                let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(cols)
                let ms = row.map { $0 * $0 }.reduce(0, +) / Double(cols)
                for c in 0..<cols {
                    eLN.append((row[c] - mean) / (variance + 1e-6).squareRoot() * Double(w[c]) + Double(b[c]))
                    eRMS.append(row[c] / (ms + 1e-5).squareRoot() * Double(w[c]))
                }
            }
            assertClose(ln.storage, eLN, tolerance: 2e-5, "layerNorm \(cols)")
            assertClose(rms.storage, eRMS, tolerance: 2e-5, "rmsNorm \(cols)")
        }
    }

    func testActivationsAgainstFormulas() {
        // Includes large magnitudes, where exp over/underflows, and an odd count (vector tail).
        var values: [Float] = (0..<1001).map { _ in rng.nextFloat() * 6 }
        values += [0, -0.0, 1e-6, -1e-6, 30, -30, 100, -100, 1000, -1000, 89, -89]
        let x = try! Matrix(rows: 1, cols: values.count, storage: values)
        var g = x, e = x, s = x
        geluTanh(&g); geluErf(&e); silu(&s)
        let d = values.map(Double.init)
        assertClose(g.storage, d.map { 0.5 * $0 * (1 + tanh(0.7978845608028654 * ($0 + 0.044715 * $0 * $0 * $0))) }, tolerance: 1e-5)
        assertClose(e.storage, d.map { 0.5 * $0 * (1 + erf($0 / 2.0.squareRoot())) }, tolerance: 1e-5)
        assertClose(s.storage, d.map { $0 / (1 + Foundation.exp(-$0)) }, tolerance: 1e-5)
    }

    func testLargeActivationsSplitAcrossThreadsMatchFormulas() {
        // Above the size where the work is split in two halves; an odd count leaves a tail.
        let values: [Float] = (0..<(70_001)).map { _ in rng.nextFloat() * 5 }
        var g = try! Matrix(rows: 1, cols: values.count, storage: values), s = g
        geluTanh(&g); silu(&s)
        let d = values.map(Double.init)
        assertClose(g.storage, d.map { 0.5 * $0 * (1 + tanh(0.7978845608028654 * ($0 + 0.044715 * $0 * $0 * $0))) }, tolerance: 1e-5)
        assertClose(s.storage, d.map { $0 / (1 + Foundation.exp(-$0)) }, tolerance: 1e-5)
    }

    func testSoftmaxRows() {
        for cols in [1, 3, 8, 9, 100] {
            var x = random(4, cols, scale: 20)
            let original = x
            softmaxRows(&x)
            for r in 0..<4 {
                let row = original.row(r).map(Double.init)
                let m = row.max()!
                let e = row.map { Foundation.exp($0 - m) }
                let total = e.reduce(0, +)
                assertClose(x.row(r), e.map { $0 / total }, tolerance: 1e-6, "softmax \(cols)")
            }
        }
    }

    func testElementwise() throws {
        var x = random(3, 5)
        let y = random(3, 5)
        let original = x
        try add(&x, y)
        assertClose(x.storage, zipSameLength(original.storage, y.storage).map { Double($0) + Double($1) }, tolerance: 1e-6)
        x = original
        try multiply(&x, y)
        assertClose(x.storage, zipSameLength(original.storage, y.storage).map { Double($0) * Double($1) }, tolerance: 1e-6)
        x = original
        try addRow(&x, [1, 2, 3, 4, 5])
        XCTAssertEqual(x[2, 4], original[2, 4] + 5)
        XCTAssertThrowsError(try add(&x, random(5, 3)))
        XCTAssertThrowsError(try addRow(&x, [1]))
        let t = original.transposed()
        XCTAssertEqual(t.shape, [5, 3])
        XCTAssertEqual(t[4, 2], original[2, 4])
    }

    func testRotaryAgainstRotateHalf() throws {
        let heads = 3, dim = 10, positions = [0, 1, 5, 17]
        let tables = try RotaryTables(positions: positions, dimension: dim, theta: 10000)
        var q = random(positions.count, heads * dim)
        let original = q
        try applyRotary(&q, tables: tables, heads: heads)
        var expected: [Double] = []
        for (r, p) in positions.enumerated() {
            for h in 0..<heads {
                let v = (0..<dim).map { Double(original[r, h * dim + $0]) }
                for i in 0..<dim {
                    let f = i % (dim / 2)
                    let angle = Double(p) / Foundation.pow(10000, Double(2 * f) / Double(dim))
                    let rotated = i < dim / 2 ? -v[i + dim / 2] : v[i - dim / 2]
                    expected.append(v[i] * Foundation.cos(angle) + rotated * Foundation.sin(angle))
                }
            }
        }
        assertClose(q.storage, expected, tolerance: 1e-4)
        XCTAssertThrowsError(try RotaryTables(positions: [0], dimension: 7, theta: 10000))
        XCTAssertThrowsError(try applyRotary(&q, tables: tables, heads: 2))
    }

    func testPatchEmbeddingAgainstConvolution() throws {
        let c = 3, h = 12, w = 8, p = 4, out = 5
        let pixels = (0..<(c * h * w)).map { _ in rng.nextFloat() }
        let weight = random(out, c * p * p), bias = (0..<out).map { _ in rng.nextFloat() }
        let y = try patchEmbedding(pixels: pixels, channels: c, height: h, width: w, patch: p, weight: weight, bias: bias)
        XCTAssertEqual(y.shape, [(h / p) * (w / p), out])
        var expected: [Double] = []
        for py in 0..<(h / p) {
            for px in 0..<(w / p) {
                for o in 0..<out {
                    var s = Double(bias[o])
                    for ch in 0..<c { for ky in 0..<p { for kx in 0..<p {
                        s += Double(pixels[ch * h * w + (py * p + ky) * w + px * p + kx]) * Double(weight[o, (ch * p + ky) * p + kx])
                    } } }
                    expected.append(s)
                }
            }
        }
        assertClose(y.storage, expected, tolerance: 1e-4)
        XCTAssertThrowsError(try im2col(pixels: pixels, channels: c, height: h, width: w, patch: 5))
        XCTAssertThrowsError(try im2col(pixels: [1], channels: c, height: h, width: w, patch: p))
    }
}
