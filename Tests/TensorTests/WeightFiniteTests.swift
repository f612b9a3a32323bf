import XCTest
@testable import Tensor

/// WeightFormat.firstNonFinite for the block formats the GGUF fixture does not hold: the K-quants
/// keep their F16 scales in different places (Q4_K/Q5_K: d, dmin first; Q6_K: d last).
final class WeightFiniteTests: XCTestCase {
    func testBlockScalesAreCheckedWhereEachFormatKeepsThem() {
        let nan: [UInt8] = [0x00, 0x7E], inf: [UInt8] = [0x00, 0x7C], one: [UInt8] = [0x00, 0x3C]
        // (format, scale byte offsets in a block); 3 rows of 2 blocks each.
        let cases: [(WeightFormat, [Int])] = [
            (.q4_0, [0]), (.q4_1, [0, 2]), (.q5_0, [0]), (.q5_1, [0, 2]), (.q8_0, [0]),
            (.q4_K, [0, 2]), (.q5_K, [0, 2]), (.q6_K, [208]),
        ]
        for (format, offsets) in cases {
            let cols = 2 * format.blockValues, rows = 3
            var blocks = [UInt8](repeating: 0x11, count: rows * format.rowBytes(cols))
            // Every scale finite (1.0), every other byte arbitrary: nothing is refused.
            for b in 0..<(rows * 2) { for o in offsets { blocks.replaceSubrange((b * format.blockBytes + o)..<(b * format.blockBytes + o + 2), with: one) } }
            XCTAssertNil(blocks.withUnsafeBytes { format.firstNonFinite($0.baseAddress!, rows: rows, cols: cols) }, format.name)
            for o in offsets {
                for poison in [nan, inf] {
                    var bad = blocks
                    let block = 3  // row 1, second block
                    bad.replaceSubrange((block * format.blockBytes + o)..<(block * format.blockBytes + o + 2), with: poison)
                    let index = bad.withUnsafeBytes { format.firstNonFinite($0.baseAddress!, rows: rows, cols: cols) }
                    XCTAssertEqual(index, cols + format.blockValues, "\(format.name) scale at byte \(o)")
                }
            }
        }
    }

    func testFloatFormatsAreCheckedValueByValue() {
        let values: [Float] = [1, -2, 3.5, 60000, -0.0, 7]  // 60000: large, yet finite as a half
        values.withUnsafeBytes { XCTAssertNil(WeightFormat.f32.firstNonFinite($0.baseAddress!, rows: 2, cols: 3)) }
        for bad in [Float.nan, .infinity, -.infinity] {
            var v = values
            v[4] = bad
            v.withUnsafeBytes { XCTAssertEqual(WeightFormat.f32.firstNonFinite($0.baseAddress!, rows: 2, cols: 3), 4) }
            let halves = v.map { Float16($0).bitPattern }
            halves.withUnsafeBytes { XCTAssertEqual(WeightFormat.f16.firstNonFinite($0.baseAddress!, rows: 2, cols: 3), 4) }
            let bf16 = v.map { UInt16(truncatingIfNeeded: $0.bitPattern >> 16) }
            bf16.withUnsafeBytes { XCTAssertEqual(WeightFormat.bf16.firstNonFinite($0.baseAddress!, rows: 2, cols: 3), 4) }
        }
    }
}
