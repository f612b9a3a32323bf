import XCTest
@testable import Prune

final class BudgetTests: XCTestCase {
    func testRatioRoundsHalfToEven() throws {
        XCTAssertEqual(try Budget.ratio(0.5).resolve(tokenCount: 5), 2)   // 2.5 → 2
        XCTAssertEqual(try Budget.ratio(0.5).resolve(tokenCount: 7), 4)   // 3.5 → 4
        XCTAssertEqual(try Budget.ratio(1.0 / 3.0).resolve(tokenCount: 576), 192)
        XCTAssertEqual(try Budget.ratio(0.33).resolve(tokenCount: 64), 21)
        XCTAssertEqual(try Budget.ratio(1).resolve(tokenCount: 64), 64)
        XCTAssertEqual(try Budget.count(0).resolve(tokenCount: 64), 0)
    }

    func testInvalidBudgetsAreTypedOneLineErrors() {
        XCTAssertThrowsError(try Budget.count(65).resolve(tokenCount: 64)) { error in
            XCTAssertEqual(error as? PruneError, .budgetExceedsTokens(budget: 65, tokens: 64))
            XCTAssertEqual("\(error)", "budget of 65 tokens exceeds the frame's 64 tokens")
        }
        XCTAssertThrowsError(try Budget.count(-1).resolve(tokenCount: 64)) { error in
            XCTAssertEqual(error as? PruneError, .negativeBudget(-1))
        }
        for ratio in [0, -0.1, 1.01, .nan, .infinity] {
            XCTAssertThrowsError(try Budget.ratio(ratio).resolve(tokenCount: 64)) { error in
                guard case .ratioOutOfRange = error as? PruneError else { return XCTFail("\(error)") }
                XCTAssertTrue("\(error)".contains("outside (0, 1]"))
            }
        }
    }

    func testMethodNamesParse() throws {
        let names = ["hiprune", "hiprune++", "none", "random", "uniform", "deep", "object"]
        XCTAssertEqual(try names.map { try PruneMethod(parsing: $0).rawValue }, names)
        XCTAssertEqual(try PruneMethod(parsing: "hiprune++"), .hiprunePlusPlus)
        XCTAssertThrowsError(try PruneMethod(parsing: "HiPrune+")) { error in
            XCTAssertEqual(error as? PruneError, .unknownMethod("HiPrune+"))
            XCTAssertEqual("\(error)", "unknown prune method 'HiPrune+': expected one of hiprune, hiprune++, none, random, uniform, deep, object")
        }
    }

    func testObjectLayerRange() throws {
        XCTAssertNoThrow(try ObjectLayerCalibration.validate(objectLayer: 1, layerCount: 12))
        XCTAssertNoThrow(try ObjectLayerCalibration.validate(objectLayer: 12, layerCount: 12))
        for layer in [0, 13, -3] {
            XCTAssertThrowsError(try ObjectLayerCalibration.validate(objectLayer: layer, layerCount: 12)) { error in
                XCTAssertEqual(error as? PruneError, .objectLayerOutOfRange(layer: layer, layerCount: 12))
                XCTAssertEqual("\(error)", "object layer \(layer) is out of range: the encoder has layers 1...12")
            }
        }
    }

    func testBadScoresAreRejectedNotCrashed() {
        let grid = TokenGrid(rows: 2, cols: 2)
        let hiPrune = try! HiPrune()
        XCTAssertThrowsError(try hiPrune.select(objectScores: [1, 2, 3], deepScores: [1, 2, 3, 4], grid: grid, budget: .count(2))) {
            XCTAssertEqual("\($0)", "object-layer scores has 3 values, expected 4")
        }
        XCTAssertThrowsError(try hiPrune.select(objectScores: [1, 2, .nan, 4], deepScores: [1, 2, 3, 4], grid: grid, budget: .count(2))) {
            XCTAssertEqual("\($0)", "object-layer scores[2] is not a finite number")
        }
        XCTAssertThrowsError(try hiPrune.select(objectScores: [], deepScores: [], grid: TokenGrid(rows: 0, cols: 3), budget: .count(0))) {
            XCTAssertEqual($0 as? PruneError, .invalidGrid(TokenGrid(rows: 0, cols: 3)))
        }
        XCTAssertThrowsError(try HiPrune(alpha: -1))
        XCTAssertThrowsError(try TemporalDeduplicator(threshold: 1.5))
    }
}
