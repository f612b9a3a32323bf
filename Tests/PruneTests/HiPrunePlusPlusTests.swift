import XCTest
@testable import Prune

final class HiPrunePlusPlusTests: XCTestCase {
    func testPromptTokensAreTheMostSimilarRemainingAndComeOutOfTheBudget() throws {
        var random = TestRandom(seed: 11)
        for trial in 0..<800 {
            let grid = random.grid(maxSide: 32)
            let n = grid.count, width = random.int(1...8)
            let tied = random.chance(0.5)
            let object = random.scores(n, tied: tied), deep = random.scores(n, tied: tied)
            // Integer-valued features make equal cosines (ties) common.
            let features = (0..<(n * width)).map { _ in Float(random.int(-2...2)) }
            let prompt = (0..<width).map { _ in Float(random.int(-2...2)) }
            let budget = random.int(0...n)
            let beta = [0.1, 1.0, 2.5][random.int(0...2)]
            let reading: HiPrunePlusPlus.PromptCount = random.chance(0.5) ? .ofBudget : .ofTokens
            let plus = try HiPrunePlusPlus(hiPrune: try HiPrune(alpha: 0.5), beta: beta, promptCount: reading)
            let selection = try plus.select(objectScores: object, deepScores: deep, features: features, width: width,
                                            promptEmbedding: prompt, grid: grid, budget: .count(budget))
            let context = "trial \(trial) grid \(grid) budget \(budget) beta \(beta) \(reading)"

            // Out of the budget, not on top of it.
            XCTAssertEqual(selection.count, budget, context)
            let objectSet = Set(selection.indices(of: .anchor) + selection.indices(of: .buffer))
            let hiPruneAlone = try plus.hiPrune.select(objectScores: object, deepScores: deep, grid: grid, budget: .count(budget))
            XCTAssertEqual(objectSet, Set(hiPruneAlone.indices(of: .anchor) + hiPruneAlone.indices(of: .buffer)), context)

            let wanted = reading == .ofBudget ? Int((Double(budget) * beta / 5).rounded(.toNearestOrEven))
                                              : Int((Double(n) * beta).rounded(.toNearestOrEven))
            let promptCount = min(wanted, budget - objectSet.count)
            let similarity = (0..<n).map { Naive.cosine(features[($0 * width)..<($0 * width + width)], prompt[...]) }
            let remaining = (0..<n).filter { !objectSet.contains($0) }
            let expectedPrompt = Set(Naive.ranked(remaining, by: similarity).prefix(promptCount))
            XCTAssertEqual(Set(selection.indices(of: .prompt)), expectedPrompt, context)
            let rest = remaining.filter { !expectedPrompt.contains($0) }
            XCTAssertEqual(Set(selection.indices(of: .register)),
                           Set(Naive.ranked(rest, by: deep).prefix(budget - objectSet.count - promptCount)), context)
        }
    }

    func testPromptCountReadings() throws {
        let hiPrune = try HiPrune()
        let byBudget = try HiPrunePlusPlus(hiPrune: hiPrune)
        XCTAssertEqual(byBudget.promptTokenCount(budget: 21, tokenCount: 64), 0)
        XCTAssertEqual(byBudget.promptTokenCount(budget: 25, tokenCount: 64), 0)   // 0.5 → 0
        XCTAssertEqual(byBudget.promptTokenCount(budget: 192, tokenCount: 576), 4) // 3.84
        let byTokens = try HiPrunePlusPlus(hiPrune: hiPrune, promptCount: .ofTokens)
        XCTAssertEqual(byTokens.promptTokenCount(budget: 21, tokenCount: 64), 6)   // 6.4
        XCTAssertEqual(byTokens.promptTokenCount(budget: 192, tokenCount: 576), 58) // 57.6

        // With no prompt token wanted, HiPrune++ is HiPrune.
        var random = TestRandom(seed: 12)
        let grid = TokenGrid(rows: 8, cols: 8)
        let object = random.scores(64, tied: false), deep = random.scores(64, tied: false)
        let features = (0..<(64 * 3)).map { _ in random.unit() }
        let plus = try byBudget.select(objectScores: object, deepScores: deep, features: features, width: 3,
                                       promptEmbedding: [1, 2, 3], grid: grid, budget: .count(21))
        XCTAssertEqual(plus, try hiPrune.select(objectScores: object, deepScores: deep, grid: grid, budget: .count(21)))
    }

    func testShapeErrorsNameTheInput() throws {
        let plus = try HiPrunePlusPlus(hiPrune: try HiPrune())
        let grid = TokenGrid(rows: 2, cols: 2)
        let scores: [Float] = [0, 1, 2, 3]
        XCTAssertThrowsError(try plus.select(objectScores: scores, deepScores: scores, features: [1, 2, 3], width: 2,
                                             promptEmbedding: [1, 1], grid: grid, budget: .count(2))) {
            XCTAssertEqual("\($0)", "token features has 3 values, expected 8")
        }
        XCTAssertThrowsError(try plus.select(objectScores: scores, deepScores: scores, features: [Float](repeating: 1, count: 8),
                                             width: 2, promptEmbedding: [1], grid: grid, budget: .count(2))) {
            XCTAssertEqual("\($0)", "prompt embedding has 1 values, expected 2")
        }
        for bad in [Float.infinity, -.infinity, .nan] {
            var features = [Float](repeating: 1, count: 8)
            features[5] = bad
            XCTAssertThrowsError(try plus.select(objectScores: scores, deepScores: scores, features: features, width: 2,
                                                 promptEmbedding: [1, 1], grid: grid, budget: .count(2))) {
                XCTAssertEqual("\($0)", "token features[5] is not a finite number")
            }
            var wide = [Float](repeating: 0.5, count: 40)
            wide[37] = bad
            XCTAssertFalse(Validate.allFinite(wide))
            wide[37] = 0
            wide[9] = bad
            XCTAssertFalse(Validate.allFinite(wide))
        }
        XCTAssertTrue(Validate.allFinite([Float](repeating: -.greatestFiniteMagnitude, count: 41)))
        XCTAssertThrowsError(try HiPrunePlusPlus(hiPrune: try HiPrune(), beta: -0.5))
    }
}
