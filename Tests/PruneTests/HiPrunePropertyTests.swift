import XCTest
@testable import Prune

/// HiPrune's stated properties on thousands of random frames.
final class HiPrunePropertyTests: XCTestCase {
    func testGridModeProperties() throws {
        var random = TestRandom(seed: 1)
        for trial in 0..<3000 {
            let grid = random.grid()
            let n = grid.count
            let tied = random.chance(0.5)
            let object = random.scores(n, tied: tied), deep = random.scores(n, tied: tied)
            let budget = random.int(0...n)
            let alpha = [0.1, 0.1, 0.5, 1.0, 3.0][random.int(0...4)]
            let candidates: [Bool]? = random.chance(0.25) ? (0..<n).map { _ in random.chance(0.7) } : nil
            let hiPrune = try HiPrune(alpha: alpha)
            let selection = try hiPrune.select(objectScores: object, deepScores: deep, grid: grid,
                                               budget: .count(budget), candidates: candidates)
            let context = "trial \(trial) grid \(grid) budget \(budget) alpha \(alpha)"
            let open = (0..<n).filter { candidates?[$0] ?? true }
            let keep = min(budget, open.count)

            // Count, uniqueness, order, candidates only.
            XCTAssertEqual(selection.count, keep, context)
            XCTAssertEqual(selection.roles.count, selection.indices.count, context)
            XCTAssertTrue(zip(selection.indices, selection.indices.dropFirst()).allSatisfy { $0 < $1 }, context)
            XCTAssertTrue(selection.indices.allSatisfy { (0..<n).contains($0) && (candidates?[$0] ?? true) }, context)

            // Anchors: the naive top n_a of the object scores, all kept.
            let anchorCount = keep == 0 ? 0 : min(keep, max(1, Int((Double(keep) * alpha / 5).rounded(.toNearestOrEven))))
            let anchors = Set(Naive.ranked(open, by: object).prefix(anchorCount))
            XCTAssertEqual(Set(selection.indices(of: .anchor)), anchors, context)

            // Buffers: true grid neighbours of anchors; all of them, or the best by object score when over budget.
            let neighbours = Set(anchors.flatMap { Naive.gridNeighbours(of: $0, in: grid) })
                .subtracting(anchors).filter { candidates?[$0] ?? true }
            let buffers = selection.indices(of: .buffer)
            XCTAssertTrue(buffers.allSatisfy { neighbours.contains($0) }, context)
            let expectedBuffers = Set(Naive.ranked(Array(neighbours), by: object).prefix(keep - anchors.count))
            XCTAssertEqual(Set(buffers), expectedBuffers, context)

            // Registers: the highest remaining deep scores.
            let rest = open.filter { !anchors.contains($0) && !expectedBuffers.contains($0) }
            let registers = Set(Naive.ranked(rest, by: deep).prefix(keep - anchors.count - expectedBuffers.count))
            XCTAssertEqual(Set(selection.indices(of: .register)), registers, context)
            XCTAssertEqual(selection.count(of: .prompt) + selection.count(of: .kept), 0, context)

            // Same input, same output.
            XCTAssertEqual(try hiPrune.select(objectScores: object, deepScores: deep, grid: grid,
                                              budget: .count(budget), candidates: candidates), selection, context)
        }
    }

    func testReferenceModeProperties() throws {
        var random = TestRandom(seed: 2)
        for trial in 0..<1500 {
            let grid = random.grid()
            let n = grid.count
            let object = random.scores(n, tied: random.chance(0.5)), deep = random.scores(n, tied: true)
            let budget = random.int(0...n)
            let hiPrune = try HiPrune(alpha: 0.5, mode: .reference)
            let selection = try hiPrune.select(objectScores: object, deepScores: deep, grid: grid, budget: .count(budget))
            let context = "trial \(trial) grid \(grid) budget \(budget)"
            XCTAssertEqual(selection.count, budget, context)
            // No max(1, …): small budgets get no anchor.
            let anchorCount = Int((Double(budget) * 0.5 / 5).rounded(.toNearestOrEven))
            XCTAssertEqual(Set(selection.indices(of: .anchor)), Set(Naive.ranked(Array(0..<n), by: object).prefix(anchorCount)), context)
            // Buffers come from the flat ±1, ±cols arithmetic, clamped.
            let flat = Set(selection.indices(of: .anchor).flatMap { a in [a - 1, a + 1, a - grid.cols, a + grid.cols].map { min(max($0, 0), n - 1) } })
            XCTAssertTrue(selection.indices(of: .buffer).allSatisfy { flat.contains($0) }, context)
        }
    }

    func testAnchorCountRoundsHalfToEvenAndKeepsOneInGridMode() throws {
        let grid = try HiPrune(alpha: 0.1), reference = try HiPrune(alpha: 0.1, mode: .reference)
        XCTAssertEqual(grid.anchorCount(budget: 21), 1)       // published: round(0.42) = 0
        XCTAssertEqual(reference.anchorCount(budget: 21), 0)
        XCTAssertEqual(reference.anchorCount(budget: 125), 2)  // 2.5 → 2
        XCTAssertEqual(reference.anchorCount(budget: 175), 4)  // 3.5 → 4
        XCTAssertEqual(reference.anchorCount(budget: 192), 4)  // 3.84
        XCTAssertEqual(grid.anchorCount(budget: 0), 0)
    }

    func testBuffersNeverWrapRows() throws {
        // 3×4 grid, the anchor at (1, 0) = index 4: its left is not index 3 (end of row 0).
        let grid = TokenGrid(rows: 3, cols: 4)
        var object = [Float](repeating: 0, count: 12)
        object[4] = 1
        let deep = [Float](repeating: 0, count: 12)
        let selection = try HiPrune(alpha: 1).select(objectScores: object, deepScores: deep, grid: grid, budget: .count(5))
        XCTAssertEqual(selection.indices(of: .anchor), [4])
        XCTAssertEqual(selection.indices(of: .buffer), [0, 5, 8])
        XCTAssertEqual(selection.indices(of: .register), [1])  // all deep scores tie: lowest open index
        let reference = try HiPrune(alpha: 1, mode: .reference).select(objectScores: object, deepScores: deep, grid: grid, budget: .count(5))
        XCTAssertEqual(reference.indices(of: .buffer), [0, 3, 5, 8])
    }

    func testRatioBudgetAndRaisedErrors() throws {
        var random = TestRandom(seed: 3)
        let grid = TokenGrid(rows: 24, cols: 24)
        let object = random.scores(576, tied: false), deep = random.scores(576, tied: false)
        let hiPrune = try HiPrune()
        XCTAssertEqual(try hiPrune.select(objectScores: object, deepScores: deep, grid: grid, budget: .ratio(1.0 / 3)).count, 192)
        XCTAssertThrowsError(try hiPrune.select(objectScores: object, deepScores: deep, grid: grid, budget: .count(577))) {
            XCTAssertEqual($0 as? PruneError, .budgetExceedsTokens(budget: 577, tokens: 576))
        }
        XCTAssertThrowsError(try hiPrune.select(objectScores: object, deepScores: deep, grid: grid, budget: .count(5),
                                                candidates: [true])) {
            XCTAssertEqual("\($0)", "candidate mask has 1 values, expected 576")
        }
    }
}
