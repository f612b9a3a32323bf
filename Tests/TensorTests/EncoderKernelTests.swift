import CKernels
import Foundation
import Tensor
import TestSupport
import XCTest

/// The encoder's C kernels against naive loops in Double, on odd sizes (tails of 1...7 lanes), once
/// per instruction-set path (test…_avx512, _avx2, _portable; a path the CPU lacks is skipped, naming
/// the missing flag).
final class EncoderKernelTests: XCTestCase {
    var rng = SplitMix(seed: 7)
    let sizes = [1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 100, 768, 1031]

    func values(_ count: Int, scale: Float = 1) -> [Float] { (0..<count).map { _ in rng.nextFloat() * scale } }

    /// Largest error, relative for values above 1 and absolute below.
    func worst(_ a: [Float], _ b: [Double]) -> Double {
        XCTAssertEqual(a.count, b.count)
        return zipSameLength(a, b).map { abs(Double($0.0) - $0.1) / max(1, abs($0.1)) }.max() ?? 0
    }

    func testExpRowAndSoftmaxAgainstDouble_avx512() throws { try onPath(.avx512, expRowAndSoftmaxAgainstDouble) }
    func testExpRowAndSoftmaxAgainstDouble_avx2() throws { try onPath(.avx2, expRowAndSoftmaxAgainstDouble) }
    func testExpRowAndSoftmaxAgainstDouble_portable() throws { try onPath(.portable, expRowAndSoftmaxAgainstDouble) }
    func expRowAndSoftmaxAgainstDouble(_ path: InstructionSet) throws {
        for n in sizes {
            // Wide range: e^(x - max) spans many binades; values below e^-87 flush towards 0.
            let x = values(n, scale: 40)
            // x − max rounded to Float first, as the kernel does: what is left is the polynomial's error.
            let m = x.max()!
            let e = x.map { exp(Double($0 - m)) }
            var row = x
            let total = row.withUnsafeMutableBufferPointer { enc_exp_row($0.baseAddress!, n) }
            // Relative error per element (≈ 1–2 ulp of the polynomial plus the rounding of x − max).
            for j in 0..<n where e[j] > 1e-30 {
                XCTAssertLessThanOrEqual(abs(Double(row[j]) - e[j]) / e[j], 1e-6, "\(path) exp n=\(n) j=\(j)")
            }
            // A Float sum of up to 1031 terms (the portable path adds them one by one).
            XCTAssertEqual(Double(total), e.reduce(0, +), accuracy: 1e-5 * e.reduce(0, +), "\(path) sum n=\(n)")
            var soft = x
            soft.withUnsafeMutableBufferPointer { enc_softmax_row($0.baseAddress!, n) }
            let sum = e.reduce(0, +)
            XCTAssertLessThanOrEqual(worst(soft, e.map { $0 / sum }), 1e-5 / Double(n).squareRoot(), "\(path) softmax n=\(n)")
        }
    }

    func testSoftmaxBlockWithScoresAndCausalTail_avx512() throws { try onPath(.avx512, softmaxBlockWithScoresAndCausalTail) }
    func testSoftmaxBlockWithScoresAndCausalTail_avx2() throws { try onPath(.avx2, softmaxBlockWithScoresAndCausalTail) }
    func testSoftmaxBlockWithScoresAndCausalTail_portable() throws { try onPath(.portable, softmaxBlockWithScoresAndCausalTail) }
    func softmaxBlockWithScoresAndCausalTail(_ path: InstructionSet) throws {
        for (rows, width) in [(1, 1), (3, 9), (5, 17), (7, 64), (4, 1031)] {
            for causal in [false, true] {
                let logits = values(rows * width, scale: 8)
                // Causal: row i sees its first 2 + i keys (as a block starting at query 1).
                let visible = causal ? 2 : width
                var block = logits
                var inverse = [Float](repeating: -1, count: rows)
                var scores = values(width)  // accumulated onto, not overwritten
                let start = scores
                block.withUnsafeMutableBufferPointer { pb in
                    inverse.withUnsafeMutableBufferPointer { pi in
                        scores.withUnsafeMutableBufferPointer { ps in
                            enc_softmax_block(pb.baseAddress!, rows, width, visible, pi.baseAddress!, ps.baseAddress!)
                        }
                    }
                }
                var expectedScores = start.map(Double.init)
                for i in 0..<rows {
                    let seen = min(width, visible + i)
                    let row = Array(logits[(i * width)..<(i * width + seen)])
                    let m = row.max()!
                    let e = row.map { exp(Double($0 - m)) }
                    let sum = e.reduce(0, +)
                    let got = Array(block[(i * width)..<(i * width + width)])
                    XCTAssertLessThanOrEqual(worst(Array(got[0..<seen]), e), 1e-6, "\(path) e^ \(rows)x\(width) row \(i)")
                    XCTAssertTrue(got[seen...].allSatisfy { $0 == 0 }, "\(path) masked tail \(rows)x\(width) row \(i)")
                    XCTAssertEqual(Double(inverse[i]), 1 / sum, accuracy: 1e-5 / sum, "\(path) 1/sum row \(i)")
                    for j in 0..<seen { expectedScores[j] += e[j] / sum }
                }
                XCTAssertLessThanOrEqual(worst(scores, expectedScores), 1e-6, "\(path) scores \(rows)x\(width) causal \(causal)")
            }
        }
    }

    func gelu(_ v: Double) -> Double { 0.5 * v * (1 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v))) }

    func testBiasGeluTanhAgainstTanhFormula_avx512() throws { try onPath(.avx512, biasGeluTanhAgainstTanhFormula) }
    func testBiasGeluTanhAgainstTanhFormula_avx2() throws { try onPath(.avx2, biasGeluTanhAgainstTanhFormula) }
    func testBiasGeluTanhAgainstTanhFormula_portable() throws { try onPath(.portable, biasGeluTanhAgainstTanhFormula) }
    func biasGeluTanhAgainstTanhFormula(_ path: InstructionSet) throws {
        for cols in sizes where cols < 1000 {
            let rows = 3, stride = cols + 5  // padding between rows must stay untouched
            let x = values(rows * stride, scale: 6), bias = values(cols, scale: 2)
            for withBias in [false, true] {
                var y = x
                y.withUnsafeMutableBufferPointer { py in
                    bias.withUnsafeBufferPointer { pb in
                        enc_bias_gelu_tanh(py.baseAddress!, rows, cols, stride, withBias ? pb.baseAddress : nil)
                    }
                }
                for r in 0..<rows {
                    let got = Array(y[(r * stride)..<(r * stride + cols)])
                    let want = (0..<cols).map { gelu(Double(x[r * stride + $0]) + (withBias ? Double(bias[$0]) : 0)) }
                    XCTAssertLessThanOrEqual(worst(got, want), 2e-6, "\(path) gelu cols \(cols) bias \(withBias)")
                    XCTAssertEqual(Array(y[(r * stride + cols)..<(r * stride + stride)]), Array(x[(r * stride + cols)..<(r * stride + stride)]))
                }
            }
        }
        // Through Tensor, large enough to be split over two threads; odd width.
        let m = try Matrix(rows: 129, cols: 1031, storage: values(129 * 1031, scale: 5))
        let bias = values(1031)
        var out = m
        try geluTanh(&out, bias: bias)
        let want = (0..<m.count).map { gelu(Double(m.storage[$0]) + Double(bias[$0 % 1031])) }
        XCTAssertLessThanOrEqual(worst(out.storage, want), 2e-6, "\(path) geluTanh(bias:) split")
        XCTAssertThrowsError(try geluTanh(&out, bias: [1, 2]))
    }

    func testSiluAgainstFormula_avx512() throws { try onPath(.avx512, siluAgainstFormula) }
    func testSiluAgainstFormula_avx2() throws { try onPath(.avx2, siluAgainstFormula) }
    func testSiluAgainstFormula_portable() throws { try onPath(.portable, siluAgainstFormula) }
    func siluAgainstFormula(_ path: InstructionSet) throws {
        for n in sizes {
            let x = values(n, scale: 20)
            var y = x
            y.withUnsafeMutableBufferPointer { enc_silu($0.baseAddress!, n) }
            XCTAssertLessThanOrEqual(worst(y, x.map { Double($0) / (1 + exp(-Double($0))) }), 2e-6, "\(path) silu \(n)")
        }
    }

    func testLayerNormWithResidualBiasAgainstNaive_avx512() throws { try onPath(.avx512, layerNormWithResidualBiasAgainstNaive) }
    func testLayerNormWithResidualBiasAgainstNaive_avx2() throws { try onPath(.avx2, layerNormWithResidualBiasAgainstNaive) }
    func testLayerNormWithResidualBiasAgainstNaive_portable() throws { try onPath(.portable, layerNormWithResidualBiasAgainstNaive) }
    func layerNormWithResidualBiasAgainstNaive(_ path: InstructionSet) throws {
        for cols in sizes {
            let rows = 4
            // Large offset: a one-pass E[x²] − mean² would lose digits here.
            let x = values(rows * cols, scale: 3).map { $0 + 100 }
            let w = values(cols), b = values(cols), rb = values(cols, scale: 2)
            for residual in [false, true] {
                var h = try Matrix(rows: rows, cols: cols, storage: x)
                var out = Matrix(rows: 0, cols: 0)
                try layerNorm(&h, addingBias: residual ? rb : nil, weight: w, bias: b, eps: 1e-6, into: &out)
                var expectedH: [Double] = [], expected: [Double] = []
                for r in 0..<rows {
                    let row = (0..<cols).map { Double(x[r * cols + $0]) + (residual ? Double(rb[$0]) : 0) }
                    let mean = row.reduce(0, +) / Double(cols)
                    let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(cols)
                    expectedH += row
                    expected += (0..<cols).map { (row[$0] - mean) / (variance + 1e-6).squareRoot() * Double(w[$0]) + Double(b[$0]) }
                }
                XCTAssertEqual(out.shape, [rows, cols])
                // |x| ≈ 100: float rounding of x itself is ≈ 1e-5 relative to the row's spread.
                XCTAssertLessThanOrEqual(worst(out.storage, expected), 1e-4, "\(path) layerNorm \(cols) residual \(residual)")
                XCTAssertLessThanOrEqual(worst(h.storage, expectedH), 1e-6, "\(path) residual written back \(cols)")
                let plain = try layerNorm(h, weight: w, bias: b, eps: 1e-6)
                XCTAssertLessThanOrEqual(worst(plain.storage, expected), 1e-4, "\(path) layerNorm(x) \(cols)")
            }
        }
        // Split over two threads (rows · cols ≥ 65536), odd row count.
        let big = try Matrix(rows: 131, cols: 769, storage: values(131 * 769, scale: 4))
        let w = values(769), b = values(769)
        let out = try layerNorm(big, weight: w, bias: b, eps: 1e-5)
        var expected: [Double] = []
        for r in 0..<131 {
            let row = (0..<769).map { Double(big.storage[r * 769 + $0]) }
            let mean = row.reduce(0, +) / 769
            let sd = (row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 769 + 1e-5).squareRoot()
            expected += (0..<769).map { (row[$0] - mean) / sd * Double(w[$0]) + Double(b[$0]) }
        }
        XCTAssertLessThanOrEqual(worst(out.storage, expected), 1e-5, "\(path) layerNorm split")
        var h = big, into = Matrix(rows: 0, cols: 0)
        XCTAssertThrowsError(try layerNorm(&h, addingBias: [1], weight: w, bias: b, eps: 1e-5, into: &into))
    }

    func testAddRowScaleAccumulateAndGather_avx512() throws { try onPath(.avx512, addRowScaleAccumulateAndGather) }
    func testAddRowScaleAccumulateAndGather_avx2() throws { try onPath(.avx2, addRowScaleAccumulateAndGather) }
    func testAddRowScaleAccumulateAndGather_portable() throws { try onPath(.portable, addRowScaleAccumulateAndGather) }
    func addRowScaleAccumulateAndGather(_ path: InstructionSet) throws {
        for cols in sizes {
            let rows = 3, stride = cols + 3
            let x = values(rows * stride), add = values(cols)
            var y = x
            y.withUnsafeMutableBufferPointer { py in add.withUnsafeBufferPointer { enc_add_row(py.baseAddress!, rows, cols, stride, $0.baseAddress!) } }
            for i in 0..<(rows * stride) {
                let c = i % stride
                XCTAssertEqual(y[i], c < cols ? x[i] + add[c] : x[i], "\(path) add_row \(cols)")
            }
            var s = x
            s.withUnsafeMutableBufferPointer { enc_scale($0.baseAddress!, x.count, -2.5) }
            XCTAssertEqual(s, x.map { $0 * -2.5 }, "\(path) scale \(cols)")
            var acc = add
            let row = values(cols)
            acc.withUnsafeMutableBufferPointer { pa in row.withUnsafeBufferPointer { enc_accumulate_scaled($0.baseAddress!, 0.75, pa.baseAddress!, cols) } }
            XCTAssertLessThanOrEqual(worst(acc, (0..<cols).map { Double(add[$0]) + Double(row[$0]) * 0.75 }), 1e-6, "\(path) accumulate \(cols)")
        }
        let table = try Matrix(rows: 5, cols: 13, storage: values(65))
        var h = try Matrix(rows: 3, cols: 13, storage: values(39))
        let before = h
        try addRows(of: table, at: [4, 0, 4], to: &h)
        for (r, t) in [4, 0, 4].enumerated() {
            for c in 0..<13 { XCTAssertEqual(h[r, c], before[r, c] + table[t, c], "\(path) gather") }
        }
        XCTAssertThrowsError(try addRows(of: table, at: [0, 5, 1], to: &h))
        XCTAssertThrowsError(try addRows(of: table, at: [0, 1], to: &h))
    }

    func randomMatrix(_ rows: Int, _ cols: Int) throws -> Matrix {
        try Matrix(rows: rows, cols: cols, storage: values(rows * cols, scale: 2))
    }

    /// Full attention through the fused kernel (AVX2 path) and the BLAS path (portable), against Double:
    /// query counts around the 6-row block, key counts around the 16-key panel, head widths of 8…64.
    func testFusedAttentionAgainstNaive_avx512() throws { try onPath(.avx512, fusedAttentionAgainstNaive) }
    func testFusedAttentionAgainstNaive_avx2() throws { try onPath(.avx2, fusedAttentionAgainstNaive) }
    func testFusedAttentionAgainstNaive_portable() throws { try onPath(.portable, fusedAttentionAgainstNaive) }
    func fusedAttentionAgainstNaive(_ path: InstructionSet) throws {
        for (nq, nk, heads, kvHeads, d) in [(1, 1, 1, 1, 8), (5, 9, 2, 2, 8), (6, 16, 1, 1, 16), (7, 17, 3, 1, 24),
                                            (13, 100, 2, 2, 64), (40, 33, 4, 2, 40)] {
            let q = try randomMatrix(nq, heads * d), k = try randomMatrix(nk, kvHeads * d), v = try randomMatrix(nk, kvHeads * d)
            let result = try attention(query: q, key: k, value: v, heads: heads, kvHeads: kvHeads, captureScores: true)
            let (out, scores) = referenceAttention(query: q.storage, key: k.storage, value: v.storage, queries: nq, keys: nk, heads: heads,
                                                   kvHeads: kvHeads, headDimension: d, visible: nk)
            let shape = "\(path) \(nq)x\(nk) heads \(heads)/\(kvHeads) d \(d)"
            XCTAssertLessThanOrEqual(worst(result.output.storage, out), 2e-5, "output \(shape)")
            XCTAssertLessThanOrEqual(worst(try XCTUnwrap(result.scores), scores), 1e-6, "scores \(shape)")
            let plain = try attention(query: q, key: k, value: v, heads: heads, kvHeads: kvHeads)
            XCTAssertEqual(plain.output, result.output, "capture must not change the output: \(shape)")
        }
    }

    /// Causal attention (the fused kernel's visible-key limit on AVX2/AVX-512, BLAS on portable) against
    /// Double: through attention(causal:keyOffset:), and through cachedAttention over a KV cache laid out
    /// [kvHeads][capacity][d] with rows spanning several of the team's 48-row blocks, the prompt
    /// starting past slot 0 (a cached prefix) and free slots after the last one written.
    func testCausalAttentionAgainstNaive_avx512() throws { try onPath(.avx512, causalAttentionAgainstNaive) }
    func testCausalAttentionAgainstNaive_avx2() throws { try onPath(.avx2, causalAttentionAgainstNaive) }
    func testCausalAttentionAgainstNaive_portable() throws { try onPath(.portable, causalAttentionAgainstNaive) }
    func causalAttentionAgainstNaive(_ path: InstructionSet) throws {
        for (nq, offset, heads, kvHeads, d) in [(2, 0, 1, 1, 8), (7, 0, 2, 1, 16), (13, 4, 3, 3, 24), (61, 30, 4, 2, 64),
                                                (100, 0, 3, 1, 8), (131, 17, 2, 2, 40)] {
            let nk = offset + nq
            let q = try randomMatrix(nq, heads * d), k = try randomMatrix(nk, kvHeads * d), v = try randomMatrix(nk, kvHeads * d)
            let (out, scores) = referenceAttention(query: q.storage, key: k.storage, value: v.storage, queries: nq, keys: nk, heads: heads,
                                                   kvHeads: kvHeads, headDimension: d, visible: offset + 1)
            let shape = "\(path) \(nq) rows after \(offset), heads \(heads)/\(kvHeads) d \(d)"
            let result = try attention(query: q, key: k, value: v, heads: heads, kvHeads: kvHeads, causal: true,
                                       keyOffset: offset, captureScores: true)
            XCTAssertLessThanOrEqual(worst(result.output.storage, out), 2e-5, "attention output \(shape)")
            XCTAssertLessThanOrEqual(worst(try XCTUnwrap(result.scores), scores), 1e-6, "attention scores \(shape)")

            let capacity = nk + 5
            var keys = [Float](repeating: .nan, count: kvHeads * capacity * d), vals = keys
            for g in 0..<kvHeads {
                for j in 0..<nk {
                    for t in 0..<d {
                        keys[(g * capacity + j) * d + t] = k[j, g * d + t]
                        vals[(g * capacity + j) * d + t] = v[j, g * d + t]
                    }
                }
            }
            var cached = [Float](repeating: 0, count: nq * heads * d), scratch: [Float] = []
            q.storage.withUnsafeBufferPointer { pq in
                cachedAttention(query: pq.baseAddress!, queryStride: heads * d, rows: nq, heads: heads, keys: keys, values: vals,
                                kvHeads: kvHeads, headDimension: d, capacity: capacity, length: nk, firstSlot: offset,
                                output: &cached, outputStride: heads * d, scratch: &scratch)
            }
            XCTAssertLessThanOrEqual(worst(cached, out), 2e-5, "cachedAttention \(shape)")
        }
    }

    /// The packed-weight GEMM (enc_gemm_pack + enc_gemm_packed: x packed per chunk, then the panels)
    /// against Double: row counts around the 6-row tile, output counts around the 16-column panel (and
    /// the AVX-512 path's pairs of panels), input counts past the 4096-step span (partial sums wait in
    /// y) and past a multiple of 8 (the packing's transposes); each epilogue with and
    /// without a bias; a split of the columns at a panel boundary gives the same bits as one call;
    /// nothing outside the asked columns is written.
    func testPackedGemmAgainstDouble_avx512() throws { try onPath(.avx512, packedGemmAgainstDouble) }
    func testPackedGemmAgainstDouble_avx2() throws { try onPath(.avx2, packedGemmAgainstDouble) }
    func testPackedGemmAgainstDouble_portable() throws { try onPath(.portable, packedGemmAgainstDouble) }
    func packedGemmAgainstDouble(_ path: InstructionSet) throws {
        for (m, n, k) in [(1, 1, 1), (5, 17, 9), (7, 33, 19), (6, 16, 768), (13, 50, 769), (79, 48, 40), (8, 70, 1537),
                          (97, 21, 770), (103, 35, 12), (7, 20, 4097)] {
            let xStride = k + 3, yStride = n + 5
            let x = values(m * xStride), w = values(n * k), bias = values(n), start = values(m * yStride, scale: 4)
            var packed = [Float](repeating: .nan, count: enc_gemm_packed_floats(n, k) + 16)
            // The kernels load panels aligned to 64 bytes: pack at the first aligned float.
            let offset = packed.withUnsafeMutableBufferPointer { p in (64 - Int(bitPattern: p.baseAddress!) % 64) % 64 / 4 }
            packed.withUnsafeMutableBufferPointer { p in enc_gemm_pack(w, n, k, k, p.baseAddress! + offset) }
            for (epilogue, withBias) in [(ENC_GEMM_STORE, false), (ENC_GEMM_STORE, true), (ENC_GEMM_ACCUMULATE, false),
                                         (ENC_GEMM_ACCUMULATE, true), (ENC_GEMM_GELU_TANH, false), (ENC_GEMM_GELU_TANH, true)] {
                func run(_ ranges: [Range<Int>]) -> [Float] {
                    var y = start
                    packed.withUnsafeBufferPointer { p in
                        y.withUnsafeMutableBufferPointer { py in
                            bias.withUnsafeBufferPointer { pb in
                                for r in ranges {
                                    let status = enc_gemm_packed(x, m, xStride, p.baseAddress! + offset, n, k, r.lowerBound, r.upperBound,
                                                                 withBias ? pb.baseAddress : nil, Int32(epilogue), py.baseAddress!, yStride)
                                    XCTAssertEqual(status, 0, "packing buffer")
                                }
                            }
                        }
                    }
                    return y
                }
                let shape = "\(path) \(m)x\(n)x\(k) epilogue \(epilogue) bias \(withBias)"
                let whole = run([0..<n])
                for r in 0..<m {
                    for j in 0..<n {
                        var s = 0.0, magnitude = 0.0
                        for t in 0..<k {
                            let p = Double(x[r * xStride + t]) * Double(w[j * k + t])
                            s += p
                            magnitude += abs(p)
                        }
                        if withBias { s += Double(bias[j]); magnitude += abs(Double(bias[j])) }
                        if Int(epilogue) == Int(ENC_GEMM_ACCUMULATE) {
                            s += Double(start[r * yStride + j])
                            magnitude += abs(Double(start[r * yStride + j]))
                        }
                        if Int(epilogue) == Int(ENC_GEMM_GELU_TANH) { s = gelu(s) }
                        // F32 summation of k + 2 terms, one chain: |error| ≤ (k + 2) · 2⁻²⁴ · Σ|terms| (GELU's
                        // slope stays below 1.13), plus the GELU's own few ulps.
                        let bound = Double(k + 2) * 1.2 * 0x1p-24 * magnitude + 2e-6 * max(1, abs(s))
                        XCTAssertLessThanOrEqual(abs(Double(whole[r * yStride + j]) - s), bound, "\(shape) at \(r), \(j)")
                    }
                    XCTAssertEqual(Array(whole[(r * yStride + n)..<((r + 1) * yStride)]), Array(start[(r * yStride + n)..<((r + 1) * yStride)]),
                                   "wrote past the columns: \(shape)")
                }
                if n > 16 {
                    let cut = (n / 2) / 16 * 16
                    XCTAssertEqual(run([0..<cut, cut..<n]), whole, "split at \(cut): \(shape)")
                    let part = run([cut..<n])
                    for r in 0..<m {
                        XCTAssertEqual(Array(part[(r * yStride)..<(r * yStride + cut)]), Array(start[(r * yStride)..<(r * yStride + cut)]),
                                       "wrote before col_begin: \(shape)")
                    }
                }
            }
        }
    }
}
