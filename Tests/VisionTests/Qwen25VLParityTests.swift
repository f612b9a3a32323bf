import Foundation
import Prune
import Tensor
import Vision
import TestSupport
import XCTest

/// Qwen2.5-VL vision side against transformers, on tools/make_qwen_fixtures.py's tiny model and frames
/// of three aspect ratios (non-square merged grids; windows cut short at the edges).
final class Qwen25VLParityTests: XCTestCase {
    static let directory = Fixtures.path("qwen25vl-tiny")
    /// name: (width, height, frames), as the fixture script.
    static let cases: [(name: String, width: Int, height: Int, frames: Int)] =
        [("wide", 196, 112, 4), ("classic", 112, 84, 3), ("tall", 112, 196, 2)]

    /// The fixture script's `frame`, bit for bit.
    static func frame(width: Int, height: Int, index: Int) -> [UInt8] { syntheticFrame(width: width, height: height, index: index) }

    func testEncoderMatchesTransformersOnEveryAspectRatio() throws {
        let model = try Qwen25VLVisionModel.load(directory: Self.directory)
        let reference = try SafeTensorsFile(path: Self.directory + "/reference.safetensors")
        XCTAssertEqual(Set(model.vision.fullattBlockIndexes.map { $0 + 1 }), [2, 4])
        XCTAssertEqual(model.defaultObjectLayer, 2)
        XCTAssertEqual(model.defaultDeepLayer, 4)
        let allBlocks = Set(1...model.layerCount)
        for c in Self.cases {
            let grid = try reference.int32s("\(c.name).grid").map(Int.init)
            let frames = (0..<c.frames).map { Self.frame(width: c.width, height: c.height, index: $0) }
            let clip = frames.map { (width: c.width, height: c.height, rgb: $0) }
            XCTAssertEqual(grid[0], (c.frames + 1) / 2, "\(c.name) temporal patches")
            let expectedFeatures = try reference.floats("\(c.name).features")
            let perPatch = grid[1] * grid[2]
            var hiddenOffset = 0
            for tp in 0..<grid[0] {
                let pair = Array(clip[(2 * tp)..<min(2 * tp + 2, clip.count)])
                let (patches, rows, cols) = try model.preprocessor.temporalPatch(frames: pair)
                XCTAssertEqual([rows, cols], [grid[1], grid[2]], "\(c.name) patch grid follows the aspect ratio")
                let output = try model.forward(patches: patches, rows: rows, cols: cols, scoreLayers: allBlocks, keepHiddenStates: true)
                XCTAssertEqual(output.grid, TokenGrid(rows: rows / 2, cols: cols / 2))
                XCTAssertEqual(output.hiddenStates.count, model.layerCount + 1)
                for (l, h) in output.hiddenStates.enumerated() {
                    let all = try reference.floats("\(c.name).hidden.\(l)")
                    let mine = Array(all[(hiddenOffset * h.cols)..<((hiddenOffset + perPatch) * h.cols)])
                    XCTAssertLessThanOrEqual(relativeError(h.storage, mine), 1e-4, "\(c.name) t\(tp) hidden.\(l)")
                }
                let width = output.features.cols
                let tokens = output.grid.count
                let expected = Array(expectedFeatures[(tp * tokens * width)..<((tp + 1) * tokens * width)])
                XCTAssertLessThanOrEqual(relativeError(output.features.storage, expected), 1e-4, "\(c.name) t\(tp) features")
                for l in allBlocks {
                    let s = try XCTUnwrap(output.scores[l])
                    XCTAssertLessThanOrEqual(maxAbsDiff(s, try reference.floats("\(c.name).scores.\(l).\(tp)")), 1e-5,
                                             "\(c.name) t\(tp) scores.\(l)")
                }
                hiddenOffset += perPatch
            }
            // The clip API pairs frames the same way.
            let encoded = try model.encode(clip: clip, scoreLayers: [4])
            XCTAssertEqual(encoded.count, grid[0])
            XCTAssertEqual(encoded[0].grid, TokenGrid(rows: grid[1] / 2, cols: grid[2] / 2))
            XCTAssertEqual(Array(encoded[0].scores.keys), [4])
        }
    }

    func testScoresOfEveryBlockAreAttentionShares() throws {
        let model = try Qwen25VLVisionModel.load(directory: Self.directory)
        let frame = Self.frame(width: 112, height: 84, index: 0)
        let step = try model.encode([RGBImage(width: 112, height: 84, rgb: frame)], scoreLayers: [1, 2, 3, 4])
        XCTAssertEqual(step.views.count, 1)
        let encoded = try XCTUnwrap(step.views.first)
        XCTAssertEqual(encoded.grid, TokenGrid(rows: 3, cols: 4))
        // Every query's softmax sums to 1, so patch scores sum to 1 and merged (mean of 4) to 1/4 —
        // for windowed blocks too, whose windows each hold their own share.
        for l in 1...4 {
            let s = try XCTUnwrap(encoded.scores[l])
            XCTAssertEqual(s.reduce(0, +), 0.25, accuracy: 1e-5, "block \(l)")
        }
        let map = Qwen25VLWindowMap(grid: encoded.grid, window: model.vision.windowTokens)
        let windowed = try XCTUnwrap(encoded.scores[1])
        var k = 0
        for length in map.windowLengths {
            let share = map.order[k..<(k + length)].reduce(Float(0)) { $0 + windowed[$1] }
            XCTAssertEqual(share, 0.25 * Float(length) / Float(encoded.grid.count), accuracy: 1e-5)
            k += length
        }
        XCTAssertThrowsError(try model.encode([RGBImage(width: 112, height: 84, rgb: frame)], scoreLayers: [9])) {
            XCTAssertTrue("\($0)".contains("1...4"), "\($0)")
        }
    }

    func testWindowMapTilesFromTheCornerAndInverts() {
        let map = Qwen25VLWindowMap(grid: TokenGrid(rows: 3, cols: 5), window: 2)
        XCTAssertEqual(map.order, [0, 1, 5, 6, 2, 3, 7, 8, 4, 9, 10, 11, 12, 13, 14])
        XCTAssertEqual(map.windowLengths, [4, 4, 2, 2, 2, 1])
        let windowed = map.order.map { Float($0) }
        XCTAssertEqual(map.toRaster(windowed), (0..<15).map(Float.init))
    }

    func testSmartResizeAndBicubicMatchTheReference() throws {
        let pre = Qwen25VLPreprocessor(configuration: try Qwen25VLPreprocessorConfiguration.load(directory: Self.directory))
        let inputs: [(name: String, width: Int, height: Int, out: (Int, Int))] =
            [("wide", 200, 113, (196, 112)), ("tall", 90, 160, (84, 168)), ("up", 60, 40, (84, 56))]
        for c in inputs {
            let target = try pre.targetSize(height: c.height, width: c.width)
            XCTAssertEqual(target.width, c.out.0, c.name)
            XCTAssertEqual(target.height, c.out.1, c.name)
            let rgb = Self.frame(width: c.width, height: c.height, index: 1)
            let mine = try Qwen25VLPreprocessor.resize(rgb: rgb, width: c.width, height: c.height,
                                                       toWidth: target.width, toHeight: target.height)
            let path = Self.directory + "/resize.\(c.name).\(target.width)x\(target.height).rgb"
            let expected = [UInt8](try XCTUnwrap(FileManager.default.contents(atPath: path)))
            XCTAssertEqual(mine.count, expected.count)
            let diffs = zipSameLength(mine, expected).map { abs(Int($0) - Int($1)) }
            XCTAssertLessThanOrEqual(diffs.max() ?? 99, 1, "\(c.name): bicubic within one grey level")
            let off = diffs.filter { $0 != 0 }.count
            XCTAssertLessThanOrEqual(Double(off) / Double(diffs.count), 0.02, "\(c.name): \(off) of \(diffs.count) values off by one")
        }
        // The published bounds (3B defaults) keep a 16:9 448×252 frame's aspect ratio.
        let hub = try Qwen25VLPreprocessor.smartResize(height: 252, width: 448, factor: 28, minPixels: 3136, maxPixels: 12845056)
        XCTAssertEqual(hub.height, 252)
        XCTAssertEqual(hub.width, 448)
        XCTAssertThrowsError(try Qwen25VLPreprocessor.smartResize(height: 1, width: 500, factor: 28, minPixels: 4, maxPixels: 9999))
    }

    func testVideoSamplingMatchesTheProcessor() throws {
        let data = try XCTUnwrap(FileManager.default.contents(atPath: Self.directory + "/sampling.json"))
        let cases = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        XCTAssertFalse(cases.isEmpty)
        for c in cases {
            let total = try XCTUnwrap(c["frames"] as? Int), fps = try XCTUnwrap(c["video_fps"] as? Double)
            let target = try XCTUnwrap(c["fps"] as? Double), expected = try XCTUnwrap(c["indices"] as? [Int])
            let mine = try Qwen25VLVideoSampling.frameIndices(totalFrames: total, videoFPS: fps, fps: target)
            XCTAssertEqual(mine, expected, "\(total) frames at \(fps) fps → \(target) fps")
            XCTAssertEqual(mine.count % 2, 0)
        }
    }

    func testHiPruneUsesTheMergedGridWidth() throws {
        // A 4×7 merged grid (patch grid 8×14): anchor buffers are neighbours on the merged grid.
        let model = try Qwen25VLVisionModel.load(directory: Self.directory)
        let frames = (0..<2).map { (width: 196, height: 112, rgb: Self.frame(width: 196, height: 112, index: $0)) }
        let encoded = try model.encode(frames: frames, scoreLayers: [2, 4])
        XCTAssertEqual(encoded.grid, TokenGrid(rows: 4, cols: 7))
        XCTAssertEqual(encoded.features.rows, 28)
        XCTAssertEqual(try XCTUnwrap(encoded.scores[2]).count, 28)
        // An object score peaking at the start of row 1: its left neighbour is outside the grid; the
        // token above is index 0 (one merged row back), never index 7 − 14 of the patch grid.
        var object = [Float](repeating: 0, count: 28)
        object[7] = 1
        let deep = [Float](repeating: 0, count: 28)
        let kept = try HiPrune(alpha: 1).select(objectScores: object, deepScores: deep, grid: encoded.grid, budget: .count(5))
        XCTAssertTrue(Set(kept.indices).isSuperset(of: [0, 7, 8, 14]), "\(kept.indices)")
        XCTAssertFalse(kept.indices.contains(6), "no wrap to the previous row")
    }
}
