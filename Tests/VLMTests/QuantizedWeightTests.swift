import Foundation
import TestSupport
import XCTest
@testable import Tensor
@testable import VLM

/// Weights in llama.cpp's block formats, checked against the `gguf` package's numbers
/// (Tests/Fixtures/quant/blocks.gguf from tools/make_quant_fixtures.py).
final class QuantizedWeightTests: XCTestCase {
    static let blockTypes = ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K", "F16", "BF16"]

    private func file() throws -> GGUFFile { try GGUFFile(path: Fixtures.path("quant", "blocks.gguf")) }

    /// Our dequantization of every block type equals gguf.quants.dequantize, value for value, both
    /// through the file reader and through a matrix held in its block format (tiles, rows).
    func testDequantizationEqualsTheGGUFPackage() throws {
        let f = try file()
        for type in Self.blockTypes {
            let expected = try f.floats(type + ".expected")
            XCTAssertEqual(expected.count, 4 * 512)
            XCTAssertEqual(try f.floats(type), expected, type)
            let held = try f.weightMatrix(type)
            XCTAssertEqual(held.formats.map(\.name), [type])
            XCTAssertEqual(held.matrix().storage, expected, type)
            var row = [Float](repeating: 0, count: 512)
            row.withUnsafeMutableBufferPointer { held.copyRow(2, into: $0.baseAddress!) }
            XCTAssertEqual(row, Array(expected[1024..<1536]), type)
            XCTAssertEqual(held.byteCount, f.tensors[type]!.range.count, type)
        }
    }

    func testUnsupportedTypeIsOneLineNamingTensorAndType() throws {
        let f = try file()
        XCTAssertThrowsError(try f.weightMatrix("unsupported")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("Q2_K") && text.contains("'unsupported'") && !text.contains("\n"), text)
        }
    }

    /// x with blocks of very different magnitudes (and a zero block), seeded.
    private func activation(_ n: Int, seed: UInt64) -> [Float] {
        var state = seed
        return (0..<n).map { i in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let u = Float(state >> 40) / Float(1 << 24) - 0.5
            let block = i / 32
            return block == 3 ? 0 : u * [0.1, 1, 10, 0.01][block % 4]
        }
    }

    /// |Σ w·x − Σ w·x̂| where x̂ is x quantized per block with scale amax/127: each value moves by at
    /// most half a step, so the product moves by at most Σ_blocks step/2 · Σ|w| (plus F32 rounding).
    private func bound(type: String, weights w: ArraySlice<Float>, x: [Float]) -> Double {
        var total = 0.0, magnitude = 0.0
        for i in w.indices { magnitude += Double(abs(w[i] * x[i - w.startIndex])) }
        if type == "F16" || type == "BF16" { return 1e-5 * magnitude + 1e-12 }
        let block = type.hasSuffix("_K") ? 256 : 32
        for b in stride(from: 0, to: x.count, by: block) {
            let step = Double(x[b..<(b + block)].map(abs).max()!) / 127
            let weightSum = w[(w.startIndex + b)..<(w.startIndex + b + block)].reduce(0.0) { $0 + Double(abs($1)) }
            total += step / 2 * weightSum
        }
        return total * 1.0001 + 1e-5 * magnitude + 1e-12
    }

    /// The integer matvec equals the F32 product of the dequantized weights within the bound the
    /// activation's block scales give, on `isa`; and a row's result does not depend on the team.
    private func checkMatvec(isa: String) throws {
        let f = try file()
        let x = activation(512, seed: 7)
        for type in Self.blockTypes {
            let single = try f.weightMatrix(type)
            // 64 copies: 256 rows × 512 values, enough for the product to go to the team.
            let w = try WeightMatrix(stacking: Array(repeating: single, count: 64))
            let values = try f.floats(type + ".expected")
            var y = [Float](repeating: 0, count: w.rows), alone = y
            DecodeTeam.with(quantISA: isa) {
                x.withUnsafeBufferPointer { px in
                    y.withUnsafeMutableBufferPointer { w.multiply(px.baseAddress!, into: $0.baseAddress!, accumulate: false) }
                    DecodeTeam.with(team: false) {
                        alone.withUnsafeMutableBufferPointer { w.multiply(px.baseAddress!, into: $0.baseAddress!, accumulate: false) }
                    }
                }
            }
            XCTAssertEqual(y, alone, "\(type) on \(isa): team and single thread differ")
            for r in 0..<w.rows {
                let row = values[(r % 4 * 512)..<(r % 4 * 512 + 512)]
                var exact = 0.0
                for (i, v) in row.enumerated() { exact += Double(v) * Double(x[i]) }
                let limit = bound(type: type, weights: row, x: x)
                XCTAssertLessThanOrEqual(abs(Double(y[r]) - exact), limit, "\(type) on \(isa), row \(r): \(y[r]) vs \(exact)")
                XCTAssertEqual(y[r], y[r % 4], "\(type): copies of a row differ")
            }
            // Accumulating adds onto y.
            var twice = y
            DecodeTeam.with(quantISA: isa) {
                x.withUnsafeBufferPointer { px in
                    twice.withUnsafeMutableBufferPointer { w.multiply(px.baseAddress!, into: $0.baseAddress!, accumulate: true) }
                }
            }
            for r in 0..<4 { XCTAssertEqual(twice[r], y[r] + y[r], accuracy: abs(y[r]) * 1e-6, type) }
        }
    }

    /// Skips, naming what the CPU lacks, unless the quantized kernels' `isa` path runs here.
    private func skipUnlessQuantPath(_ isa: String, _ what: String) throws {
        let needs = ["avx2": "avx2+fma+f16c", "avx512vnni": "avx512f (avx512vl + avx512vnni)"][isa] ?? isa
        try skipUnlessCPU(missing: DecodeTeam.quantInstructionSets.contains(isa) ? nil : needs, what)
    }

    func testMatvecPortable() throws { try checkMatvec(isa: "portable") }

    func testMatvecAVX2() throws {
        try skipUnlessQuantPath("avx2", "AVX2 matvec")
        try checkMatvec(isa: "avx2")
    }

    func testMatvecAVX512VNNI() throws {
        try skipUnlessQuantPath("avx512vnni", "AVX512-VNNI matvec")
        try checkMatvec(isa: "avx512vnni")
    }

    /// A product of many rows through F32 tiles converted inside the GEMM equals the F32 product of
    /// the dequantized weights (sgemm on the same values), for every block type and for stacked
    /// parts of different types, and the whole-matrix conversion gives the same numbers.
    func testPrefillProductEqualsTheDequantizedProduct() throws {
        let f = try file()
        let m = 5
        let x = try Matrix(rows: m, cols: 512, storage: (0..<m).flatMap { activation(512, seed: UInt64(20 + $0)) })
        var parts: [WeightMatrix] = []
        var reference: [[Float]] = []
        for type in Self.blockTypes {
            let w = try f.weightMatrix(type)
            parts.append(w)
            reference.append(try f.floats(type + ".expected"))
        }
        let mixed = try WeightMatrix(stacking: parts)
        let dense = try Matrix(rows: mixed.rows, cols: 512, storage: reference.flatMap { $0 })
        var scratch: [Float] = []
        let expected = try linear(x, weight: WeightMatrix(dense), scratch: &scratch)
        defer { WeightMatrix.prefillConversion = .automatic }
        WeightMatrix.prefillConversion = .tiles
        let tiled = try linear(x, weight: mixed, scratch: &scratch)
        WeightMatrix.prefillConversion = .wholeMatrix
        let whole = try linear(x, weight: mixed, scratch: &scratch)
        // sgemm sums in an order that depends on the panel width: bound by F32 rounding of Σ|x|·|w|.
        let magnitude = try linear(Matrix(rows: m, cols: 512, storage: x.storage.map(abs)),
                                   weight: WeightMatrix(Matrix(rows: dense.rows, cols: 512, storage: dense.storage.map(abs))), scratch: &scratch)
        for i in 0..<expected.count {
            let scale = magnitude.storage[i] + 1e-12
            XCTAssertEqual(tiled.storage[i], expected.storage[i], accuracy: scale * 1e-5, "element \(i)")
            XCTAssertEqual(whole.storage[i], expected.storage[i], accuracy: scale * 1e-5, "element \(i)")
        }
    }

    /// The integer many-row product (quant_gemm: groups of three activation rows for the 32-value
    /// types, four for the K-quants) on `isa`: each output equals the single-row integer product of
    /// its row bit for bit (so it keeps that product's bound against the F32 product of the
    /// dequantized weights, checked here too), 1, 4 and 7 rows (whole groups and shorter last ones),
    /// accumulating or not, with the team and on one thread alike.
    private func checkIntegerProduct(isa: String) throws {
        let f = try file()
        defer { WeightMatrix.prefillConversion = .automatic }
        WeightMatrix.prefillConversion = .integer
        for type in Self.blockTypes where !["F16", "BF16"].contains(type) {
            // 64 copies of the 4 rows: enough rows for the product to go to the team.
            let w = try WeightMatrix(stacking: Array(repeating: try f.weightMatrix(type), count: 64))
            let values = try f.floats(type + ".expected")
            for m in [1, 4, 7] {
                let inputs = (0..<m).map { activation(512, seed: UInt64(40 + $0)) }
                try checkManyRows(w, inputs: inputs, isa: isa, type: type, reference: (0..<4).map { values[($0 * 512)..<($0 * 512 + 512)] })
            }
        }
    }

    /// The integer product of `w` and the rows `inputs` on `isa` (prefillConversion .integer): with
    /// the team and on one thread alike; each output the single-row product of its input row bit for
    /// bit and, for the first reference.count weight rows, within the bound of the F32 product of
    /// those rows' dequantized values; accumulating adds onto what the output holds.
    private func checkManyRows(_ w: WeightMatrix, inputs: [[Float]], isa: String, type: String, reference: [ArraySlice<Float>]) throws {
        let m = inputs.count, cols = w.cols
        let x = try Matrix(rows: m, cols: cols, storage: inputs.flatMap { $0 })
        var scratch: [Float] = []
        var product = Matrix(rows: 0, cols: 0), alone = product
        try DecodeTeam.with(quantISA: isa) { () throws(TensorError) in
            product = try linear(x, weight: w, scratch: &scratch)
            try DecodeTeam.with(team: false) { () throws(TensorError) in alone = try linear(x, weight: w, scratch: &scratch) }
        }
        XCTAssertEqual(product.storage, alone.storage, "\(type) on \(isa), \(m) rows: team and single thread differ")
        for i in 0..<m {
            var single = [Float](repeating: 0, count: w.rows)
            DecodeTeam.with(quantISA: isa) {
                inputs[i].withUnsafeBufferPointer { px in
                    single.withUnsafeMutableBufferPointer { w.multiply(px.baseAddress!, into: $0.baseAddress!, accumulate: false) }
                }
            }
            XCTAssertEqual(Array(product.storage[(i * w.rows)..<((i + 1) * w.rows)]), single,
                           "\(type) on \(isa), row \(i) of \(m): not the single-row product")
            for (r, row) in reference.enumerated() {
                var exact = 0.0
                for (c, v) in row.enumerated() { exact += Double(v) * Double(inputs[i][c]) }
                XCTAssertLessThanOrEqual(abs(Double(product[i, r]) - exact), bound(type: type, weights: row, x: inputs[i]),
                                         "\(type) on \(isa), row \(i), output \(r)")
            }
        }
        var twice = product
        try DecodeTeam.with(quantISA: isa) { () throws(TensorError) in
            x.storage.withUnsafeBufferPointer { px in
                twice.storage.withUnsafeMutableBufferPointer { py in
                    linear(px.baseAddress!, rows: m, inputStride: cols, weight: w, into: py.baseAddress!, outputStride: w.rows,
                           accumulate: true, scratch: &scratch)
                }
            }
        }
        for i in 0..<product.count {
            XCTAssertEqual(twice.storage[i], product.storage[i] + product.storage[i], "\(type) on \(isa): accumulate")
        }
    }

    func testIntegerProductPortable() throws { try checkIntegerProduct(isa: "portable") }

    func testIntegerProductAVX2() throws {
        try skipUnlessQuantPath("avx2", "AVX2 integer product")
        try checkIntegerProduct(isa: "avx2")
    }

    func testIntegerProductAVX512VNNI() throws {
        try skipUnlessQuantPath("avx512vnni", "AVX-512 VNNI integer product")
        try checkIntegerProduct(isa: "avx512vnni")
    }

    /// The fixture's blocks of `type` (8 of a K-quant, 64 of a 32-value type) rearranged into `rows`
    /// rows of `blocks` blocks (row r's block b is the fixture's block (5r + 3b) mod its count), with
    /// gguf's dequantized values of the same blocks.
    private func rearrangedBlocks(_ type: String, rows: Int, blocks: Int) throws -> (WeightMatrix, [Float]) {
        let f = try file()
        let bytes = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("quant", "blocks.gguf")))
        let format = try XCTUnwrap(WeightFormat.allCases.first { $0.name == type })
        let stored = bytes[f.tensors[type]!.range].map { $0 }, values = try f.floats(type + ".expected")
        let n = format.blockValues, count = 4 * 512 / n
        XCTAssertEqual(stored.count, count * format.blockBytes)
        var matrix = [UInt8](), reference = [Float]()
        for r in 0..<rows {
            for b in 0..<blocks {
                let k = (5 * r + 3 * b) % count
                matrix += stored[(k * format.blockBytes)..<((k + 1) * format.blockBytes)]
                reference += values[(k * n)..<((k + 1) * n)]
            }
        }
        let cols = n * blocks
        let w = try matrix.withUnsafeBytes { raw throws(TensorError) in
            try WeightMatrix(rows: rows, cols: cols, format: format) { raw.baseAddress! + $0 * format.rowBytes(cols) }
        }
        return (w, reference)
    }

    /// The K-quants' many-row kernel over shapes the fixture's 4 × 512 matrices do not reach: 37
    /// weight rows of 4608 values (18 blocks: a panel of three 8-row tiles and a second one of two,
    /// the last tile padded; the activation rows pass a panel 16 blocks at a time, each pair's chains
    /// carried from one slice to the next; two blocks past the last whole eight of the row's chains)
    /// and 13 rows of 2304 (9 blocks: one tile and a padded one), 1, 3, 6 and 9 activation rows
    /// (groups of four and shorter last groups). The rows are the fixture's blocks rearranged, so the
    /// F32 reference is gguf's values. On `isa`: every output equals the single-row product bit for
    /// bit and keeps its bound; the team and one thread agree; accumulating adds onto the output.
    private func checkWideKQuantProduct(isa: String) throws {
        defer { WeightMatrix.prefillConversion = .automatic }
        WeightMatrix.prefillConversion = .integer
        for type in ["Q4_K", "Q5_K", "Q6_K"] {
            for (rows, blocks) in [(37, 18), (13, 9)] {
                let (w, reference) = try rearrangedBlocks(type, rows: rows, blocks: blocks)
                let cols = 256 * blocks
                for m in [1, 3, 6, 9] {
                    let inputs = (0..<m).map { activation(cols, seed: UInt64(80 + $0)) }
                    try checkManyRows(w, inputs: inputs, isa: isa, type: type,
                                      reference: (0..<rows).map { reference[($0 * cols)..<(($0 + 1) * cols)] })
                }
            }
        }
    }

    /// The K-quants' products are the same numbers on every instruction set the CPU has (portable C,
    /// AVX2, AVX-512 VNNI): the integer sums per block are exact and every path runs the same chains
    /// of F32 multiply-adds (kblock_sums in quant_simd.h), one row or many.
    func testKQuantProductsAgreeAcrossInstructionSets() throws {
        defer { WeightMatrix.prefillConversion = .automatic }
        WeightMatrix.prefillConversion = .integer
        let sets = DecodeTeam.quantInstructionSets
        XCTAssertTrue(sets.contains("portable"))
        for type in ["Q4_K", "Q5_K", "Q6_K"] {
            let (w, _) = try rearrangedBlocks(type, rows: 19, blocks: 9)
            let x = try Matrix(rows: 5, cols: w.cols, storage: (0..<5).flatMap { activation(w.cols, seed: UInt64(120 + $0)) })
            var scratch: [Float] = []
            var products: [String: [Float]] = [:], singles: [String: [Float]] = [:]
            for isa in sets {
                try DecodeTeam.with(quantISA: isa) { () throws(TensorError) in
                    products[isa] = try linear(x, weight: w, scratch: &scratch).storage
                    var y = [Float](repeating: 0, count: w.rows)
                    x.storage.withUnsafeBufferPointer { px in
                        y.withUnsafeMutableBufferPointer { w.multiply(px.baseAddress!, into: $0.baseAddress!, accumulate: false) }
                    }
                    singles[isa] = y
                }
            }
            for isa in sets where isa != "portable" {
                XCTAssertEqual(products[isa], products["portable"], "\(type): the many-row product on \(isa) differs from portable C")
                XCTAssertEqual(singles[isa], singles["portable"], "\(type): the single-row product on \(isa) differs from portable C")
            }
        }
    }

    /// `rows` rows of `cols` values in a 32-value `format`, random quantized bytes (Q8_0's include −128)
    /// under scales in [2⁻⁷, 2⁻⁶) and, for the _1 types, negative minimums of that size, seeded.
    private func randomBlocks(_ format: WeightFormat, rows: Int, cols: Int, seed: UInt64) throws -> WeightMatrix {
        var state = seed
        func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 33
        }
        let rowBytes = format.rowBytes(cols)
        var bytes = (0..<(rows * rowBytes)).map { _ in UInt8(truncatingIfNeeded: next()) }
        let withMinimum = format == .q4_1 || format == .q5_1
        for block in stride(from: 0, to: bytes.count, by: format.blockBytes) {
            let d = 0x2000 | UInt16(truncatingIfNeeded: next() & 0x3FF), m = 0xA000 | UInt16(truncatingIfNeeded: next() & 0x3FF)
            bytes[block] = UInt8(d & 0xFF)
            bytes[block + 1] = UInt8(d >> 8)
            if withMinimum {
                bytes[block + 2] = UInt8(m & 0xFF)
                bytes[block + 3] = UInt8(m >> 8)
            }
        }
        return try bytes.withUnsafeBytes { raw in
            try WeightMatrix(rows: rows, cols: cols, format: format) { raw.baseAddress! + $0 * rowBytes }
        }
    }

    /// The 32-value types' many-row product on `isa` over shapes that cut its tiles everywhere: 131
    /// weight rows (panels of 64, 64 and 3 rows: a last register tile of three rows in eight lanes;
    /// the single-row product's passes of eight rows and its last three rows one at a time), 2080
    /// columns (65 blocks: the K chunks end on a single block), 2, 5 and 11 input rows (a group of five
    /// short by three, one whole, two and one row over). checkManyRows: each output the single-row
    /// product bit for bit and within its bound against the F32 product of the dequantized weights;
    /// the team and one thread agree; accumulating adds onto the output.
    private func checkWideIntegerProduct(isa: String) throws {
        defer { WeightMatrix.prefillConversion = .automatic }
        WeightMatrix.prefillConversion = .integer
        let rows = 131, cols = 2080
        for (t, format) in [WeightFormat.q8_0, .q4_0, .q4_1, .q5_0, .q5_1].enumerated() {
            let w = try randomBlocks(format, rows: rows, cols: cols, seed: UInt64(90 + t))
            let values = w.matrix().storage
            for m in [2, 5, 11] {
                let inputs = (0..<m).map { activation(cols, seed: UInt64(100 + 10 * t + $0)) }
                try checkManyRows(w, inputs: inputs, isa: isa, type: format.name, reference: (0..<rows).map { values[($0 * cols)..<(($0 + 1) * cols)] })
            }
        }
    }

    /// The 32-value types' products give the same bits on `isa` as on the portable path: the SIMD
    /// kernels take the portable dot product's steps (the exact integer per block, then a multiply
    /// by d_w · d_a and an add; the _1 types' minimum term on a second chain), so the many-row and
    /// the single-row product of 37 rows × 2080 values (an eight-row pass short by three, a tile of
    /// five rows) agree with portable for every format, 5 input rows.
    private func checkSameBitsAsPortable(isa: String) throws {
        defer { WeightMatrix.prefillConversion = .automatic }
        WeightMatrix.prefillConversion = .integer
        let rows = 37, cols = 2080, m = 5
        for (t, format) in [WeightFormat.q8_0, .q4_0, .q4_1, .q5_0, .q5_1].enumerated() {
            let w = try randomBlocks(format, rows: rows, cols: cols, seed: UInt64(140 + t))
            let inputs = (0..<m).map { activation(cols, seed: UInt64(150 + 10 * t + $0)) }
            let x = try Matrix(rows: m, cols: cols, storage: inputs.flatMap { $0 })
            var scratch: [Float] = []
            var products: [[Float]] = [], singles: [[Float]] = []
            for path in ["portable", isa] {
                try DecodeTeam.with(quantISA: path) { () throws(TensorError) in
                    products.append(try linear(x, weight: w, scratch: &scratch).storage)
                    var y = [Float](repeating: 0, count: rows)
                    inputs[m - 1].withUnsafeBufferPointer { px in
                        y.withUnsafeMutableBufferPointer { w.multiply(px.baseAddress!, into: $0.baseAddress!, accumulate: false) }
                    }
                    singles.append(y)
                }
            }
            XCTAssertEqual(products[0], products[1], "\(format.name): many-row product on \(isa) is not the portable one")
            XCTAssertEqual(singles[0], singles[1], "\(format.name): single-row product on \(isa) is not the portable one")
        }
    }

    func testSameBitsAsPortableAVX2() throws {
        try skipUnlessQuantPath("avx2", "AVX2 32-value products against portable")
        try checkSameBitsAsPortable(isa: "avx2")
    }

    func testSameBitsAsPortableAVX512VNNI() throws {
        try skipUnlessQuantPath("avx512vnni", "AVX-512 VNNI 32-value products against portable")
        try checkSameBitsAsPortable(isa: "avx512vnni")
    }

    func testWideKQuantProductPortable() throws { try checkWideKQuantProduct(isa: "portable") }

    func testWideKQuantProductAVX2() throws {
        try skipUnlessQuantPath("avx2", "AVX2 K-quant product")
        try checkWideKQuantProduct(isa: "avx2")
    }

    func testWideKQuantProductAVX512VNNI() throws {
        try skipUnlessQuantPath("avx512vnni", "AVX-512 VNNI K-quant product")
        try checkWideKQuantProduct(isa: "avx512vnni")
    }

    func testWideIntegerProductPortable() throws { try checkWideIntegerProduct(isa: "portable") }

    func testWideIntegerProductAVX2() throws {
        try skipUnlessQuantPath("avx2", "AVX2 wide integer product")
        try checkWideIntegerProduct(isa: "avx2")
    }

    func testWideIntegerProductAVX512VNNI() throws {
        try skipUnlessQuantPath("avx512vnni", "AVX-512 VNNI wide integer product")
        try checkWideIntegerProduct(isa: "avx512vnni")
    }

    /// A matrix stacked from parts of every block type (as Q4_K_M files stack Q5_0 / Q8_0 / Q6_K rows)
    /// is one product (the activation quantized once per block size, one team run, claims cut at the
    /// parts' boundaries): on `isa` each row's result equals its part's own single-row product bit for
    /// bit, the many-row product equals the single-row product of each input row, with the team and on
    /// one thread alike.
    private func checkStackedParts(isa: String) throws {
        let f = try file()
        defer { WeightMatrix.prefillConversion = .automatic }
        WeightMatrix.prefillConversion = .integer
        let types = Self.blockTypes.filter { !["F16", "BF16"].contains($0) }
        let singles = try types.map { try f.weightMatrix($0) }
        // 8 copies of the 8 types' 4 rows: 256 rows, enough for both products to go to the team.
        let stacked = try WeightMatrix(stacking: Array(Array(repeating: singles, count: 8).joined()))
        let m = 5
        let inputs = (0..<m).map { activation(512, seed: UInt64(60 + $0)) }
        let x = try Matrix(rows: m, cols: 512, storage: inputs.flatMap { $0 })
        var scratch: [Float] = []
        var product = Matrix(rows: 0, cols: 0), alone = product
        try DecodeTeam.with(quantISA: isa) { () throws(TensorError) in
            product = try linear(x, weight: stacked, scratch: &scratch)
            try DecodeTeam.with(team: false) { () throws(TensorError) in alone = try linear(x, weight: stacked, scratch: &scratch) }
        }
        XCTAssertEqual(product.storage, alone.storage, "\(isa): team and single thread differ")
        for i in 0..<m {
            var y = [Float](repeating: 0, count: stacked.rows), yAlone = y
            var own = [[Float]](repeating: [Float](repeating: 0, count: 4), count: singles.count)
            DecodeTeam.with(quantISA: isa) {
                inputs[i].withUnsafeBufferPointer { px in
                    y.withUnsafeMutableBufferPointer { stacked.multiply(px.baseAddress!, into: $0.baseAddress!, accumulate: false) }
                    DecodeTeam.with(team: false) {
                        yAlone.withUnsafeMutableBufferPointer { stacked.multiply(px.baseAddress!, into: $0.baseAddress!, accumulate: false) }
                    }
                    for (t, single) in singles.enumerated() {
                        own[t].withUnsafeMutableBufferPointer { single.multiply(px.baseAddress!, into: $0.baseAddress!, accumulate: false) }
                    }
                }
            }
            XCTAssertEqual(y, yAlone, "\(isa), input \(i): single-row product, team and single thread differ")
            for r in 0..<stacked.rows {
                XCTAssertEqual(y[r], own[r / 4 % types.count][r % 4], "\(isa), input \(i), row \(r) (\(types[r / 4 % types.count]))")
            }
            XCTAssertEqual(Array(product.storage[(i * stacked.rows)..<((i + 1) * stacked.rows)]), y,
                           "\(isa), input \(i): many-row product is not the single-row product")
        }
    }

    func testStackedPartsPortable() throws { try checkStackedParts(isa: "portable") }

    func testStackedPartsAVX2() throws {
        try skipUnlessQuantPath("avx2", "AVX2 stacked parts")
        try checkStackedParts(isa: "avx2")
    }

    func testStackedPartsAVX512VNNI() throws {
        try skipUnlessQuantPath("avx512vnni", "AVX-512 VNNI stacked parts")
        try checkStackedParts(isa: "avx512vnni")
    }

    /// The default many-row path per format: integer dot products for every block format at every
    /// row count (the measured choice), never for F16/BF16/F32.
    func testAutomaticPrefillPathPerFormat() {
        XCTAssertEqual(WeightMatrix.prefillConversion, .automatic)
        for rows in [2, 142, 448, 449, 612, 4096] {
            for format in [WeightFormat.q4_K, .q5_K, .q6_K, .q8_0, .q4_0, .q4_1, .q5_0, .q5_1] {
                XCTAssertTrue(WeightMatrix.integerProducts(format, rows: rows), format.name)
            }
            for format in [WeightFormat.f16, .bf16, .f32] {
                XCTAssertFalse(WeightMatrix.integerProducts(format, rows: rows), format.name)
            }
        }
    }

    /// Quantizing on load: our Q8_0, Q5_0 and Q5_1 quantizers give gguf.quants.quantize's values
    /// exactly; Q4_K reproduces the rows within its step sizes.
    func testQuantizersMatchGGMLsReference() throws {
        let f = try file()
        let source = try f.matrix("Q8_0.source")
        let q8 = try WeightMatrix(source, quantizingTo: .q8_0)
        XCTAssertEqual(q8.matrix().storage, try f.floats("Q8_0.expected"))
        XCTAssertEqual(try WeightMatrix(source, quantizingTo: .q5_0).matrix().storage, try f.floats("Q5_0.expected"))
        XCTAssertEqual(try WeightMatrix(source, quantizingTo: .q5_1).matrix().storage, try f.floats("Q5_1.expected"))
        let q4 = try WeightMatrix(source, quantizingTo: .q4_K)
        XCTAssertEqual(q4.formats, [.q4_K])
        XCTAssertEqual(q4.byteCount, 4 * 2 * 144)
        let back = q4.matrix().storage
        for r in 0..<4 {
            let row = source.storage[(r * 512)..<(r * 512 + 512)]
            let range = Double((row.max() ?? 0) - (row.min() ?? 0))
            var squared = 0.0, worst = 0.0
            for i in row.indices {
                let e = Double(back[i] - source.storage[i])
                squared += e * e
                worst = max(worst, abs(e))
            }
            // 4 bits over each 32-value sub-block's own range: a step is at most range/15.
            XCTAssertLessThan(worst, range / 15, "row \(r)")
            XCTAssertLessThan((squared / 512).squareRoot(), range / 15 / 2, "row \(r)")
        }
        XCTAssertThrowsError(try WeightMatrix(source, quantizingTo: .q6_K))
    }

    // MARK: Block formats in tile form (quant_tile_rows: 8 rows a tile, the rows in the lanes)

    static let tiledTypes = ["Q4_K", "Q5_K", "Q6_K", "Q5_0", "Q4_0", "Q4_1", "Q5_1", "Q8_0"]

    /// Blocks a row for the tile tests: K-quants 9 (the chains' last pass short by seven); 32-value
    /// types 65 (the many-row product's chunks of 64 blocks end on a single block).
    private func tileTestBlocks(_ type: String) -> Int { type.hasSuffix("_K") ? 9 : 65 }

    /// rearrangedBlocks built with the tile form on or off (WeightMatrix.tilesBlockFormats).
    private func rearrangedBlocks(_ type: String, rows: Int, blocks: Int, tiled: Bool) throws -> (WeightMatrix, [Float]) {
        let previous = WeightMatrix.tilesBlockFormats
        defer { WeightMatrix.tilesBlockFormats = previous }
        WeightMatrix.tilesBlockFormats = tiled
        return try rearrangedBlocks(type, rows: rows, blocks: blocks)
    }

    /// The single-row products (one per input row) and the many-row product of `w` and `x` on `isa`,
    /// the many-row one with the team and on one thread.
    private func products(_ w: WeightMatrix, _ x: Matrix, isa: String) throws -> (singles: [Float], many: [Float], alone: [Float]) {
        defer { WeightMatrix.prefillConversion = .automatic }
        WeightMatrix.prefillConversion = .integer
        var scratch: [Float] = []
        var singles: [Float] = [], many: [Float] = [], alone: [Float] = []
        try DecodeTeam.with(quantISA: isa) { () throws(TensorError) in
            many = try linear(x, weight: w, scratch: &scratch).storage
            try DecodeTeam.with(team: false) { () throws(TensorError) in alone = try linear(x, weight: w, scratch: &scratch).storage }
            for i in 0..<x.rows {
                var y = [Float](repeating: 0, count: w.rows)
                x.storage.withUnsafeBufferPointer { px in
                    y.withUnsafeMutableBufferPointer { w.multiply(px.baseAddress! + i * x.cols, into: $0.baseAddress!, accumulate: false) }
                }
                singles += y
            }
        }
        return (singles, many, alone)
    }

    /// Tile-form matrices of every block format, 13 rows (a tile and 5 stored rows), 8 (one tile) and
    /// 3 (stored only), give on `isa` exactly the portable product of the same rows held as stored:
    /// decode (one input row at a time) and the many-row product (7 input rows: a whole group of
    /// activation rows and a short one; with the team and on one thread).
    private func checkTiledProducts(isa: String) throws {
        for type in Self.tiledTypes {
            for rows in [13, 8, 3] {
                let blocks = tileTestBlocks(type)
                let (stored, _) = try rearrangedBlocks(type, rows: rows, blocks: blocks, tiled: false)
                let (tiled, _) = try rearrangedBlocks(type, rows: rows, blocks: blocks, tiled: true)
                XCTAssertEqual(stored.tiledRows, 0)
                XCTAssertEqual(tiled.tiledRows, rows / 8 * 8, "\(type), \(rows) rows")
                XCTAssertEqual(tiled.formats.map(\.name), [type])
                let x = try Matrix(rows: 7, cols: tiled.cols, storage: (0..<7).flatMap { activation(tiled.cols, seed: UInt64(160 + $0)) })
                try checkSameProducts(stored: stored, tiled: tiled, x, isa: isa, "\(type), \(rows) rows")
            }
        }
    }

    /// `tiled`'s products on `isa` (decode, many rows with the team and on one thread) are bit for bit
    /// the portable products of `stored` (the same rows as stored), whose many-row product is its
    /// single-row one per input row.
    private func checkSameProducts(stored: WeightMatrix, tiled: WeightMatrix, _ x: Matrix, isa: String, _ label: String) throws {
        let reference = try products(stored, x, isa: "portable")
        // Both are [input row, weight row].
        XCTAssertEqual(reference.many, reference.singles, "\(label): stored rows")
        let got = try products(tiled, x, isa: isa)
        XCTAssertEqual(got.singles, reference.singles, "\(label), \(isa): tiled decode differs from portable stored")
        XCTAssertEqual(got.many, reference.many, "\(label), \(isa): tiled many-row product differs")
        XCTAssertEqual(got.alone, got.many, "\(label), \(isa): team and one thread differ")
    }

    func testTiledProductsEqualThePortableStoredProductPortable() throws { try checkTiledProducts(isa: "portable") }

    func testTiledProductsEqualThePortableStoredProductAVX2() throws {
        try skipUnlessQuantPath("avx2", "AVX2 tile-form products")
        try checkTiledProducts(isa: "avx2")
    }

    func testTiledProductsEqualThePortableStoredProductAVX512VNNI() throws {
        try skipUnlessQuantPath("avx512vnni", "AVX-512 VNNI tile-form products")
        try checkTiledProducts(isa: "avx512vnni")
    }

    /// Rows read back from the tile form (copyRow, the whole matrix) are gguf's dequantized values of
    /// the same blocks, whether the SIMD or the portable repacker made the tiles; the matrix keeps its
    /// GGUF type and holds the tiles' bytes (the stored bytes for the 32-value types, about them for
    /// the K-quants) plus the stored tail.
    func testTiledRowsDequantizeAsGGUF() throws {
        for type in Self.tiledTypes {
            let blocks = type.hasSuffix("_K") ? 2 : 16
            let (w, reference) = try rearrangedBlocks(type, rows: 13, blocks: blocks, tiled: true)
            XCTAssertEqual(w.tiledRows, 8)
            XCTAssertEqual(w.matrix().storage, reference, type)
            let portable = try DecodeTeam.with(quantISA: "portable") { () throws in try rearrangedBlocks(type, rows: 13, blocks: blocks, tiled: true).0 }
            XCTAssertEqual(portable.tiledRows, 8)
            XCTAssertEqual(portable.matrix().storage, reference, "\(type): tiles made by the portable repacker")
            var row = [Float](repeating: 0, count: w.cols)
            for r in 0..<w.rows {
                row.withUnsafeMutableBufferPointer { w.copyRow(r, into: $0.baseAddress!) }
                XCTAssertEqual(row, Array(reference[(r * w.cols)..<((r + 1) * w.cols)]), "\(type), row \(r)")
            }
            let format = try XCTUnwrap(WeightFormat.allCases.first { $0.name == type })
            XCTAssertEqual(w.formats, [format])
            let stored = 13 * format.rowBytes(w.cols)
            XCTAssertGreaterThanOrEqual(w.byteCount, stored, type)
            XCTAssertLessThanOrEqual(Double(w.byteCount), (type.hasSuffix("_K") ? 1.06 : 1) * Double(stored), type)
        }
    }

    /// A matrix stacked from tile-form parts of different formats and stored tails, as Q4_K_M files'
    /// stacked Q, K (Q4_K or Q5_0) and V (Q6_K or Q8_0) are: Q4_K 13 rows, Q5_0 13, Q6_K 16, Q8_0 11,
    /// Q5_1 8, Q4_0 5, Q4_1 9, Q4_K 3 of 2304 values (the tiles of all but the first part start mid-way
    /// through a claim's 8 rows, so claims cut them; 72 blocks of 32: a chunk of 64 and one of 8):
    /// on `isa`, the portable product of the same parts stored, one input row and seven.
    private func checkStackedTiledParts(isa: String) throws {
        let shapes = [("Q4_K", 13), ("Q5_0", 13), ("Q6_K", 16), ("Q8_0", 11), ("Q5_1", 8), ("Q4_0", 5), ("Q4_1", 9), ("Q4_K", 3)]
        func blocks(_ type: String) -> Int { type.hasSuffix("_K") ? 9 : 72 }
        let stored = try WeightMatrix(stacking: shapes.map { try rearrangedBlocks($0.0, rows: $0.1, blocks: blocks($0.0), tiled: false).0 })
        let tiled = try WeightMatrix(stacking: shapes.map { try rearrangedBlocks($0.0, rows: $0.1, blocks: blocks($0.0), tiled: true).0 })
        XCTAssertEqual(tiled.tiledRows, 8 + 8 + 16 + 8 + 8 + 0 + 8 + 0)
        XCTAssertEqual(tiled.formats.map(\.name), ["Q4_K", "Q5_0", "Q6_K", "Q8_0", "Q5_1", "Q4_0", "Q4_1"])
        let x = try Matrix(rows: 7, cols: tiled.cols, storage: (0..<7).flatMap { activation(tiled.cols, seed: UInt64(170 + $0)) })
        try checkSameProducts(stored: stored, tiled: tiled, x, isa: isa, "stacked parts")
    }

    func testStackedTiledPartsOfDifferentFormatsPortable() throws { try checkStackedTiledParts(isa: "portable") }

    func testStackedTiledPartsOfDifferentFormatsAVX2() throws {
        try skipUnlessQuantPath("avx2", "AVX2 stacked tile-form parts")
        try checkStackedTiledParts(isa: "avx2")
    }

    func testStackedTiledPartsOfDifferentFormatsAVX512VNNI() throws {
        try skipUnlessQuantPath("avx512vnni", "AVX-512 VNNI stacked tile-form parts")
        try checkStackedTiledParts(isa: "avx512vnni")
    }
}
