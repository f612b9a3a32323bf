import Foundation
import TestSupport
import XCTest
@testable import Prune

/// `reference` mode against the published index arithmetic (tools/prune_reference.py).
final class ReferenceParityTests: XCTestCase {
    struct Fixture: Decodable {
        struct Case: Decodable {
            let rows: Int, cols: Int, budget: Int, alpha: Double
            let object_scores: [Double], deep_scores: [Double]
            let anchors: [Int], kept: [Int]
        }
        let cases: [Case]
    }

    static func fixture() throws -> Fixture {
        let url = URL(fileURLWithPath: Fixtures.path("prune", "reference.json"))
        return try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    }

    func testReferenceModeMatchesPublishedSelectionIndexForIndex() throws {
        let fixture = try Self.fixture()
        XCTAssertGreaterThanOrEqual(fixture.cases.count, 15)
        var differsFromGridMode = 0
        for c in fixture.cases {
            let grid = TokenGrid(rows: c.rows, cols: c.cols)
            let object = c.object_scores.map(Float.init), deep = c.deep_scores.map(Float.init)
            let selection = try HiPrune(alpha: c.alpha, mode: .reference)
                .select(objectScores: object, deepScores: deep, grid: grid, budget: .count(c.budget))
            let context = "\(grid) budget \(c.budget) alpha \(c.alpha)"
            XCTAssertEqual(selection.indices, c.kept, context)
            XCTAssertEqual(selection.indices(of: .anchor), c.anchors, context)
            let geometric = try HiPrune(alpha: c.alpha)
                .select(objectScores: object, deepScores: deep, grid: grid, budget: .count(c.budget))
            if geometric.indices != c.kept { differsFromGridMode += 1 }
        }
        // The fixture has edge anchors and tiny budgets, where the default rules differ.
        XCTAssertGreaterThan(differsFromGridMode, 0)
    }

    func testFixtureCoversThePaperBudgets() throws {
        let budgets = try Self.fixture().cases.filter { $0.rows == 24 && $0.cols == 24 && $0.alpha == 0.1 }.map(\.budget)
        XCTAssertEqual(Set(budgets), [192, 128, 64])
    }
}
