import CKernels
import Foundation
import Tensor
import TestSupport
import XCTest

/// The decode-step kernels (single-row products in F32 and BF16, attention of one query row) against
/// naive loops in Double, once per instruction-set path
/// (test…_avx512, _avx2, _portable), and the thread team's independence of the split.
final class DecodeKernelTests: XCTestCase {
    var rng = SplitMix(seed: 2024)

    func randomFloats(_ count: Int, scale: Float = 1) -> [Float] { (0..<count).map { _ in rng.nextFloat() * scale } }

    /// BF16 of `v` by truncation, as WeightMatrix(bf16: true) stores it.
    func bf16(_ v: Float) -> UInt16 { UInt16(truncatingIfNeeded: v.bitPattern >> 16) }
    func widen(_ h: UInt16) -> Float { Float(bitPattern: UInt32(h) << 16) }

    /// |y - reference| ≤ 1e-5 · Σ|w·x| (+ a floor for sums that cancel to nothing) for every row.
    func assertProduct(_ y: [Float], reference: [Double], magnitude: [Double], _ message: String, line: UInt = #line) {
        XCTAssertEqual(y.count, reference.count, message, line: line)
        var worst = 0.0
        for i in 0..<min(y.count, reference.count) {
            worst = max(worst, abs(Double(y[i]) - reference[i]) / (magnitude[i] + 1e-30))
        }
        XCTAssertLessThanOrEqual(worst, 1e-5, message, line: line)
    }

    let sizes = [1, 3, 7, 17, 576, 1000]

    func testMatvecF32AndBF16AgainstNaive_avx512() throws { try onPath(.avx512, matvecF32AndBF16AgainstNaive) }
    func testMatvecF32AndBF16AgainstNaive_avx2() throws { try onPath(.avx2, matvecF32AndBF16AgainstNaive) }
    func testMatvecF32AndBF16AgainstNaive_portable() throws { try onPath(.portable, matvecF32AndBF16AgainstNaive) }
    func matvecF32AndBF16AgainstNaive(_ isa: InstructionSet) throws {
        for rows in sizes {
            for cols in sizes {
                // Every other shape with a row stride past the row's end.
                let stride = (rows + cols) % 2 == 0 ? cols : cols + 5
                let w = randomFloats(rows * stride), x = randomFloats(cols), start = randomFloats(rows)
                let halves = w.map(bf16)
                for accumulate in [false, true] {
                    var reference32 = [Double](repeating: 0, count: rows), reference16 = reference32
                    var magnitude32 = reference32, magnitude16 = reference32
                    for r in 0..<rows {
                        var s32 = accumulate ? Double(start[r]) : 0, s16 = s32
                        var m32 = abs(s32), m16 = abs(s16)
                        for c in 0..<cols {
                            let t32 = Double(w[r * stride + c]) * Double(x[c])
                            let t16 = Double(widen(halves[r * stride + c])) * Double(x[c])
                            s32 += t32; m32 += abs(t32)
                            s16 += t16; m16 += abs(t16)
                        }
                        reference32[r] = s32; magnitude32[r] = m32
                        reference16[r] = s16; magnitude16[r] = m16
                    }
                    var y32 = accumulate ? start : [Float](repeating: .nan, count: rows)
                    var y16 = y32
                    decode_matvec_f32(w, rows, cols, stride, x, &y32, accumulate ? 1 : 0)
                    decode_matvec_bf16(halves, rows, cols, stride, x, &y16, accumulate ? 1 : 0)
                    let label = "\(isa) \(rows)x\(cols) stride \(stride) accumulate \(accumulate)"
                    assertProduct(y32, reference: reference32, magnitude: magnitude32, "f32 " + label)
                    assertProduct(y16, reference: reference16, magnitude: magnitude16, "bf16 " + label)
                }
            }
        }
    }

    func testWidenBF16_avx512() throws { try onPath(.avx512, widenBF16) }
    func testWidenBF16_avx2() throws { try onPath(.avx2, widenBF16) }
    func testWidenBF16_portable() throws { try onPath(.portable, widenBF16) }
    /// BF16 → F32 is exact: every value, tails of every length, and lengths split over the team.
    func widenBF16(_ isa: InstructionSet) throws {
        for count in [1, 7, 15, 16, 17, 33, 1031, 70_001] {
            var halves = randomFloats(count, scale: 1e4).map(bf16)
            halves[0] = 0x7F80  // +inf
            if count > 1 { halves[count - 1] = 0x8001 }  // a negative subnormal
            var wide = [Float](repeating: .nan, count: count + 1)
            decode_widen_bf16(halves, &wide, count)
            XCTAssertEqual(wide[..<count].map(\.bitPattern), halves.map { UInt32($0) << 16 }, "\(isa) widen \(count)")
            XCTAssertTrue(wide[count].isNaN, "\(isa) widen \(count) wrote past the end")
        }
    }

    /// The public routes: linear(rows: 1) over Matrix and WeightMatrix (F32 and BF16, with bias), and
    /// WeightMatrix.multiply.
    func testSingleRowLinearRoutes() throws {
        for (n, k) in [(17, 7), (1000, 576), (3, 1)] {
            let w = try Matrix(rows: n, cols: k, storage: randomFloats(n * k))
            let x = randomFloats(k), bias = randomFloats(n), start = randomFloats(n)
            for held in [false, true] {
                let weight = WeightMatrix(w, bf16: held)
                let values = weight.matrix()
                for accumulate in [false, true] {
                    var reference = [Double](repeating: 0, count: n), magnitude = reference
                    for j in 0..<n {
                        var s = (accumulate ? Double(start[j]) : 0) + Double(bias[j]), m = abs(s)
                        for t in 0..<k {
                            let term = Double(values[j, t]) * Double(x[t])
                            s += term
                            m += abs(term)
                        }
                        reference[j] = s
                        magnitude[j] = m
                    }
                    var y = accumulate ? start : [Float](repeating: .nan, count: n)
                    var scratch: [Float] = []
                    y.withUnsafeMutableBufferPointer { py in
                        linear(x, rows: 1, inputStride: k, weight: weight, bias: bias, into: py.baseAddress!,
                               outputStride: n, accumulate: accumulate, scratch: &scratch)
                    }
                    XCTAssertTrue(scratch.isEmpty, "a single row needs no expanded copy")
                    assertProduct(y, reference: reference, magnitude: magnitude, "WeightMatrix bf16 \(held) \(n)x\(k) acc \(accumulate)")
                    let withoutBias = zipSameLength(reference, bias).map { $0 - Double($1) }
                    var z = accumulate ? start : [Float](repeating: .nan, count: n)
                    z.withUnsafeMutableBufferPointer { weight.multiply(x, into: $0.baseAddress!, accumulate: accumulate) }
                    assertProduct(z, reference: withoutBias, magnitude: magnitude, "multiply bf16 \(held) \(n)x\(k)")
                    if !held {
                        var u = accumulate ? start : [Float](repeating: .nan, count: n)
                        u.withUnsafeMutableBufferPointer { py in
                            linear(x, rows: 1, inputStride: k, weight: w, into: py.baseAddress!, outputStride: n, accumulate: accumulate)
                        }
                        assertProduct(u, reference: withoutBias, magnitude: magnitude, "Matrix \(n)x\(k) acc \(accumulate)")
                    }
                }
            }
        }
    }

    /// SwiGLU's silu(gate) · up against Double, large magnitudes included, on strided rows.
    func testSiluMultiplyAgainstNaive_avx512() throws { try onPath(.avx512, siluMultiplyAgainstNaive) }
    func testSiluMultiplyAgainstNaive_avx2() throws { try onPath(.avx2, siluMultiplyAgainstNaive) }
    func testSiluMultiplyAgainstNaive_portable() throws { try onPath(.portable, siluMultiplyAgainstNaive) }
    func siluMultiplyAgainstNaive(_ isa: InstructionSet) throws {
        for width in [1, 7, 17, 1536] {
            let rows = 3, stride = width + 3
            var gate = randomFloats(rows * stride, scale: 12)
            gate[0] = -100
            gate[rows * stride - 4] = 95
            let up = randomFloats(rows * stride, scale: 2), before = gate
            gate.withUnsafeMutableBufferPointer { g in
                siluMultiply(gate: g.baseAddress!, up: up, rows: rows, width: width, stride: stride)
            }
            var worst = 0.0
            for r in 0..<rows {
                for i in 0..<width {
                    let g = Double(before[r * stride + i]), u = Double(up[r * stride + i])
                    let expected = g / (1 + Foundation.exp(-g)) * u
                    worst = max(worst, abs(Double(gate[r * stride + i]) - expected) / max(1, abs(expected)))
                }
                for i in width..<stride { XCTAssertEqual(gate[r * stride + i], before[r * stride + i], "\(isa) past the row") }
            }
            XCTAssertLessThanOrEqual(worst, 1e-6, "\(isa) width \(width)")
        }
    }

    /// One query row against softmax(q·Kᵀ/√d)·V in Double, cache laid out [kvHeads][capacity][d].
    func testDecodeAttentionAgainstNaive_avx512() throws { try onPath(.avx512, decodeAttentionAgainstNaive) }
    func testDecodeAttentionAgainstNaive_avx2() throws { try onPath(.avx2, decodeAttentionAgainstNaive) }
    func testDecodeAttentionAgainstNaive_portable() throws { try onPath(.portable, decodeAttentionAgainstNaive) }
    func decodeAttentionAgainstNaive(_ isa: InstructionSet) throws {
        for (heads, kvHeads) in [(3, 3), (9, 3), (14, 2)] {
            for d in [64, 20] {
                for length in [1, 5, 300] {
                    let capacity = length + 3
                    let q = randomFloats(heads * d, scale: 2)
                    let keys = randomFloats(kvHeads * capacity * d, scale: 2)
                    let values = randomFloats(kvHeads * capacity * d)
                    // An earlier firstSlot: the slots after it are not visible.
                    for firstSlot in Set([length - 1, max(0, length - 3)]).sorted() {
                        let visible = min(length, firstSlot + 1)
                        let expected = referenceAttention(query: q, key: keys, value: values, queries: 1, keys: length, heads: heads,
                                                          kvHeads: kvHeads, headDimension: d, visible: visible,
                                                          keyRowStride: d, keyHeadStride: capacity * d).output
                        var output = [Float](repeating: .nan, count: heads * d)
                        var scratch: [Float] = []
                        output.withUnsafeMutableBufferPointer { po in
                            cachedAttention(query: q, queryStride: heads * d, rows: 1, heads: heads, keys: keys,
                                            values: values, kvHeads: kvHeads, headDimension: d, capacity: capacity,
                                            length: length, firstSlot: firstSlot, output: po.baseAddress!,
                                            outputStride: heads * d, scratch: &scratch)
                        }
                        let worst = zipSameLength(output, expected).map { abs(Double($0) - $1) }.max() ?? .infinity
                        XCTAssertLessThanOrEqual(worst, 1e-5, "\(isa) heads \(heads)/\(kvHeads) d \(d) length \(length) first \(firstSlot)")
                    }
                }
            }
        }
    }

    /// The decode attention of one query row (`heads` heads side by side) over a full cache of `length`
    /// slots per kv head.
    private func attendOneRow(_ q: [Float], keys: [Float], values: [Float], heads: Int, kvHeads: Int, d: Int, length: Int) -> [Float] {
        var output = [Float](repeating: .nan, count: heads * d)
        var scratch: [Float] = []
        output.withUnsafeMutableBufferPointer { po in
            cachedAttention(query: q, queryStride: heads * d, rows: 1, heads: heads, keys: keys, values: values,
                            kvHeads: kvHeads, headDimension: d, capacity: length, length: length,
                            firstSlot: length - 1, output: po.baseAddress!, outputStride: heads * d, scratch: &scratch)
        }
        return output
    }

    /// A kv head's query heads are computed together, up to three at a time sharing each key and value
    /// row: each head's output equals what it gives alone (each query head with a kv head of its own,
    /// holding the same keys and values), bit for bit, for groups of 7 (passes of 3, 3 and 1) and 2.
    func testGroupedQueryHeadsEqualHeadsAlone_avx512() throws { try onPath(.avx512, groupedQueryHeadsEqualHeadsAlone) }
    func testGroupedQueryHeadsEqualHeadsAlone_avx2() throws { try onPath(.avx2, groupedQueryHeadsEqualHeadsAlone) }
    func testGroupedQueryHeadsEqualHeadsAlone_portable() throws { try onPath(.portable, groupedQueryHeadsEqualHeadsAlone) }
    func groupedQueryHeadsEqualHeadsAlone(_ isa: InstructionSet) throws {
        for group in [7, 2] {
            for d in [64, 72, 20] {
                for length in [5, 300] {
                    let q = randomFloats(group * d, scale: 2), keys = randomFloats(length * d, scale: 2), values = randomFloats(length * d)
                    func attend(kvHeads: Int) -> [Float] {
                        // kv head k holds the same keys and values for every k.
                        attendOneRow(q, keys: (0..<kvHeads).flatMap { _ in keys }, values: (0..<kvHeads).flatMap { _ in values },
                                     heads: group, kvHeads: kvHeads, d: d, length: length)
                    }
                    XCTAssertEqual(attend(kvHeads: 1), attend(kvHeads: group), "\(isa) group \(group) d \(d) length \(length)")
                }
            }
        }
    }

    /// Every row is computed by the same instructions whichever thread takes it: many runs on the
    /// team (chunks land on different threads each time) equal the single-thread result bit for bit.
    func testTeamSplitDoesNotChangeResults() {
        var workerChunks = 0
        for (rows, cols) in [(3072, 576), (1003, 577), (49, 1536), (4096, 17)] {
            let w = randomFloats(rows * cols), x = randomFloats(cols), start = randomFloats(rows)
            let halves = w.map(bf16)
            for accumulate in [0, 1] {
                var alone32 = start, alone16 = start
                DecodeTeam.with(team: false) {
                    decode_matvec_f32(w, rows, cols, cols, x, &alone32, Int32(accumulate))
                    decode_matvec_bf16(halves, rows, cols, cols, x, &alone16, Int32(accumulate))
                }
                for run in 0..<40 {
                    var y32 = start, y16 = start
                    decode_matvec_f32(w, rows, cols, cols, x, &y32, Int32(accumulate))
                    workerChunks += DecodeTeam.lastWorkerChunks
                    decode_matvec_bf16(halves, rows, cols, cols, x, &y16, Int32(accumulate))
                    workerChunks += DecodeTeam.lastWorkerChunks
                    XCTAssertEqual(y32, alone32, "f32 \(rows)x\(cols) run \(run)")
                    XCTAssertEqual(y16, alone16, "bf16 \(rows)x\(cols) run \(run)")
                    if y32 != alone32 || y16 != alone16 { return }
                }
            }
        }
        // Attention: blocks of positions over the team, merged in a fixed order.
        let heads = 9, kvHeads = 3, d = 64, length = 700
        let q = randomFloats(heads * d), keys = randomFloats(kvHeads * length * d), values = randomFloats(kvHeads * length * d)
        func attend() -> [Float] { attendOneRow(q, keys: keys, values: values, heads: heads, kvHeads: kvHeads, d: d, length: length) }
        let alone = DecodeTeam.with(team: false) { attend() }
        for run in 0..<40 { XCTAssertEqual(attend(), alone, "attention run \(run)") }
        if DecodeTeam.size > 1 {
            XCTAssertGreaterThan(workerChunks, 0, "the workers never took a chunk: the team did not run")
        }
    }

    /// Weight memory: matrices small enough to share regions, and large ones with their own, keep
    /// their values (F32 exactly, BF16 truncated) while others come and go.
    func testWeightMemoryKeepsValues() throws {
        var kept: [(Matrix, WeightMatrix, WeightMatrix)] = []
        for i in 0..<60 {
            let rows = i % 10 == 9 ? 2100 : 37 + i, cols = i % 10 == 9 ? 1024 : 1000 + i  // 9 of ~8.6 MB
            let m = try Matrix(rows: rows, cols: cols, storage: randomFloats(rows * cols))
            let pair = (m, WeightMatrix(m), WeightMatrix(m, bf16: true))
            if i % 3 == 0 { kept.append(pair) }  // the others are released at once
        }
        for (m, f32, half) in kept {
            XCTAssertEqual(f32.matrix(), m)
            XCTAssertFalse(f32.isBF16)
            XCTAssertTrue(half.isBF16)
            XCTAssertEqual(half.byteCount, m.count * 2)
            XCTAssertEqual(half.matrix().storage, m.storage.map { widen(bf16($0)) })
            var row = [Float](repeating: 0, count: m.cols)
            row.withUnsafeMutableBufferPointer { f32.copyRow(m.rows - 1, into: $0.baseAddress!) }
            XCTAssertEqual(row, m.row(m.rows - 1))
        }
        let empty = WeightMatrix(Matrix(rows: 0, cols: 5), bf16: true)
        XCTAssertEqual(empty.matrix().shape, [0, 5])
    }

    /// A weights file mapped for reading in place: 2 MiB-aligned, every byte as the file holds it (a
    /// file past the 4 MiB where the page probe runs, and one below it), readable twice over (the
    /// probe may drop the file's cached pages, which are then read again).
    func testWeightFileMappingReadsTheFile() throws {
        for size in [5 * (1 << 20) + 4097, 3000] {
            let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 7) }
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("weights-\(UUID().uuidString).bin")
            try Data(bytes).write(to: url)
            defer { try? FileManager.default.removeItem(at: url) }
            let fd = open(url.path, O_RDONLY)
            XCTAssertGreaterThanOrEqual(fd, 0)
            defer { close(fd) }
            let base = try XCTUnwrap(WeightFileMapping.map(descriptor: fd, bytes: size))
            defer { munmap(UnsafeMutableRawPointer(mutating: base), size) }
            XCTAssertEqual(Int(bitPattern: base) % (2 << 20), 0, "\(size) bytes: not 2 MiB-aligned")
            for pass in 0..<2 {
                XCTAssertTrue(bytes.elementsEqual(UnsafeRawBufferPointer(start: base, count: size)), "\(size) bytes, pass \(pass)")
            }
        }
        XCTAssertNil(WeightFileMapping.map(descriptor: -1, bytes: 4096))
    }

    /// The bandwidth probe sums what it reads.
    func testStreamSum() {
        let values = (0..<300_001).map { Float($0 % 7) - 3 }
        let expected = values.reduce(0.0) { $0 + Double($1) }
        let sum = values.withUnsafeBufferPointer { DecodeTeam.streamSum($0.baseAddress!, count: $0.count) }
        XCTAssertEqual(sum, expected, accuracy: 1e-6 * 300_001)
        XCTAssertGreaterThan(DecodeTeam.streamingBandwidth(megabytes: 8, passes: 1) ?? 0, 0)
    }
}
