import XCTest
@testable import Prune

final class ObjectLayerCalibrationTests: XCTestCase {
    func testDispersionIsTheMeanPairwiseGridDistanceOfTheTopTenPercent() {
        // 1×20: top 2 tokens (10 %) at columns 3 and 7.
        var line = [Float](repeating: 0, count: 20)
        line[3] = 5; line[7] = 4
        XCTAssertEqual(ObjectLayerCalibration.dispersion(scores: line, grid: TokenGrid(rows: 1, cols: 20)), 4, accuracy: 1e-12)
        // 5×6: top 3 at (0,0), (0,3), (4,0): distances 3, 4, 5.
        var plane = [Float](repeating: 0, count: 30)
        plane[0] = 3; plane[3] = 3; plane[24] = 3
        XCTAssertEqual(ObjectLayerCalibration.dispersion(scores: plane, grid: TokenGrid(rows: 5, cols: 6)), 4, accuracy: 1e-12)
        // Ties go to the lower index: with all equal, the top 3 are tokens 0, 1, 2.
        XCTAssertEqual(ObjectLayerCalibration.dispersion(scores: [Float](repeating: 1, count: 30), grid: TokenGrid(rows: 5, cols: 6)),
                       (1 + 2 + 1) / 3, accuracy: 1e-12)
        XCTAssertEqual(ObjectLayerCalibration.dispersion(scores: [1], grid: TokenGrid(rows: 1, cols: 1)), 0)
    }

    func testSuggestsTheTroughWithinTheFirstTwoThirds() throws {
        var random = TestRandom(seed: 41)
        let grid = TokenGrid(rows: 10, cols: 10)
        // Layers 1–12: noisy, trough at 5 (compact 2×5 block), deep layers spread; layer 12 is
        // the most compact of all (a 4×3 block) but lies outside the first 2/3 (layers 1–8).
        func spread() -> [Float] { (0..<100).map { _ in random.unit() } }
        func compact(_ width: Int) -> [Float] {
            var s = (0..<100).map { _ in random.unit() * 0.5 }
            for k in 0..<10 { s[(k / width) * 10 + k % width] = 1 + random.unit() }
            return s
        }
        var frames: [ObjectLayerCalibration.Frame] = []
        for _ in 0..<3 {
            var scores: [Int: [Float]] = [:]
            for layer in 1...12 { scores[layer] = spread() }
            scores[5] = compact(5)
            scores[6] = compact(10)
            scores[12] = compact(3)
            frames.append(ObjectLayerCalibration.Frame(grid: grid, scores: scores))
        }
        let calibration = try ObjectLayerCalibration(frames: frames)
        XCTAssertEqual(calibration.layers, Array(1...12))
        XCTAssertEqual(calibration.suggestedObjectLayer, 5)
        XCTAssertLessThan(calibration.dispersion[11], calibration.dispersion[4])
        XCTAssertLessThan(calibration.dispersion[4], calibration.dispersion[0])
    }

    func testTiesGoToTheLowerLayerAndBadFramesAreRejected() throws {
        let grid = TokenGrid(rows: 1, cols: 20)
        var near = [Float](repeating: 0, count: 20); near[0] = 1; near[1] = 1
        var far = [Float](repeating: 0, count: 20); far[0] = 1; far[19] = 1
        let frame = ObjectLayerCalibration.Frame(grid: grid, scores: [1: far, 2: near, 3: near, 4: far, 5: far, 6: far])
        let calibration = try ObjectLayerCalibration(frames: [frame, frame])
        XCTAssertEqual(calibration.dispersion, [19, 1, 1, 19, 19, 19])
        XCTAssertEqual(calibration.suggestedObjectLayer, 2)

        XCTAssertThrowsError(try ObjectLayerCalibration(frames: [])) { XCTAssertEqual($0 as? PruneError, .noCalibrationFrames) }
        let lacking = ObjectLayerCalibration.Frame(grid: grid, scores: [1: far, 2: near])
        XCTAssertThrowsError(try ObjectLayerCalibration(frames: [frame, lacking])) {
            XCTAssertEqual("\($0)", "calibration frame 1 has no scores for layer 3, which other frames have")
        }
        let short = ObjectLayerCalibration.Frame(grid: grid, scores: [1: [1, 2]])
        XCTAssertThrowsError(try ObjectLayerCalibration(frames: [short])) {
            XCTAssertEqual("\($0)", "layer 1 scores of calibration frame 0 has 2 values, expected 20")
        }
    }
}
