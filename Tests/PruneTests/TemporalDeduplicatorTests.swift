import XCTest
@testable import Prune

final class TemporalDeduplicatorTests: XCTestCase {
    let grid = TokenGrid(rows: 2, cols: 3)

    /// Six tokens of width 2; `changed` positions get a perpendicular feature.
    func frame(changed: Set<Int> = []) -> [Float] {
        (0..<6).flatMap { i -> [Float] in changed.contains(i) ? [-Float(i + 1), 1] : [1, Float(i + 1)] }
    }

    func testFirstFrameIsNeverDeduplicatedAndRepeatsAreDroppedInPlace() throws {
        var dedup = try TemporalDeduplicator(threshold: 0.99)
        XCTAssertEqual(try dedup.candidates(features: frame(), width: 2, grid: grid), [Bool](repeating: true, count: 6))
        XCTAssertEqual(try dedup.candidates(features: frame(changed: [1, 4]), width: 2, grid: grid),
                       [false, true, false, false, true, false])
        // The previous frame is the full previous features: 1 and 4 match frame 1 now.
        XCTAssertEqual(try dedup.candidates(features: frame(changed: [1, 4]), width: 2, grid: grid), [Bool](repeating: false, count: 6))
        XCTAssertEqual(try dedup.candidates(features: frame(changed: [1, 4]), width: 2, grid: grid), [Bool](repeating: false, count: 6))
    }

    func testGridOrWidthChangeAndResetStartOver() throws {
        var dedup = try TemporalDeduplicator(threshold: 0.9)
        _ = try dedup.candidates(features: frame(), width: 2, grid: grid)
        let transposed = TokenGrid(rows: 3, cols: 2)
        XCTAssertEqual(try dedup.candidates(features: frame(), width: 2, grid: transposed), [Bool](repeating: true, count: 6))
        XCTAssertEqual(try dedup.candidates(features: frame(), width: 2, grid: transposed), [Bool](repeating: false, count: 6))
        XCTAssertEqual(try dedup.candidates(features: frame(), width: 3, grid: TokenGrid(rows: 2, cols: 2)), [Bool](repeating: true, count: 4))
        dedup.reset()
        XCTAssertEqual(try dedup.candidates(features: frame(), width: 3, grid: TokenGrid(rows: 2, cols: 2)), [Bool](repeating: true, count: 4))
        XCTAssertThrowsError(try dedup.candidates(features: [1, 2, 3], width: 2, grid: grid)) {
            XCTAssertEqual("\($0)", "token features has 3 values, expected 12")
        }
    }

    func testBudgetAppliesToSurvivors() throws {
        var random = TestRandom(seed: 31)
        let grid = TokenGrid(rows: 8, cols: 8), width = 4
        let first = (0..<(64 * width)).map { _ in random.unit() - 0.5 }
        var second = first
        let moved = Set((0..<64).filter { _ in random.chance(0.15) })
        for i in moved { for d in 0..<width { second[i * width + d] = random.unit() - 0.5 } }
        var dedup = try TemporalDeduplicator(threshold: 0.999)
        let object = random.scores(64, tied: false), deep = random.scores(64, tied: false)
        let hiPrune = try HiPrune()

        let frame0 = try hiPrune.select(objectScores: object, deepScores: deep, grid: grid, budget: .count(21),
                                        candidates: try dedup.candidates(features: first, width: width, grid: grid))
        XCTAssertEqual(frame0.count, 21)
        let survivors = try dedup.candidates(features: second, width: width, grid: grid)
        let survivorIndices = (0..<64).filter { survivors[$0] }
        // A random replacement is never 0.999-similar to what it replaced.
        XCTAssertEqual(Set(survivorIndices), moved)
        // N' = 21 of the full 64 tokens; the kept count is min(N', survivors), all survivors, positions intact.
        let frame1 = try hiPrune.select(objectScores: object, deepScores: deep, grid: grid, budget: .count(21), candidates: survivors)
        XCTAssertEqual(frame1.count, min(21, moved.count))
        XCTAssertTrue(frame1.indices.allSatisfy { moved.contains($0) })
        XCTAssertEqual(try hiPrune.select(objectScores: object, deepScores: deep, grid: grid, budget: .ratio(0.33), candidates: survivors).count,
                       min(21, moved.count))
    }
}
