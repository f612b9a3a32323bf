import Foundation
import Pipeline
import Prune
import Stream
import Vision
import XCTest

/// `--reuse T` on media/still-motion.mp4 (scripts/make-media.sh): 15 frames at 5 fps, lossless —
/// frames 1–4 repeat frame 0, frames 5–9 move (consecutive frames differ by 12–32 on average),
/// frame 10 is a new scene and frames 11–14 repeat it.
final class FrameReuseTests: XCTestCase {
    let clip = SelectionParityTests.fixtures.deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("media/still-motion.mp4").path
    let model = SelectionParityTests.fixtures.appendingPathComponent("smolvlm-vqa").path

    func steps(reuse: Double) async throws -> [(FrameAnalysis.Step, PrunedFrame, FrameStatistics)] {
        let encoder = try ModelFamily.detect(directory: model).loadEncoder(directory: model)
        let analysis = FrameAnalysis(encoder: encoder, reuseThreshold: reuse)
        var stage = try PruningStage(settings: PruneSettings(budget: .ratio(0.33)), encoder: encoder)
        let options = analysis.decodeOptions(DecodeOptions(sampling: .everyFrame), input: clip)
        var out: [(FrameAnalysis.Step, PrunedFrame, FrameStatistics)] = []
        try await analysis.prune(VideoFrames(input: clip, options: options), stage: &stage) { out.append(($0, $1, $2)) }
        return out
    }

    func testReusedFramesAreExactlyTheRepeatedOnes() async throws {
        let fresh = try await steps(reuse: 0)
        let reused = try await steps(reuse: 0.5)
        XCTAssertEqual(fresh.count, 15)
        XCTAssertEqual(reused.count, 15)
        XCTAssertTrue(fresh.allSatisfy { $0.0.reusedFrom == nil && !$0.2.reused }, "--reuse 0 never reuses")
        let expected: [Int?] = [nil, 0, 0, 0, 0, nil, nil, nil, nil, nil, nil, 10, 10, 10, 10]
        XCTAssertEqual(reused.map(\.0.reusedFrom), expected)
        XCTAssertEqual(reused.map(\.2.reused), expected.map { $0 != nil })
        for (i, (step, frame, statistics)) in reused.enumerated() {
            // Its own time and index, the encoded frame's features, scores and selection.
            XCTAssertEqual(step.time, fresh[i].0.time, accuracy: 1e-9, "frame \(i)")
            XCTAssertEqual(frame.time, step.time, "frame \(i)")
            XCTAssertEqual(statistics.index, i)
            XCTAssertEqual(frame.index, i)
            // Held frames decode to the same pixels, so the reused encoding is what encoding them gives.
            XCTAssertEqual(step.encoded.views.map(\.features), fresh[i].0.encoded.views.map(\.features), "features of frame \(i)")
            XCTAssertEqual(step.encoded.views.map(\.scores), fresh[i].0.encoded.views.map(\.scores), "scores of frame \(i)")
            XCTAssertEqual(frame.views.map(\.selection.indices), fresh[i].1.views.map(\.selection.indices), "selection of frame \(i)")
            XCTAssertEqual(frame.views.map(\.features), fresh[i].1.views.map(\.features), "kept features of frame \(i)")
            if let source = step.reusedFrom {
                XCTAssertEqual(step.encoded.views.map(\.features), reused[source].0.encoded.views.map(\.features))
                XCTAssertEqual(step.encodeMilliseconds, 0)
                XCTAssertEqual(statistics.encodeMilliseconds, 0)
            } else {
                XCTAssertGreaterThan(step.encodeMilliseconds, 0)
            }
        }
        var summary = StatisticsSummary()
        reused.forEach { summary.add($0.2) }
        XCTAssertEqual(summary.reusedFrames, 8)
    }

    func testMeanAbsoluteDifference() {
        func frame(_ bytes: [UInt8], width: Int = 1) -> VideoFrame {
            VideoFrame(index: 0, sourceFrameNumber: 0, time: 0, width: width, height: bytes.count / (3 * width), rgb: bytes)
        }
        let a = frame([0, 10, 255, 7, 7, 7]), b = frame([3, 0, 250, 7, 9, 7])
        XCTAssertEqual(FrameAnalysis.meanAbsoluteDifference([a], [b]), 20.0 / 6.0)
        XCTAssertEqual(FrameAnalysis.meanAbsoluteDifference([a, a], [b, a]), 20.0 / 12.0)
        XCTAssertEqual(FrameAnalysis.meanAbsoluteDifference([a], [a]), 0)
        XCTAssertNil(FrameAnalysis.meanAbsoluteDifference([a], [frame([0, 10, 255, 7, 7, 7], width: 2)]), "sizes differ")
        XCTAssertNil(FrameAnalysis.meanAbsoluteDifference([a], [a, a]), "frame counts differ")
        // Stopped early once the limit is reached: the partial mean is at least the limit.
        let big = frame([UInt8](repeating: 200, count: 3 * 10_000)), zero = frame([UInt8](repeating: 0, count: 3 * 10_000))
        XCTAssertGreaterThanOrEqual(FrameAnalysis.meanAbsoluteDifference([big], [zero], limit: 0.5)!, 0.5)
    }
}
