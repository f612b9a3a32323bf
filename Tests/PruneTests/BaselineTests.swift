import XCTest
@testable import Prune

final class BaselineTests: XCTestCase {
    func testSplitMix64MatchesThePublishedSequence() {
        // Reference outputs of Vigna's splitmix64.c.
        var zero = SplitMix64(seed: 0)
        XCTAssertEqual(zero.next(), 0xE220_A839_7B1D_CDAF)
        var generator = SplitMix64(seed: 1_234_567)
        XCTAssertEqual((0..<5).map { _ in generator.next() },
                       [6_457_827_717_110_365_317, 3_203_168_211_198_807_973, 9_817_491_932_198_370_423,
                        4_593_380_528_125_082_431, 16_408_922_859_458_223_821])
    }

    func testCountsOrderAndDeterminism() throws {
        var random = TestRandom(seed: 21)
        for trial in 0..<2000 {
            let grid = random.grid()
            let n = grid.count
            let budget = random.int(0...n)
            let deep = random.scores(n, tied: true), object = random.scores(n, tied: false)
            let candidates: [Bool]? = random.chance(0.2) ? (0..<n).map { _ in random.chance(0.5) } : nil
            let keep = min(budget, candidates.map { $0.filter { $0 }.count } ?? n)
            let seed = random.generator.next()
            let context = "trial \(trial) grid \(grid) budget \(budget)"
            let selections = [
                try Baseline.random(seed: seed, grid: grid, budget: .count(budget), candidates: candidates),
                try Baseline.uniform(grid: grid, budget: .count(budget), candidates: candidates),
                try Baseline.topDeep(deepScores: deep, grid: grid, budget: .count(budget), candidates: candidates),
                try Baseline.topObject(objectScores: object, grid: grid, budget: .count(budget), candidates: candidates),
            ]
            for selection in selections {
                XCTAssertEqual(selection.count, keep, context)
                XCTAssertEqual(selection.count(of: .kept), keep, context)
                XCTAssertTrue(zip(selection.indices, selection.indices.dropFirst()).allSatisfy { $0 < $1 }, context)
                XCTAssertTrue(selection.indices.allSatisfy { (0..<n).contains($0) && (candidates?[$0] ?? true) }, context)
            }
            XCTAssertEqual(try Baseline.random(seed: seed, grid: grid, budget: .count(budget), candidates: candidates),
                           selections[0], context)
            let open = (0..<n).filter { candidates?[$0] ?? true }
            XCTAssertEqual(Set(selections[2].indices), Set(Naive.ranked(open, by: deep).prefix(keep)), context)
            XCTAssertEqual(Set(selections[3].indices), Set(Naive.ranked(open, by: object).prefix(keep)), context)
            XCTAssertEqual(try Baseline.keepAll(grid: grid, candidates: candidates).indices, open, context)
        }
    }

    func testRandomSeedsDifferAndCoverTheGrid() throws {
        let grid = TokenGrid(rows: 24, cols: 24)
        let a = try Baseline.random(seed: 1, grid: grid, budget: .count(64))
        let b = try Baseline.random(seed: 2, grid: grid, budget: .count(64))
        XCTAssertNotEqual(a.indices, b.indices)
        // Over many seeds every token is picked sometimes: no position is excluded.
        var hits = [Int](repeating: 0, count: 576)
        for seed in 0..<400 { for i in try Baseline.random(seed: UInt64(seed), grid: grid, budget: .count(64)).indices { hits[i] += 1 } }
        XCTAssertEqual(hits.filter { $0 == 0 }.count, 0)
    }

    func testUniformIsAnEvenLattice() throws {
        let quarter = try Baseline.uniform(grid: TokenGrid(rows: 8, cols: 8), budget: .count(16))
        XCTAssertEqual(quarter.positions.map(\.row), [1, 1, 1, 1, 3, 3, 3, 3, 5, 5, 5, 5, 7, 7, 7, 7])
        XCTAssertEqual(quarter.positions.map(\.col), [1, 3, 5, 7, 1, 3, 5, 7, 1, 3, 5, 7, 1, 3, 5, 7])
        let wide = try Baseline.uniform(grid: TokenGrid(rows: 2, cols: 12), budget: .count(6))
        // Stride 2 both ways: one lattice row in the middle-ish of two, every other column.
        XCTAssertEqual(wide.indices, [13, 15, 17, 19, 21, 23])
        let tall = try Baseline.uniform(grid: TokenGrid(rows: 12, cols: 4), budget: .count(12))
        XCTAssertEqual(tall.positions.map(\.row), [1, 1, 3, 3, 5, 5, 7, 7, 9, 9, 11, 11])
        XCTAssertEqual(tall.positions.map(\.col), Array([[Int]](repeating: [1, 3], count: 6).joined()))
        // When the lattice has more points than the budget, the budget is spread over them.
        let odd = try Baseline.uniform(grid: TokenGrid(rows: 8, cols: 8), budget: .count(7))
        XCTAssertEqual(odd.count, 7)
        XCTAssertEqual(Set(odd.positions.map(\.row)).count, 3)
        let column = try Baseline.uniform(grid: TokenGrid(rows: 10, cols: 1), budget: .count(5))
        XCTAssertEqual(column.indices, [1, 3, 5, 7, 9])
        XCTAssertEqual(try Baseline.uniform(grid: TokenGrid(rows: 3, cols: 3), budget: .count(9)).indices, Array(0..<9))
    }

    func testPrunerDispatchesByMethod() throws {
        var random = TestRandom(seed: 5)
        let grid = TokenGrid(rows: 8, cols: 8)
        let frame = FrameTokens(grid: grid, objectScores: random.scores(64, tied: false), deepScores: random.scores(64, tied: false),
                                features: (0..<128).map { _ in random.unit() - 0.5 }, featureWidth: 2)
        let hiPrune = try HiPrune()
        for method in PruneMethod.allCases {
            let selection = try Pruner(method: method, hiPrune: hiPrune, seed: 9)
                .select(frame, budget: .count(21), promptEmbedding: [1, 0])
            XCTAssertEqual(selection.count, method == .none ? 64 : 21, "\(method)")
        }
        let viaPruner = try Pruner(method: .deep, hiPrune: hiPrune).select(frame, budget: .count(21))
        XCTAssertEqual(viaPruner, try Baseline.topDeep(deepScores: frame.deepScores, grid: grid, budget: .count(21)))
        XCTAssertThrowsError(try Pruner(method: .hiprunePlusPlus, hiPrune: hiPrune).select(frame, budget: .count(21))) {
            XCTAssertEqual("\($0)", "prompt embedding has 0 values, expected 2")
        }
    }
}
