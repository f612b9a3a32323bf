import XCTest
@testable import Pipeline
@testable import Prune
import Tensor
import Vision

/// Frames of several views (AnyRes: a base image and its crops): each view pruned on its own grid
/// with its share of the frame's budget.
final class ViewTests: XCTestCase {
    struct Encoder: FrameEncoder {
        var family: String { "test" }
        var layerCount: Int { 2 }
        var defaultObjectLayer: Int { 1 }
        var defaultDeepLayer: Int { 2 }
        var framesPerStep: Int { 1 }
        var featureWidth: Int { 3 }
        var flopsPerStep: Double { 0 }
        func encode(_ frames: [RGBImage], scoreLayers: Set<Int>) throws(VisionError) -> EncodedFrame {
            throw .invalidConfiguration(file: "test", field: "encode", cause: "not used")
        }
    }

    /// A deterministic pseudo-random view: scores and features from a linear congruential sequence.
    func view(_ grid: TokenGrid, seed: UInt64, place: ViewPlace) -> EncodedView {
        var state = seed &* 6364136223846793005 &+ 1442695040888963407
        func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(state >> 40) / Float(1 << 24)
        }
        let object = (0..<grid.count).map { _ in next() }, deep = (0..<grid.count).map { _ in next() }
        var features = Matrix(rows: grid.count, cols: 3)
        for i in 0..<features.storage.count { features.storage[i] = next() }
        return EncodedView(grid: grid, features: features, scores: [1: object, 2: deep], place: place)
    }

    func testBudgetsOfViewsAddUpToTheFramesWithRemaindersFirst() throws {
        let grids = [TokenGrid(rows: 3, cols: 3), TokenGrid(rows: 3, cols: 3), TokenGrid(rows: 3, cols: 3)]
        // 27 tokens at 0.4 → round(10.8) = 11 = 4 + 4 + 3.
        XCTAssertEqual(try PruningStage.viewBudgets(.ratio(0.4), grids: grids), [.count(4), .count(4), .count(3)])
        XCTAssertEqual(try PruningStage.viewBudgets(.count(5), grids: grids), [.count(2), .count(2), .count(1)])
        XCTAssertEqual(try PruningStage.viewBudgets(.count(27), grids: grids), [.count(9), .count(9), .count(9)])
        // One view keeps the budget as given, so single-view families select exactly as before.
        XCTAssertEqual(try PruningStage.viewBudgets(.ratio(0.33), grids: [grids[0]]), [.ratio(0.33)])
        // A small view keeps everything it has; its unused share goes to the others.
        let mixed = [TokenGrid(rows: 1, cols: 2), TokenGrid(rows: 3, cols: 3), TokenGrid(rows: 3, cols: 3)]
        XCTAssertEqual(try PruningStage.viewBudgets(.count(14), grids: mixed), [.count(2), .count(6), .count(6)])
        XCTAssertEqual(try PruningStage.viewBudgets(.count(15), grids: mixed), [.count(2), .count(7), .count(6)])
        XCTAssertEqual(try PruningStage.viewBudgets(.count(20), grids: mixed), [.count(2), .count(9), .count(9)])
        for total in 0...27 {
            let budgets = try PruningStage.viewBudgets(.count(total), grids: grids)
            let counts = budgets.map { budget -> Int in if case .count(let n) = budget { return n } else { return -1 } }
            XCTAssertEqual(counts.reduce(0, +), total)
            XCTAssertLessThanOrEqual((counts.max() ?? 0) - (counts.min() ?? 0), 1)
            XCTAssertEqual(counts, counts.sorted(by: >), "remainders go to the earliest views")
        }
    }

    func testEveryViewIsPrunedOnItsOwnGrid() throws {
        let base = TokenGrid(rows: 4, cols: 4), crop = TokenGrid(rows: 4, cols: 5)
        for method in [PruneMethod.hiprune, .random, .uniform, .deep, .object] {
            for ratio in [0.1, 0.25, 0.5, 1.0] {
                var stage = try PruningStage(settings: PruneSettings(method: method, budget: .ratio(ratio)), encoder: Encoder())
                let rect = PixelRect(x: 10, y: 0, width: 10, height: 8)
                let frame = EncodedFrame(views: [
                    view(base, seed: 1, place: .base),
                    view(crop, seed: 2, place: .crop(row: 0, col: 0, rect: rect)),
                    view(crop, seed: 3, place: .crop(row: 0, col: 1, rect: rect)),
                ])
                let (pruned, statistics) = try stage.prune(frame, index: 0, time: 0, encodeMilliseconds: 0)
                let total = Int((ratio * 56).rounded(.toNearestOrEven))
                XCTAssertEqual(pruned.views.count, 3)
                XCTAssertEqual(pruned.keptCount, total, "\(method) \(ratio)")
                XCTAssertEqual(statistics.tokensBefore, 56)
                XCTAssertEqual(statistics.tokensAfter, total)
                XCTAssertEqual(statistics.gridDescription, "4x4+4x5x2")
                for (v, view) in pruned.views.enumerated() {
                    XCTAssertEqual(view.place, frame.views[v].place)
                    XCTAssertEqual(view.grid, frame.views[v].grid)
                    XCTAssertEqual(view.selection.indices, Array(Set(view.selection.indices)).sorted(), "unique and ascending")
                    XCTAssertTrue(view.selection.indices.allSatisfy { (0..<view.grid.count).contains($0) })
                    // The kept features are the view's own rows.
                    XCTAssertEqual(view.features.rows, view.selection.count)
                    for (k, index) in view.selection.indices.enumerated() {
                        XCTAssertEqual(view.features.row(k), frame.views[v].features.row(index))
                    }
                }
                // Views below their capacity differ by one token at most; a full view kept all it had.
                let open = pruned.views.filter { $0.selection.count < $0.grid.count }.map(\.selection.count)
                XCTAssertLessThanOrEqual((open.max() ?? 0) - (open.min() ?? 0), 1, "\(method) \(ratio)")
            }
        }
    }

    func testASingleViewFrameSelectsAsThePrunerDoes() throws {
        let grid = TokenGrid(rows: 8, cols: 8)
        var stage = try PruningStage(settings: PruneSettings(budget: .ratio(0.33)), encoder: Encoder())
        let encoded = view(grid, seed: 9, place: .frame)
        let (pruned, _) = try stage.prune(EncodedFrame(views: [encoded]), index: 0, time: 0, encodeMilliseconds: 0)
        let direct = try HiPrune(alpha: 0.1).select(objectScores: encoded.scores[1]!, deepScores: encoded.scores[2]!,
                                                   grid: grid, budget: .ratio(0.33))
        XCTAssertEqual(try pruned.singleView(family: "test").selection, direct)
    }

    func testDeduplicationComparesEachViewWithTheSameViewOfThePreviousFrame() throws {
        let grid = TokenGrid(rows: 3, cols: 3)
        var stage = try PruningStage(settings: PruneSettings(method: .none, dedupThreshold: 0.999), encoder: Encoder())
        let first = EncodedFrame(views: [view(grid, seed: 1, place: .base), view(grid, seed: 2, place: .base)])
        _ = try stage.prune(first, index: 0, time: 0, encodeMilliseconds: 0)
        // The second view repeats; the first changes: only the second view's tokens are dropped.
        let second = EncodedFrame(views: [view(grid, seed: 5, place: .base), view(grid, seed: 2, place: .base)])
        let (pruned, statistics) = try stage.prune(second, index: 1, time: 1, encodeMilliseconds: 0)
        XCTAssertEqual(statistics.temporalDrops, 9)
        XCTAssertEqual(pruned.views.map(\.selection.count), [9, 0])
    }

    func testTheRegistryClaimsEachModelTypeOnce() throws {
        let types = ModelRegistry.families.flatMap(\.modelTypes)
        XCTAssertEqual(types.count, Set(types).count)
        for family in ModelRegistry.families {
            for type in family.modelTypes { XCTAssertEqual(ModelRegistry.family(modelType: type)?.name, family.name) }
        }
        XCTAssertNil(ModelRegistry.family(modelType: "gpt2"))
        let message = PipelineError.unsupportedModelType(file: "config.json", modelType: "gpt2").description
        for type in types { XCTAssertTrue(message.contains(type), message) }
        for family in ModelRegistry.families { XCTAssertTrue(ModelRegistry.modelHelp.contains(family.name)) }
    }
}
