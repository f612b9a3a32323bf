import Foundation
import Tensor
import TestSupport
import XCTest

/// Attention and its score capture against the Double reference (TestSupport's referenceAttention).
final class AttentionTests: XCTestCase {
    var rng = SplitMix(seed: 7)

    func random(_ rows: Int, _ cols: Int) -> Matrix {
        try! Matrix(rows: rows, cols: cols, storage: (0..<(rows * cols)).map { _ in rng.nextFloat() * 2 })
    }

    func check(nq: Int, nk: Int, heads: Int, kvHeads: Int, d: Int, causal: Bool, offset: Int, line: UInt = #line) throws {
        let q = random(nq, heads * d), k = random(nk, kvHeads * d), v = random(nk, kvHeads * d)
        let result = try attention(query: q, key: k, value: v, heads: heads, kvHeads: kvHeads, causal: causal,
                                   keyOffset: offset, captureScores: true)
        let (out, scores) = referenceAttention(query: q.storage, key: k.storage, value: v.storage, queries: nq, keys: nk,
                                               heads: heads, kvHeads: kvHeads, headDimension: d, visible: causal ? offset + 1 : nk)
        XCTAssertEqual(result.output.shape, [nq, heads * d], line: line)
        let outError = zipSameLength(result.output.storage, out).map { abs(Double($0) - $1) }.max() ?? 0
        XCTAssertLessThan(outError, 1e-4, "output \(nq)x\(nk) h\(heads)/\(kvHeads) d\(d) causal \(causal)", line: line)
        let s = try XCTUnwrap(result.scores, line: line)
        let scoreError = zipSameLength(s, scores).map { abs(Double($0) - $1) }.max() ?? 0
        XCTAssertLessThan(scoreError, 1e-6, "scores", line: line)
        // Scores are a mean of probability rows: they sum to 1.
        XCTAssertEqual(Double(s.reduce(0, +)), 1, accuracy: 1e-4, line: line)
        let plain = try attention(query: q, key: k, value: v, heads: heads, kvHeads: kvHeads, causal: causal, keyOffset: offset)
        XCTAssertNil(plain.scores, line: line)
        XCTAssertEqual(plain.output, result.output, "capture must not change the output", line: line)
    }

    func testFullAttentionOddShapes() throws {
        try check(nq: 1, nk: 1, heads: 1, kvHeads: 1, d: 1, causal: false, offset: 0)
        try check(nq: 7, nk: 13, heads: 3, kvHeads: 3, d: 5, causal: false, offset: 0)
        try check(nq: 97, nk: 97, heads: 2, kvHeads: 2, d: 12, causal: false, offset: 0)
        try check(nq: 300, nk: 1100, heads: 2, kvHeads: 2, d: 8, causal: false, offset: 0)  // several query blocks
    }

    func testGroupedQueryAttention() throws {
        try check(nq: 9, nk: 9, heads: 4, kvHeads: 2, d: 6, causal: false, offset: 0)
        try check(nq: 70, nk: 70, heads: 6, kvHeads: 1, d: 4, causal: true, offset: 0)
    }

    func testCausalWithKeyOffset() throws {
        try check(nq: 5, nk: 5, heads: 2, kvHeads: 1, d: 3, causal: true, offset: 0)
        try check(nq: 1, nk: 20, heads: 2, kvHeads: 2, d: 8, causal: true, offset: 19)  // one decode step on a cache
        try check(nq: 66, nk: 100, heads: 3, kvHeads: 1, d: 5, causal: true, offset: 34)
    }

    func testRejectsBadShapes() {
        XCTAssertThrowsError(try attention(query: random(2, 6), key: random(2, 4), value: random(2, 4), heads: 2))
        XCTAssertThrowsError(try attention(query: random(2, 6), key: random(2, 6), value: random(2, 6), heads: 4))
        XCTAssertThrowsError(try attention(query: random(2, 6), key: random(3, 6), value: random(2, 6), heads: 2))
    }
}
